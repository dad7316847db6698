//! A room spanning other nodes (see `cascade`): what crosses its links, and
//! the far side's participants as publishers here.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};

use super::Room;
use crate::cascade::{Control, LinkId, RelayOutput, RelayedPacket};
use crate::forward::{Layer, LAYER_COUNT};
use crate::id::ParticipantId;
use crate::participant::{receive, Propagated};
use crate::signal::MediaSignal;

impl Room {
    /// Spans the room to another node over `link`: everything published
    /// here is announced there, and from now on relayed as it asks.
    pub fn span_to(&mut self, link: LinkId) {
        if !self.relay.add_link(link) {
            return;
        }
        tracing::info!(room = %self.id, link = link.0, "room spans another node");
        // Who they are before what they publish: a browser puts a track
        // only in the tile of someone it knows.
        for (origin, info) in &self.local_infos {
            let control = Control::Peer {
                origin: *origin,
                info: info.clone(),
            };
            self.relay.tell(link, control);
        }
        // And those on other nodes this one links (it is the star's hub).
        let peers: Vec<Control> = (self.relay.peers.iter())
            .filter(|p| p.link != link)
            .map(|p| Control::Peer {
                origin: p.origin,
                info: p.info.clone(),
            })
            .collect();
        for control in peers {
            self.relay.tell(link, control);
        }
        let local = self.participants.iter().flat_map(|p| {
            let publications = p.publications.iter();
            publications.map(move |publication| (p.id, publication.mid, publication.kind))
        });
        let far = (self.relay.remote.iter())
            .filter(|r| r.link != link)
            .map(|r| (r.origin, r.publication.mid, r.publication.kind));
        let published: Vec<Control> = local
            .chain(far)
            .map(|(origin, mid, kind)| Control::Published { origin, mid, kind })
            .collect();
        for control in published {
            self.relay.tell(link, control);
        }
        // Last: the far node takes word of a recording or consent only
        // about someone it already knows over this link.
        self.tell_call_state(link);
    }

    /// The link to another node is gone: its participants leave this room,
    /// and a recording there no longer takes anyone here.
    pub fn unspan(&mut self, link: LinkId) {
        self.end_far_recordings(link);
        for origin in self.relay.remove_link(link) {
            self.remote_left(origin);
            self.relay.tell_all(Control::Left { origin });
        }
        self.next_layers = None;
    }

    /// Describes participant `id` here to the nodes the room spans (and to
    /// those it spans later): signalling's own text, passed to their
    /// browsers as it is. Again whenever it changes.
    pub fn announce(&mut self, id: ParticipantId, info: &str) {
        let info: Arc<str> = info.into();
        match self.local_infos.iter_mut().find(|(p, _)| *p == id) {
            Some((_, known)) => *known = info.clone(),
            None => self.local_infos.push((id, info.clone())),
        }
        self.relay.tell_all(Control::Peer { origin: id, info });
    }

    /// Tells a participant joining here who is in the call on other nodes,
    /// whether one of them records it, and its consent to record.
    pub(super) fn tell_remote_peers(&mut self, id: ParticipantId) {
        for peer in &self.relay.peers {
            let signal = MediaSignal::RemotePeer {
                participant: peer.origin,
                info: peer.info.clone(),
            };
            self.signals.push_back((id, signal));
        }
        self.tell_call_state_to(id);
    }

    /// A far participant is gone: its tracks stop and browsers here are told.
    fn remote_left(&mut self, origin: ParticipantId) {
        self.unsubscribe_all_from(origin);
        self.tell_everyone(MediaSignal::RemoteLeft {
            participant: origin,
        });
    }

    /// True while the room spans another node.
    pub fn spans_nodes(&self) -> bool {
        !self.relay.is_alone()
    }

