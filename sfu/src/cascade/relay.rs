//! A room's side of its links to other nodes: the far side's publications
//! (metered here, as a local publisher's are), what each far node wants of
//! ours, and what is queued for them. Plain data; the room drives it (see
//! `room/span.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt};

use super::{Control, LinkId, RelayOutput, RelayedPacket};
use crate::forward::Layer;
use crate::id::ParticipantId;
use crate::packet::MediaPacket;
use crate::track::Publication;

/// A track published on another node.
#[derive(Debug)]
pub(crate) struct Remote {
    pub link: LinkId,
    pub origin: ParticipantId,
    pub publication: Publication,
}

/// How far up one far node would take one of our cameras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    link: LinkId,
    origin: ParticipantId,
    mid: Mid,
    /// A camera (what it is asked to encode follows its wishes), not a
    /// microphone.
    video: bool,
    ceiling: Option<Layer>,
}

/// A publisher's payload type and the relay's number for it.
#[derive(Debug, Clone, Copy)]
struct PtMapping {
    origin: ParticipantId,
    incoming: Pt,
    relayed: Option<Pt>,
}

/// A participant on another node, as its node described it.
#[derive(Debug)]
pub(crate) struct RemotePeer {
    pub link: LinkId,
    pub origin: ParticipantId,
    pub info: Arc<str>,
}

/// A recording of the call on another node, as that node told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FarRecording {
    pub link: LinkId,
    /// The clinician who started it.
    pub origin: ParticipantId,
    /// When, Unix seconds.
    pub since: u64,
}

#[derive(Debug)]
pub(crate) struct Relay {
    links: Vec<LinkId>,
    pub remote: Vec<Remote>,
    pub peers: Vec<RemotePeer>,
    /// Recordings of the call on far nodes.
    pub recordings: Vec<FarRecording>,
    /// What far nodes asked for of our publishers.
    wanted: Vec<Wanted>,
    /// What we last asked far nodes for of theirs.
    asked: Vec<Wanted>,
    /// The lowest layer each of our cameras sends now: relayed whatever a
    /// far node asks, as a viewer here would take it (a camera sending one
    /// layer sends only the full one).
    floors: Vec<(ParticipantId, Mid, Layer)>,
    pts: Vec<PtMapping>,
    /// The payload types packets cross with. Browsers number codecs as they
    /// like; every node numbers them as this table does, so a packet's
    /// codec is known on the far side without any negotiation.
    codecs: CodecConfig,
    out: VecDeque<RelayOutput>,
}

/// The relay's codec numbering: the codecs every session of the SFU takes.
fn relay_codecs() -> CodecConfig {
    let mut codecs = CodecConfig::empty();
    codecs.enable_opus(true, true);
    codecs.enable_vp8(true);
    codecs.enable_h264(true);
    codecs
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            links: Vec::new(),
            remote: Vec::new(),
            peers: Vec::new(),
            recordings: Vec::new(),
            wanted: Vec::new(),
            asked: Vec::new(),
            floors: Vec::new(),
            pts: Vec::new(),
            codecs: relay_codecs(),
            out: VecDeque::new(),
        }
    }
}

impl Relay {
    /// True when the room spans no other node.
    pub fn is_alone(&self) -> bool {
        self.links.is_empty()
    }

    pub fn links(&self) -> &[LinkId] {
        &self.links
    }

    /// Adds a link; false when it was already there.
    pub fn add_link(&mut self, link: LinkId) -> bool {
        if self.links.contains(&link) {
            return false;
        }
        self.links.push(link);
        true
    }

    /// Forgets a link and everything learnt over it; returns the far
    /// participants who are gone with it.
    pub fn remove_link(&mut self, link: LinkId) -> Vec<ParticipantId> {
        self.links.retain(|l| *l != link);
        self.wanted.retain(|w| w.link != link);
        self.asked.retain(|w| w.link != link);
        self.out.retain(|o| match o {
            RelayOutput::Control(l, _) | RelayOutput::Packet(l, _) => *l != link,
        });
        let mut gone: Vec<_> = self
            .remote
            .iter()
            .map(|r| (r.link, r.origin))
            .chain(self.peers.iter().map(|p| (p.link, p.origin)))
            .filter(|(l, _)| *l == link)
            .map(|(_, origin)| origin)
            .collect();
        gone.sort();
        gone.dedup();
        self.remote.retain(|r| r.link != link);
        self.peers.retain(|p| p.link != link);
        for origin in &gone {
            self.forget(*origin);
        }
        gone
    }