    /// Participants on other nodes in this room's call.
    pub fn remote_participants(&self) -> Vec<ParticipantId> {
        let remote = self.relay.remote.iter().map(|r| r.origin);
        let mut ids: Vec<_> = remote
            .chain(self.relay.peers.iter().map(|p| p.origin))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Takes a control message from the node at the far end of `link`.
    /// A link the room does not span to, or a message about someone it
    /// may not speak for, is ignored.
    pub fn handle_relay_control(&mut self, now: Instant, link: LinkId, control: Control) {
        if !self.relay.links().contains(&link) {
            return;
        }
        let local = |room: &Room, id| room.participants.iter().any(|p| p.id == id);
        // What a far node says of its own participants; what it asks of
        // anyone else's tracks (here, or on a third node) it gets through here.
        let its_own =
            |room: &Room, id| !local(room, id) && room.relay.link_of(id).is_none_or(|l| l == link);
        let through_here =
            |room: &Room, id| local(room, id) || room.relay.link_of(id).is_some_and(|l| l != link);
        match control {
            Control::Published { origin, mid, kind } if its_own(self, origin) => {
                if self.relay.add_remote(link, origin, mid, kind) {
                    for p in &mut self.participants {
                        p.touch();
                        p.subscribe(origin, mid, kind);
                    }
                    self.relay.tell_others(link, control);
                    self.next_layers = None;
                }
            }
            Control::Left { origin } => {
                if self.relay.remove_remote(link, origin) {
                    self.remote_left(origin);
                    self.relay.tell_others(link, control);
                    self.next_layers = None;
                }
            }
            Control::Peer { origin, ref info } if its_own(self, origin) => {
                if !self.relay.set_peer(link, origin, info.clone()) {
                    return;
                }
                self.tell_everyone(MediaSignal::RemotePeer {
                    participant: origin,
                    info: info.clone(),
                });
                self.relay.tell_others(link, control);
            }
            Control::Want {
                origin,
                mid,
                ceiling,
            } if through_here(self, origin) => {
                let video = self.kind_of(origin, mid) == Some(MediaKind::Video);
                self.relay.set_wanted(link, origin, mid, video, ceiling);
                self.next_layers = None;
            }
            Control::Keyframe { origin, mid, layer } if through_here(self, origin) => {
                self.request_keyframe(origin, mid, layer, now);
            }
            // A recording only by someone announced over this very link: a
            // far node may not make browsers here say a stranger records.
            Control::Recording { origin, .. } if self.relay.link_of(origin) == Some(link) => {
                self.take_call_state(link, control);
            }
            // Consent outlives the link of the node that noted it (it is the
            // call's), so one passed on later may name someone gone.
            Control::Consent { origin, .. } if its_own(self, origin) => {
                self.take_call_state(link, control);
            }
            // Our own entry, told back after a relink: nothing new.
            Control::Consent { origin, .. } if local(self, origin) => {}
            Control::Published { origin, .. }
            | Control::Peer { origin, .. }
            | Control::Recording { origin, .. }
            | Control::Consent { origin, .. } => {
                tracing::warn!(room = %self.id, %origin, link = link.0, "a far node spoke for someone it does not host");
            }
            Control::Want { .. } | Control::Keyframe { .. } => {}
        }
    }

    /// Takes a packet relayed from the node at the far end of `link`: it
    /// reaches local subscribers (and the recording) at the next poll.
    pub fn handle_relay_packet(&mut self, link: LinkId, relayed: RelayedPacket) {
        let Some(params) = self.relay.params_of(relayed.packet.pt) else {
            return;
        };
        let RelayedPacket {
            origin,
            mid,
            layer,
            packet,
        } = relayed;
        let Some(remote) = self
            .relay
            .remote
            .iter_mut()
            .find(|r| r.link == link && r.origin == origin && r.publication.mid == mid)
        else {
            return;
        };
        let stream = &mut remote.publication.layers[layer.index()];
        if stream.arrivals.expected() == 0 {
            // A layer starts: layers are chosen again before it is offered.
            self.next_layers = None;
        }
        let learnt = receive(stream, params.spec().codec, &packet);
        self.propagate.push_back(Propagated::Rtp {
            origin,
            mid,
            layer,
            params,
            learnt,
            packet,
        });
    }

    /// The next message or packet for another node.
    pub fn poll_relay(&mut self) -> Option<RelayOutput> {
        self.relay.poll()
    }

    /// Each far publication's layer rates, as measured here.
    pub(super) fn remote_rates(
        &self,
        now: Instant,
    ) -> impl Iterator<Item = (ParticipantId, Mid, [Option<u64>; LAYER_COUNT])> + '_ {
        self.relay
            .remote
            .iter()
            .filter(|r| r.publication.kind == MediaKind::Video)
            .map(move |r| (r.origin, r.publication.mid, r.publication.layer_rates(now)))
    }

    /// Notes the lowest layer each camera here sends, from `rates`: it is
    /// relayed whatever a far node asks for.
    pub(super) fn note_floors(
        &mut self,
        rates: &[(ParticipantId, Mid, [Option<u64>; LAYER_COUNT])],
    ) {
        if self.relay.is_alone() {
            return;
        }
        for (origin, mid, layers) in rates {
            let lowest = Layer::ALL.into_iter().find(|l| layers[l.index()].is_some());
            self.relay.set_floor(*origin, *mid, lowest);
        }
    }

    /// Tells each far node what the participants here (or the recording,
    /// or the nodes this one passes its tracks on to) would take of its
    /// tracks: a microphone while anyone is here, a camera up to the best
    /// layer a viewer here wishes for.
    pub(super) fn ask_far_nodes(&mut self) {
        let recording = self.recording.is_some();
        let anyone = recording || !self.participants.is_empty();
        for i in 0..self.relay.remote.len() {
            let remote = &self.relay.remote[i];
            let (origin, mid) = (remote.origin, remote.publication.mid);
            let here = match (remote.publication.kind, recording) {
                (MediaKind::Audio, _) => anyone.then_some(Layer::FULL),
                (_, true) => Some(Layer::FULL),
                (_, false) => self
                    .participants
                    .iter()
                    .filter_map(|v| v.far_wish_for(origin))
                    .max(),
            };
            let ceiling = here.max(self.relay.wanted_of(origin, mid));
            self.relay.ask(i, ceiling);
        }
    }

    /// Whether `origin`'s track `mid` is sound or video, wherever it is.
    fn kind_of(&self, origin: ParticipantId, mid: Mid) -> Option<MediaKind> {
        let local = self.participants.iter().filter(|p| p.id == origin);
        let local = local.flat_map(|p| p.publications.iter());
        let far = (self.relay.remote.iter())
            .filter(|r| r.origin == origin)
            .map(|r| &r.publication);
        local.chain(far).find(|p| p.mid == mid).map(|p| p.kind)
    }

    /// Asks a far publisher's node for a keyframe, coalesced here as a local
    /// publisher's requests are; false when `publisher` is not remote.
    pub(super) fn request_remote_keyframe(
        &mut self,
        publisher: ParticipantId,
        mid: Mid,
        layer: Layer,
        now: Instant,
    ) -> bool {
        let Some(remote) = self
            .relay
            .remote
            .iter_mut()
            .find(|r| r.origin == publisher && r.publication.mid == mid)
        else {
            return false;
        };
        let link = remote.link;
        if remote.publication.layers[layer.index()]
            .keyframes
            .request(now)
        {
            let control = Control::Keyframe {
                origin: publisher,
                mid,
                layer,
            };
            self.relay.tell(link, control);
        }
        true
    }

    /// Sends the far keyframe requests the throttle deferred; returns when
    /// the next one falls due.
    pub(super) fn deferred_remote_keyframes(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        for r in &mut self.relay.remote {
            for layer in Layer::ALL {
                let throttle = &mut r.publication.layers[layer.index()].keyframes;
                if throttle.poll_deferred(now) {
                    due.push((r.link, r.origin, r.publication.mid, layer));
                }
                if let Some(t) = throttle.deferred_until() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        for (link, origin, mid, layer) in due {
            self.relay
                .tell(link, Control::Keyframe { origin, mid, layer });
        }
        next
    }

    pub(super) fn unsubscribe_all_from(&mut self, origin: ParticipantId) {
        for p in &mut self.participants {
            p.touch();
            p.unsubscribe_from(origin);
        }
    }
}