    /// Queues `control` for every link.
    pub fn tell_all(&mut self, control: Control) {
        for &link in &self.links {
            self.out
                .push_back(RelayOutput::Control(link, control.clone()));
        }
    }

    pub fn tell(&mut self, link: LinkId, control: Control) {
        self.out.push_back(RelayOutput::Control(link, control));
    }

    pub fn poll(&mut self) -> Option<RelayOutput> {
        self.out.pop_front()
    }

    /// A far participant's new track; false when it was known already.
    pub fn add_remote(
        &mut self,
        link: LinkId,
        origin: ParticipantId,
        mid: Mid,
        kind: MediaKind,
    ) -> bool {
        if self
            .remote
            .iter()
            .any(|r| r.origin == origin && r.publication.mid == mid)
        {
            return false;
        }
        let publication = Publication::new(mid, kind);
        self.remote.push(Remote {
            link,
            origin,
            publication,
        });
        true
    }

    /// A far participant left (only the link it came over may say so).
    pub fn remove_remote(&mut self, link: LinkId, origin: ParticipantId) -> bool {
        let before = self.remote.len() + self.peers.len();
        self.remote
            .retain(|r| !(r.link == link && r.origin == origin));
        self.peers
            .retain(|p| !(p.link == link && p.origin == origin));
        self.asked
            .retain(|w| !(w.link == link && w.origin == origin));
        let gone = self.remote.len() + self.peers.len() != before;
        if gone {
            self.forget(origin);
        }
        gone
    }

    /// A far participant's description, new or changed; false when a
    /// participant of another link has that id (it is not believed).
    pub fn set_peer(&mut self, link: LinkId, origin: ParticipantId, info: Arc<str>) -> bool {
        match self.peers.iter_mut().find(|p| p.origin == origin) {
            Some(p) if p.link != link => false,
            Some(p) => {
                p.info = info;
                true
            }
            None => {
                self.peers.push(RemotePeer { link, origin, info });
                true
            }
        }
    }

    /// A far node's word on a recording it (or one beyond it) runs:
    /// started at `since`, or stopped (`None`). False when nothing changed.
    pub fn set_recording(
        &mut self,
        link: LinkId,
        origin: ParticipantId,
        since: Option<u64>,
    ) -> bool {
        let known = (self.recordings.iter()).position(|r| r.link == link && r.origin == origin);
        match (known, since) {
            (Some(i), Some(since)) if self.recordings[i].since == since => false,
            (Some(i), Some(since)) => {
                self.recordings[i].since = since;
                true
            }
            (Some(i), None) => {
                self.recordings.swap_remove(i);
                true
            }
            (None, Some(since)) => {
                let recording = FarRecording {
                    link,
                    origin,
                    since,
                };
                self.recordings.push(recording);
                true
            }
            (None, None) => false,
        }
    }

    /// One of ours left: nothing more is relayed of it.
    pub fn local_left(&mut self, origin: ParticipantId) {
        self.forget(origin);
        self.tell_all(Control::Left { origin });
    }

    /// Drops what was kept about `origin`'s tracks being relayed.
    fn forget(&mut self, origin: ParticipantId) {
        self.wanted.retain(|w| w.origin != origin);
        self.pts.retain(|m| m.origin != origin);
        self.floors.retain(|(o, _, _)| *o != origin);
    }

    /// A far node's wish for a track it gets over this node: one of ours,
    /// or one this node has from a third node.
    pub fn set_wanted(
        &mut self,
        link: LinkId,
        origin: ParticipantId,
        mid: Mid,
        video: bool,
        ceiling: Option<Layer>,
    ) {
        self.wanted
            .retain(|w| !(w.link == link && w.origin == origin && w.mid == mid));
        self.wanted.push(Wanted {
            link,
            origin,
            mid,
            video,
            ceiling,
        });
    }

    /// The most any far node asked of one track.
    pub fn wanted_of(&self, origin: ParticipantId, mid: Mid) -> Option<Layer> {
        self.wanted
            .iter()
            .filter(|w| w.origin == origin && w.mid == mid)
            .filter_map(|w| w.ceiling)
            .max()
    }

    /// The link a far participant's tracks come over.
    pub fn link_of(&self, origin: ParticipantId) -> Option<LinkId> {
        let remote = self.remote.iter().map(|r| (r.origin, r.link));
        let peers = self.peers.iter().map(|p| (p.origin, p.link));
        remote
            .chain(peers)
            .find(|(o, _)| *o == origin)
            .map(|(_, l)| l)
    }

    /// Queues `control` for every link but `from`: what one far node says
    /// of its participants, the others are told (the node hosting the room
    /// is the hub of a star).
    pub fn tell_others(&mut self, from: LinkId, control: Control) {
        for &link in &self.links {
            if link != from {
                self.out
                    .push_back(RelayOutput::Control(link, control.clone()));
            }
        }
    }

    /// Notes the lowest layer `origin`'s camera sends now.
    pub fn set_floor(&mut self, origin: ParticipantId, mid: Mid, lowest: Option<Layer>) {
        self.floors.retain(|(o, m, _)| !(*o == origin && *m == mid));
        if let Some(layer) = lowest {
            self.floors.push((origin, mid, layer));
        }
    }

    /// The best layer of `origin`'s camera any far node would take.
    pub fn ceiling_for(&self, origin: ParticipantId) -> Option<Layer> {
        self.wanted
            .iter()
            .filter(|w| w.origin == origin && w.video)
            .filter_map(|w| w.ceiling)
            .max()
    }

    /// Tells a far node what our participants would take of one of its
    /// tracks, when that changed since it was last told.
    pub fn ask(&mut self, remote: usize, ceiling: Option<Layer>) {
        let r = &self.remote[remote];
        let wish = Wanted {
            link: r.link,
            origin: r.origin,
            mid: r.publication.mid,
            video: r.publication.kind == MediaKind::Video,
            ceiling,
        };
        if self.asked.contains(&wish) {
            return;
        }
        self.asked
            .retain(|w| !(w.link == wish.link && w.origin == wish.origin && w.mid == wish.mid));
        self.asked.push(wish);
        let control = Control::Want {
            origin: wish.origin,
            mid: wish.mid,
            ceiling,
        };
        self.out.push_back(RelayOutput::Control(wish.link, control));
    }

    /// Queues one of our packets for every far node that takes its layer,
    /// as the node asked: a track's sound, or its video up to a layer (and
    /// the camera's lowest layer, if that is above). Cloning a packet
    /// shares its payload.
    pub fn offer(
        &mut self,
        origin: ParticipantId,
        mid: Mid,
        layer: Layer,
        params: &PayloadParams,
        packet: &MediaPacket,
    ) {
        if self.links.is_empty() {
            return;
        }
        let Some(pt) = self.relayed_pt(origin, params, packet.pt) else {
            return;
        };
        // Never back to the node it came from.
        let from = self.link_of(origin);
        let floor = self
            .floors
            .iter()
            .find(|(o, m, _)| *o == origin && *m == mid)
            .map(|f| f.2);
        // Up to what a node asked, and the camera's lowest layer whatever it asked.
        let reaches = |ceiling: Layer| layer <= floor.map_or(ceiling, |f| ceiling.max(f));
        for &link in &self.links {
            if Some(link) == from {
                continue;
            }
            let takes = self.wanted.iter().any(|w| {
                w.link == link
                    && w.origin == origin
                    && w.mid == mid
                    && w.ceiling.is_some_and(reaches)
            });
            if takes {
                let mut packet = packet.clone();
                packet.pt = pt;
                let relayed = RelayedPacket {
                    origin,
                    mid,
                    layer,
                    packet,
                };
                self.out.push_back(RelayOutput::Packet(link, relayed));
            }
        }
    }

    /// The payload parameters of a packet that crossed, from the relay's
    /// numbering.
    pub fn params_of(&self, pt: Pt) -> Option<PayloadParams> {
        self.codecs
            .find(|p| p.pt() == pt || p.red() == Some(pt))
            .copied()
    }

    /// The relay's number for a publisher's payload type, matched on the
    /// codec once per publisher and type.
    fn relayed_pt(
        &mut self,
        origin: ParticipantId,
        params: &PayloadParams,
        incoming: Pt,
    ) -> Option<Pt> {
        if let Some(m) = self
            .pts
            .iter()
            .find(|m| m.origin == origin && m.incoming == incoming)
        {
            return m.relayed;
        }
        let matched = self.codecs.match_params(*params);
        let relayed = matched.and_then(|m| match params.red() == Some(incoming) {
            true => m.red(),
            false => Some(m.pt()),
        });
        self.pts.push(PtMapping {
            origin,
            incoming,
            relayed,
        });
        relayed
    }
}
