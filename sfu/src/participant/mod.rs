//! One participant's WebRTC session and its tracks.
//!
//! The browser makes the first offer (its camera and microphone); after that the
//! SFU is the only side that offers, adding and stopping other participants'
//! tracks. One offer at a time: changes wanted while an offer is out wait for
//! its answer. Which layers it receives and publishes is in `layers.rs`.

mod layers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, CodecConfig, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::Transmit;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::bandwidth::{AdaptationStats, DownlinkEstimate};
use crate::downlink_test::{DownlinkPlan, DownlinkTest};
use crate::echo::Echo;
use crate::error::SfuError;
use crate::forward::{vp8_patch, vp8_picture_numbers, Layer, PictureNumbers, PublishLimit};
use crate::id::{ParticipantId, RoomId};
use crate::signal::MediaSignal;
use crate::stats::{MediaCounters, ParticipantStats, ReceivedVideo, VIDEO_START_UP};
use crate::tiles::TileSizes;
use crate::track::{OutgoingPt, Publication, Subscription, SubscriptionState};

/// What the publisher's side reads from a packet once, for all its
/// subscribers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learnt {
    /// A subscriber may start here: any audio packet, or the first packet
    /// of a video keyframe.
    pub start_point: bool,
    /// The VP8 picture numbers, when the packet carries them.
    pub vp8: Option<(Vp8Descriptor, PictureNumbers)>,
}

/// Something one participant's session produced that concerns the others.
// Boxing the packet would allocate once per packet on the forwarding path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Propagated {
    /// A new published track: every other participant subscribes to it.
    Published {
        origin: ParticipantId,
        mid: Mid,
        kind: MediaKind,
    },
    /// An RTP packet of a published track.
    Rtp {
        origin: ParticipantId,
        mid: Mid,
        layer: Layer,
        params: PayloadParams,
        learnt: Learnt,
        packet: RtpPacket,
    },
    /// A subscriber wants a keyframe of one layer of a publisher's track.
    KeyframeWanted {
        publisher: ParticipantId,
        mid: Mid,
        layer: Layer,
    },
}

/// What became of one packet offered to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Written to the subscriber's stream.
    Sent,
    /// Not for this subscriber (not subscribed, not negotiated yet, not connected).
    Skipped,
    /// Dropped because the subscriber waits for a keyframe of this layer: the
    /// publisher must be asked for one, or the subscriber's tile stays black.
    NeedsKeyframe(Layer),
}

/// What one poll of a participant gave.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Polled {
    Transmit(Transmit),
    Propagate(Propagated),
    Timeout(Instant),
    Nothing,
}

/// A budget no set of layers reaches (halved so sums cannot overflow).
const UNLIMITED: u64 = u64::MAX / 2;

/// How stale a session's clock may be when a packet is written to it: send
/// times within a millisecond are as good as exact to the estimator, and
/// advancing the clock costs a pass over the session's timers.
const CLOCK_STEP: Duration = Duration::from_millis(1);

/// How far ahead of its time a paced packet may be sent (see
/// [`Participant::run_due_timer`]).
const PACING_SLACK: Duration = Duration::from_millis(1);

#[derive(Debug)]
enum Negotiation {
    Stable,
    AwaitingAnswer(SdpPendingOffer),
}

#[derive(Debug)]
pub(crate) struct Participant {
    pub id: ParticipantId,
    pub rtc: Rtc,
    negotiation: Negotiation,
    pub publications: Vec<Publication>,
    pub subscriptions: Vec<Subscription>,
    /// ICE and DTLS are up. Packets written before are lost, so a new
    /// subscription's first keyframe must wait for this.
    connected: bool,
    /// Events produced alongside another output, handed out on the next polls.
    pending: VecDeque<Propagated>,
    /// A published stream (or simulcast layer) sent its first packet: the
    /// room should choose layers again before forwarding it.
    pub new_layer_seen: bool,
    /// When this participant next needs polling if nothing reaches it
    /// first; `None` means at the next poll. The room sets `None` whenever it
    /// hands the participant anything (input, a packet to forward, a
    /// request), so an untouched session is not polled before its timer.
    pub wake_at: Option<Instant>,
    /// A datagram was fed to the session since its last poll. str0m holds
    /// one incoming RTP packet at a time, so such a session is polled before
    /// the next datagram (see [`crate::Room::poll_received`]).
    pub received: bool,
    /// Tile heights this participant reported, by whose video; kept for
    /// subscriptions that do not exist yet (the tile can come first).
    views: TileSizes,
    /// The latest time this session was given.
    clock: Option<Instant>,
    /// What the link to this participant's browser can carry.
    downlink: DownlinkEstimate,
    /// The simulcast layers this participant's browser was told to send.
    publish_limit: PublishLimit,
    /// Redundant audio goes out whole: false while the downlink is too tight
    /// to carry audio twice (RED roughly doubles it), when it would only add
    /// the loss it is meant to hide.
    send_red: bool,
    /// Some video has been forwarded to this participant: from then on the
    /// link may be probed (see `plan_probing`).
    video_started: bool,
    /// Layer switches, pauses and estimate moves, for the admin plane; the
    /// latest estimate is read from `downlink` when asked for.
    adaptation: AdaptationStats,
    /// The latest statistics of each stream, for the admin plane.
    counters: MediaCounters,
    /// Its room: every log line names room and participant.
    room: RoomId,
    /// When its first offer arrived, and how long until media connected.
    joined_at: Instant,
    connected_after: Option<Duration>,
    /// When it first had someone's video to receive, and how long from then
    /// until the first video was forwarded to it.
    video_wanted_since: Option<Instant>,
    first_video_after: Option<Duration>,
    /// ICE candidates trickled in over the whole session.
    remote_candidates: usize,
    /// May only receive (an observer): offered tracks are not published.
    pub receive_only: bool,
    /// The first video m-line the browser offered to receive on that no
    /// subscription took: where a download test can send.
    spare_video: Option<Mid>,
    /// The connectivity check's download test, while it runs.
    downlink_test: Option<(Mid, DownlinkTest)>,
    /// The connectivity check's delay probe.
    echo: Echo,
}

/// Trickled ICE candidates one session takes at most: str0m keeps and
/// checks every one, so without a bound a client could make the worker's
/// connectivity checks as slow as it liked. A browser sends a handful per
/// network interface and ICE restart.
pub(crate) const MAX_REMOTE_CANDIDATES: usize = 256;

impl Participant {
    pub fn new(
        room: RoomId,
        id: ParticipantId,
        now: Instant,
        rtc: Rtc,
        estimate_bandwidth: bool,
    ) -> Self {
        Participant {
            room,
            id,
            rtc,
            negotiation: Negotiation::Stable,
            publications: Vec::new(),
            subscriptions: Vec::new(),
            connected: false,
            pending: VecDeque::new(),
            new_layer_seen: false,
            wake_at: None,
            received: false,
            views: TileSizes::default(),
            clock: None,
            downlink: DownlinkEstimate::new(estimate_bandwidth),
            publish_limit: PublishLimit::default(),
            send_red: true,
            video_started: false,
            adaptation: AdaptationStats::default(),
            counters: MediaCounters::default(),
            joined_at: now,
            connected_after: None,
            video_wanted_since: None,
            first_video_after: None,
            remote_candidates: 0,
            receive_only: false,
            spare_video: None,
            downlink_test: None,
            echo: Echo::default(),
        }
    }

    /// Accepts an offer from the browser and returns the SDP answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp {
            participant: self.id,
            reason: e.to_string(),
        })?;
        let ufrag_before = self.rtc.direct_api().local_ice_credentials().ufrag;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Negotiation {
                participant: self.id,
                reason: e.to_string(),
            })?;
        // New credentials in a later offer: the browser restarted ICE (its
        // address changed, or its path was lost).
        if self.rtc.direct_api().local_ice_credentials().ufrag != ufrag_before {
            tracing::info!(room = %self.room, participant = %self.id, "ICE restart");
            self.counters.on_ice_restart();
        }
        // Accepting an offer invalidates our own outstanding one: redo its changes.
        self.negotiation = Negotiation::Stable;
        self.revert_negotiating();
        Ok(answer.to_sdp_string())
    }

    fn revert_negotiating(&mut self) {
        for sub in &mut self.subscriptions {
            match sub.state {
                SubscriptionState::Negotiating(_) => sub.state = SubscriptionState::ToOpen,
                SubscriptionState::NegotiatingStop(m) => sub.state = SubscriptionState::ToStop(m),
                _ => {}
            }
        }
    }

    /// Accepts the browser's answer to our last offer. Subscriptions it opens
    /// get their layer (and keyframe) when the room next chooses layers.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), SfuError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp {
            participant: self.id,
            reason: e.to_string(),
        })?;
        let Negotiation::AwaitingAnswer(pending) =
            std::mem::replace(&mut self.negotiation, Negotiation::Stable)
        else {
            return Err(SfuError::Negotiation {
                participant: self.id,
                reason: "an answer arrived but no offer was outstanding".into(),
            });
        };
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is void: put its changes back so the next offer redoes them.
            self.revert_negotiating();
            return Err(SfuError::Negotiation {
                participant: self.id,
                reason: e.to_string(),
            });
        }
        tracing::debug!(room = %self.room, participant = %self.id, connected = self.connected, "answer accepted");
        let mut direct = self.rtc.direct_api();
        for sub in &mut self.subscriptions {
            if let SubscriptionState::Negotiating(mid) = sub.state {
                match direct.stream_tx_by_mid(mid, None).map(|s| s.ssrc()) {
                    Some(ssrc) => sub.state = SubscriptionState::Open { mid, ssrc },
                    None => {
                        tracing::warn!(room = %self.room, participant = %self.id, %mid, "no send stream after answer");
                        sub.state = SubscriptionState::ToOpen;
                    }
                }
            }
        }
        self.subscriptions
            .retain(|s| !matches!(s.state, SubscriptionState::NegotiatingStop(_)));
        Ok(())
    }

    /// Adds a trickled ICE candidate from the browser.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), SfuError> {
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(SfuError::TooManyCandidates {
                participant: self.id,
                limit: MAX_REMOTE_CANDIDATES,
            });
        }
        self.remote_candidates += 1;
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        let c = Candidate::from_sdp_string(line).map_err(|e| SfuError::Negotiation {
            participant: self.id,
            reason: format!("bad ICE candidate: {e}"),
        })?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Subscribes to another participant's track (negotiated on the next poll).
    pub fn subscribe(&mut self, origin: ParticipantId, mid: Mid, kind: MediaKind) {
        let mut sub = Subscription::new(origin, mid, kind);
        if kind == MediaKind::Video {
            sub.view_height = self.views.get(origin);
            let now = self.clock.unwrap_or(self.joined_at).max(self.joined_at);
            self.video_wanted_since.get_or_insert(now);
        }
        self.subscriptions.push(sub);
    }

    /// Stops every subscription to a participant who left.
    pub fn unsubscribe_from(&mut self, origin: ParticipantId) {
        self.views.remove(origin);
        self.subscriptions.retain_mut(|s| {
            if s.origin != origin {
                return true;
            }
            match s.state {
                SubscriptionState::ToOpen => false,
                SubscriptionState::Negotiating(m) | SubscriptionState::Open { mid: m, .. } => {
                    s.state = SubscriptionState::ToStop(m);
                    true
                }
                _ => true,
            }
        });
    }

    pub fn handle_input(&mut self, input: Input) {
        let (Input::Timeout(t) | Input::Receive(t, _)) = input;
        self.clock = self.clock.max(Some(t));
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::warn!(room = %self.room, participant = %self.id, error = %e, "WebRTC session failed");
            self.rtc.disconnect();
        }
    }

    /// Produces this participant's next output. Signals for its own browser go to
    /// `signals`.
    pub fn poll(&mut self, signals: &mut VecDeque<(ParticipantId, MediaSignal)>) -> Polled {
        if !self.rtc.is_alive() {
            return Polled::Nothing;
        }
        if let Some(event) = self.pending.pop_front() {
            return Polled::Propagate(event);
        }
        match self.rtc.poll_output() {
            Ok(Output::Transmit(t)) => Polled::Transmit(t),
            Ok(Output::Timeout(t)) => {
                // Events are drained (so m-lines the browser offered to receive on
                // have been adopted): offer what is still unnegotiated.
                match self.negotiate_if_needed(signals) {
                    Some(offer) => {
                        signals.push_back((self.id, MediaSignal::Offer(offer)));
                        Polled::Nothing
                    }
                    None => Polled::Timeout(t),
                }
            }
            Ok(Output::Event(e)) => self.handle_event(e, signals),
            Err(e) => {
                tracing::warn!(room = %self.room, participant = %self.id, error = %e, "WebRTC session failed");
                self.rtc.disconnect();
                Polled::Nothing
            }
        }
    }

    fn handle_event(
        &mut self,
        event: Event,
        signals: &mut VecDeque<(ParticipantId, MediaSignal)>,
    ) -> Polled {
        match event {
            Event::Connected => {
                tracing::debug!(room = %self.room, participant = %self.id, "media connected");
                self.connected = true;
                let now = self.clock.unwrap_or(self.joined_at);
                self.connected_after
                    .get_or_insert(now.saturating_duration_since(self.joined_at));
                // Subscriptions negotiated before the transport came up got no
                // usable keyframe yet: ask for one now.
                let wanted =
                    waiting_for_keyframes(&self.subscriptions).map(|(publisher, mid, layer)| {
                        Propagated::KeyframeWanted {
                            publisher,
                            mid,
                            layer,
                        }
                    });
                self.pending.extend(wanted);
                signals.push_back((self.id, MediaSignal::Connected));
            }
            Event::IceConnectionStateChange(state) => {
                self.counters.on_ice_state(state);
                if state == IceConnectionState::Disconnected {
                    signals.push_back((self.id, MediaSignal::IceDisconnected))
                }
            }
            Event::MediaAdded(added) => {
                let ours = self
                    .subscriptions
                    .iter()
                    .any(|s| s.mid() == Some(added.mid));
                let incoming = matches!(added.direction, Direction::RecvOnly | Direction::SendRecv);
                // One camera and one microphone per participant: extra m-lines
                // would make every other browser negotiate (and receive) them.
                let duplicate = self.publications.iter().any(|p| p.kind == added.kind);
                if duplicate && incoming {
                    tracing::info!(room = %self.room, participant = %self.id, mid = %added.mid, "extra published track ignored");
                }
                if added.direction == Direction::SendOnly && added.kind == MediaKind::Video && !ours
                {
                    self.spare_video.get_or_insert(added.mid);
                }
                if incoming && !ours && self.receive_only {
                    tracing::info!(room = %self.room, participant = %self.id, mid = %added.mid, "receive-only participant's track not published");
                }
                if incoming && !ours && !duplicate && !self.receive_only {
                    self.publications
                        .push(Publication::new(added.mid, added.kind));
                    return Polled::Propagate(Propagated::Published {
                        origin: self.id,
                        mid: added.mid,
                        kind: added.kind,
                    });
                }
            }
            Event::RtpPacket(packet) => return self.incoming_rtp(packet),
            Event::ChannelOpen(id, label) => self.echo.on_open(id, &label),
            Event::ChannelData(d) => {
                let now = self.clock.unwrap_or(self.joined_at);
                if self.echo.admits(d.id, d.data.len(), now) {
                    if let Some(mut channel) = self.rtc.channel(d.id) {
                        // Full (the page stopped reading): the probe is lost.
                        let _ = channel.write(d.binary, &d.data);
                    }
                }
            }
            Event::MediaIngressStats(stats) => self.counters.on_ingress(stats),
            Event::MediaEgressStats(stats) => self.counters.on_egress(stats),
            Event::EgressBitrateEstimate(_) | Event::PeerStats(_) => {
                let moved = match event {
                    Event::EgressBitrateEstimate(kind) => self.downlink.on_estimate(kind),
                    Event::PeerStats(stats) => {
                        self.counters.on_peer(&stats);
                        if let Some(loss) = stats.egress_loss_fraction {
                            self.downlink.on_loss(stats.timestamp, loss);
                        }
                        let latest = stats.bwe_tx.map(|b| b.as_u64());
                        latest.and_then(|b| self.downlink.on_latest(stats.timestamp, b))
                    }
                    _ => None,
                };
                if let Some(bps) = moved {
                    tracing::info!(room = %self.room, participant = %self.id, estimate_kbps = bps / 1000, "downlink estimate");
                    self.adaptation.estimate_changes += 1;
                }
            }
            Event::KeyframeRequest(req) => {
                let sub = self.subscriptions.iter().find(|s| s.mid() == Some(req.mid));
                if let Some((sub, layer)) =
                    sub.and_then(|s| Some((s, s.forwarding.or(s.wanted())?)))
                {
                    return Polled::Propagate(Propagated::KeyframeWanted {
                        publisher: sub.origin,
                        mid: sub.source_mid,
                        layer,
                    });
                }
            }
            _ => {}
        }
        Polled::Nothing
    }

    /// Adopts the m-lines the browser offered to receive on (it pre-creates one
    /// audio and one video slot per participant already in the call), so waiting
    /// subscriptions use them at once: no renegotiation round trip before the
    /// first frame. `offer` is the browser's offer just accepted.
    pub fn adopt_receive_slots(
        &mut self,
        offer: &str,
        signals: &mut VecDeque<(ParticipantId, MediaSignal)>,
    ) {
        for line in offer.lines() {
            let Some(mid) = line.trim().strip_prefix("a=mid:") else {
                continue;
            };
            let mid = Mid::from(mid);
            let Some(media) = self.rtc.media(mid) else {
                continue;
            };
            if media.direction() != Direction::SendOnly {
                continue;
            }
            let kind = media.kind();
            let Some(sub) = self
                .subscriptions
                .iter_mut()
                .find(|s| s.kind == kind && s.state == SubscriptionState::ToOpen)
            else {
                continue;
            };
            let Some(ssrc) = self
                .rtc
                .direct_api()
                .stream_tx_by_mid(mid, None)
                .map(|s| s.ssrc())
            else {
                continue;
            };
            sub.state = SubscriptionState::Open { mid, ssrc };
            signals.push_back(track_signal(self.id, mid, sub.origin));
        }
    }

    fn incoming_rtp(&mut self, packet: RtpPacket) -> Polled {
        let Some((index, layer)) = self.find_layer(packet.header.ssrc) else {
            return Polled::Nothing;
        };
        let pt = packet.header.payload_type;
        let codecs = self.rtc.codec_config();
        let Some(params) = codecs
            .find(|p| p.pt() == pt || p.red() == Some(pt))
            .copied()
        else {
            return Polled::Nothing;
        };
        let publication = &mut self.publications[index];
        let stream = &mut publication.layers[layer.index()];
        stream.meter.record(
            packet.timestamp,
            packet.payload.len() + packet.header.header_len,
            packet.header.marker,
        );
        stream.arrivals.record(*packet.seq_no);
        let codec = params.spec().codec;
        let start_point =
            !codec.is_video() || crate::track::starts_keyframe(codec, &packet.payload);
        if start_point && codec.is_video() {
            stream.keyframes.keyframe_seen();
        }
        let vp8 = match codec {
            Codec::Vp8 => vp8_picture_numbers(&packet.payload),
            _ => None,
        };
        Polled::Propagate(Propagated::Rtp {
            origin: self.id,
            mid: publication.mid,
            layer,
            params,
            learnt: Learnt { start_point, vp8 },
            packet,
        })
    }

    /// The publication and layer an incoming SSRC belongs to, learned from
    /// str0m's stream (mid and simulcast rid) on its first packet.
    fn find_layer(&mut self, ssrc: Ssrc) -> Option<(usize, Layer)> {
        for (i, p) in self.publications.iter().enumerate() {
            for layer in Layer::ALL {
                if p.layers[layer.index()].ssrc == Some(ssrc) {
                    return Some((i, layer));
                }
            }
        }
        let mut direct = self.rtc.direct_api();
        let stream = direct.stream_rx(&ssrc)?;
        let (mid, rid) = (stream.mid(), stream.rid());
        let Some(layer) = Layer::from_rid(rid.as_deref()) else {
            tracing::debug!(room = %self.room, participant = %self.id, %mid, ?rid, "unknown simulcast rid ignored");
            return None;
        };
        let i = self.publications.iter().position(|p| p.mid == mid)?;
        let stream = &mut self.publications[i].layers[layer.index()];
        if stream.ssrc.is_some() {
            stream.arrivals.new_stream();
        }
        stream.ssrc = Some(ssrc);
        stream.rid = rid;
        self.new_layer_seen = true;
        tracing::debug!(room = %self.room, participant = %self.id, %mid, %layer, %ssrc, "incoming layer");
        Some((i, layer))
    }

    /// Writes another participant's packet to this participant, if subscribed.
    /// Video starts at a keyframe, of the wanted layer or, while nothing is
    /// shown yet, of a lower one; until one comes, packets are dropped and the
    /// caller is told to ask the publisher for a keyframe.
    /// Allocation-free: the payload is shared, the state is preallocated.
    pub fn forward(
        &mut self,
        origin: ParticipantId,
        source_mid: Mid,
        layer: Layer,
        params: &PayloadParams,
        learnt: Learnt,
        packet: &RtpPacket,
    ) -> Forwarded {
        if !self.connected {
            return Forwarded::Skipped;
        }
        let Some(sub) = self
            .subscriptions
            .iter_mut()
            .find(|s| s.origin == origin && s.source_mid == source_mid)
        else {
            return Forwarded::Skipped;
        };
        let SubscriptionState::Open { ssrc, .. } = sub.state else {
            return Forwarded::Skipped;
        };
        let wanted = sub.wanted();
        if wanted.is_none() {
            // Paused: nothing of this track fits the subscriber's link.
            sub.forwarding = None;
            return Forwarded::Skipped;
        }
        let spec = params.spec();
        let Learnt { start_point, vp8 } = learnt;
        if Some(layer) != sub.forwarding {
            // With no picture on screen (just joined, or resuming), a lower
            // layer's keyframe starts the tile at once; the wanted layer
            // takes over at its own keyframe.
            let starts_early = sub.forwarding.is_none() && Some(layer) < wanted;
            if Some(layer) != wanted && !starts_early {
                return Forwarded::Skipped;
            }
            if !start_point {
                return match starts_early {
                    true => Forwarded::Skipped,
                    false => Forwarded::NeedsKeyframe(layer),
                };
            }
            tracing::debug!(room = %self.room, participant = %self.id, %origin, from = ?sub.forwarding, to = %layer, "layer switched");
            sub.forwarding = Some(layer);
            sub.first_forwarded.get_or_insert(packet.timestamp);
            if !self.video_started && sub.kind == MediaKind::Video {
                let since = self.video_wanted_since.unwrap_or(self.joined_at);
                let after = packet.timestamp.saturating_duration_since(since);
                self.first_video_after = Some(after);
            }
            self.video_started |= sub.kind == MediaKind::Video;
            sub.rewriter.start_source(
                *packet.seq_no,
                packet.header.timestamp,
                packet.timestamp,
                spec.clock_rate.get(),
            );
            match vp8 {
                Some((_, numbers)) => sub.pictures.start_source(numbers),
                None => sub.pictures.start_unnumbered(),
            }
        }
        let incoming = packet.header.payload_type;
        let codecs = self.rtc.codec_config();
        let Some(out) = sub.outgoing_pt(incoming, || outgoing_pt(codecs, params, incoming)) else {
            return Forwarded::Skipped;
        };
        let (pt, payload) = match (out.incoming_red, out.red) {
            (true, Some(red)) if self.send_red => (red, packet.payload.clone()),
            (true, _) => {
                // A tight link, or no RED negotiated: the primary block alone.
                let Some((_, start)) = crate::codec::red_primary(&packet.payload) else {
                    return Forwarded::Skipped;
                };
                (out.pt, Arc::from(&packet.payload[start..]))
            }
            (false, _) => (out.pt, packet.payload.clone()),
        };
        let Some((seq, ts)) =
            sub.rewriter
                .rewrite(*packet.seq_no, packet.header.timestamp, packet.timestamp)
        else {
            return Forwarded::Skipped;
        };
        let renumbered = vp8.and_then(|(d, n)| vp8_patch(&d, sub.pictures.rewrite(seq, n)?));
        let nackable = sub.kind == MediaKind::Video;
        self.advance_clock(packet.timestamp);
        let mut direct = self.rtc.direct_api();
        let Some(tx) = direct.stream_tx(&ssrc) else {
            return Forwarded::Skipped;
        };
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut write = RtpWrite::new(pt, seq.into(), ts, packet.timestamp, payload)
            .marker(packet.header.marker)
            .ext_vals(ext)
            .nackable(nackable);
        if let Some(patch) = renumbered {
            write = write.vp8_patch(patch);
        }
        tx.write_rtp(write);
        Forwarded::Sent
    }

    /// Brings this session's clock up to `now` before a packet is written to
    /// it. str0m stamps each packet's send time with the last time it was
    /// given, and its bandwidth estimator compares those stamps with the
    /// browser's arrival times: a stale clock reads as a congested link.
    pub fn advance_clock(&mut self, now: Instant) {
        if !self.downlink.enabled() {
            // No estimator, no pacer: nothing reads send times that closely.
            return;
        }
        if self.clock.is_none_or(|c| now >= c + CLOCK_STEP) {
            self.handle_input(Input::Timeout(now));
        }
    }

    /// Runs a timer that is due (`due` at or before `now`) at once, in the
    /// same poll; returns whether it did. A packet written to a session is
    /// only sent after a timer run (str0m snapshots its send queues then), so
    /// without this every forwarded packet waited for the worker's next
    /// wake-up. With estimation on, a pacer deadline within [`PACING_SLACK`]
    /// of `now` also runs: a media worker's timer wakes about once a
    /// millisecond, while a bandwidth probe spaces its packets by less, and
    /// would otherwise be sent too slowly to find the bandwidth it probes for.
    pub fn run_due_timer(&mut self, due: Instant, now: Instant) -> bool {
        let slack = match self.downlink.enabled() {
            true => PACING_SLACK,
            false => Duration::ZERO,
        };
        if due > now + slack {
            return false;
        }
        self.handle_input(Input::Timeout(due.max(now)));
        true
    }

    /// How this participant's video adapted so far.
    pub fn adaptation(&self) -> AdaptationStats {
        AdaptationStats {
            estimate_bps: self.downlink.current(),
            ..self.adaptation
        }
    }

    /// This participant's media statistics, for the admin plane.
    pub fn stats(&self) -> ParticipantStats {
        let now = self.clock.unwrap_or(self.joined_at);
        let mut out = ParticipantStats {
            participant: self.id,
            room: self.room.clone(),
            adaptation: self.adaptation(),
            connected_after: self.connected_after,
            first_video_after: self.first_video_after,
            video_layers: self
                .subscriptions
                .iter()
                .filter(|s| s.kind == MediaKind::Video)
                .map(|s| ReceivedVideo {
                    origin: s.origin,
                    layer: s.forwarding,
                    starting: s
                        .first_forwarded
                        .is_none_or(|t| now.saturating_duration_since(t) < VIDEO_START_UP),
                })
                .collect(),
            ..ParticipantStats::default()
        };
        let kind_of = |mid| {
            self.publications
                .iter()
                .find(|p| p.mid == mid)
                .map(|p| p.kind)
        };
        self.counters.fill(&mut out, kind_of);
        for stream in self.publications.iter().flat_map(|p| p.layers.iter()) {
            out.upload_expected += stream.arrivals.expected();
            out.upload_lost += stream.arrivals.lost();
            out.upload_loss_runs += stream.arrivals.loss_runs();
        }
        out
    }

    /// Starts a download test on the video m-line the browser offered to
    /// receive on and nobody's video took (the connectivity check's).
    pub fn start_downlink_test(
        &mut self,
        plan: DownlinkPlan,
        now: Instant,
    ) -> Result<(), SfuError> {
        let no_stream = || SfuError::NoTestStream {
            participant: self.id,
        };
        let mid = self
            .spare_video
            .filter(|m| !self.subscriptions.iter().any(|s| s.mid() == Some(*m)))
            .ok_or_else(no_stream)?;
        let pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
            .ok_or_else(no_stream)?;
        tracing::info!(room = %self.room, participant = %self.id, %mid, "download test started");
        self.downlink_test = Some((mid, DownlinkTest::new(plan, pt, now)));
        Ok(())
    }

    /// Writes the download test's packets due at `now`; returns when the
    /// next one is due.
    pub fn send_test_packets(&mut self, now: Instant) -> Option<Instant> {
        let (mid, test) = self.downlink_test.as_mut()?;
        if !self.connected {
            return test.next_at();
        }
        let mut direct = self.rtc.direct_api();
        let Some(tx) = direct.stream_tx_by_mid(*mid, None) else {
            tracing::warn!(room = %self.room, participant = %self.id, %mid, "download test has no stream to send on");
            self.downlink_test = None;
            return None;
        };
        let mut wrote = false;
        while let Some(packet) = test.poll(now) {
            tx.write_rtp(packet);
            wrote = true;
        }
        let next = test.next_at();
        if next.is_none() {
            tracing::info!(room = %self.room, participant = %self.id, sent = test.sent(), "download test finished");
            self.downlink_test = None;
        }
        if wrote {
            // Written packets leave at the session's next timer run.
            self.handle_input(Input::Timeout(now));
        }
        next
    }

    /// Asks this participant's browser for a keyframe of one layer of a
    /// published track, coalesced by that layer's throttle.
    pub fn request_keyframe(&mut self, mid: Mid, layer: Layer, now: Instant) {
        let Some(publication) = self.publications.iter_mut().find(|p| p.mid == mid) else {
            return;
        };
        let stream = &mut publication.layers[layer.index()];
        if stream.keyframes.request(now) {
            tracing::debug!(room = %self.room, participant = %self.id, %mid, %layer, "keyframe requested");
            send_pli(&mut self.rtc, mid, stream.rid);
        }
    }

    /// Sends keyframe requests that the throttle deferred; returns the earliest
    /// time one is still waiting for.
    pub fn handle_deferred_keyframes(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for publication in &mut self.publications {
            for layer in Layer::ALL {
                let stream = &mut publication.layers[layer.index()];
                if stream.keyframes.poll_deferred(now) {
                    tracing::debug!(room = %self.room, participant = %self.id, mid = %publication.mid, %layer, "deferred keyframe requested");
                    send_pli(&mut self.rtc, publication.mid, stream.rid);
                }
                if let Some(t) = stream.keyframes.deferred_until() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        next
    }

    fn negotiate_if_needed(
        &mut self,
        signals: &mut VecDeque<(ParticipantId, MediaSignal)>,
    ) -> Option<String> {
        if !matches!(self.negotiation, Negotiation::Stable) {
            return None;
        }
        let wanted = self.subscriptions.iter().any(|s| {
            matches!(
                s.state,
                SubscriptionState::ToOpen | SubscriptionState::ToStop(_)
            )
        });
        if !wanted {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for sub in &mut self.subscriptions {
            match sub.state {
                SubscriptionState::ToOpen => {
                    let stream_id = sub.origin.to_string();
                    let track_id = format!("{}-{}", sub.origin, sub.source_mid);
                    let mid = change.add_media(
                        sub.kind,
                        Direction::SendOnly,
                        Some(stream_id),
                        Some(track_id),
                        None,
                    );
                    sub.state = SubscriptionState::Negotiating(mid);
                    signals.push_back(track_signal(self.id, mid, sub.origin));
                }
                SubscriptionState::ToStop(mid) => {
                    change.stop_media(mid);
                    sub.state = SubscriptionState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        tracing::debug!(room = %self.room, participant = %self.id, "offer sent");
        self.negotiation = Negotiation::AwaitingAnswer(pending);
        Some(offer.to_sdp_string())
    }
}

/// Tells `to`'s browser that m-line `mid` carries `origin`'s track; queued
/// before the SDP that uses the mid.
fn track_signal(
    to: ParticipantId,
    mid: Mid,
    origin: ParticipantId,
) -> (ParticipantId, MediaSignal) {
    (
        to,
        MediaSignal::Track {
            mid: mid.to_string(),
            participant: origin,
        },
    )
}

fn send_pli(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) {
    if let Some(stream) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
        stream.request_keyframe(KeyframeRequestKind::Pli);
    }
}

/// How a publisher's packets of payload type `incoming` go out to a
/// subscriber whose codecs are `codecs`: matched on the codec, not the number
/// (browsers number codecs differently).
fn outgoing_pt(codecs: &CodecConfig, params: &PayloadParams, incoming: Pt) -> Option<OutgoingPt> {
    let matched = codecs.match_params(*params)?;
    let incoming_red = params.red() == Some(incoming);
    Some(OutgoingPt {
        pt: matched.pt(),
        red: matched.red().filter(|_| incoming_red),
        incoming_red,
    })
}

/// Open video subscriptions that wait for the first keyframe of their layer.
fn waiting_for_keyframes(
    subs: &[Subscription],
) -> impl Iterator<Item = (ParticipantId, Mid, Layer)> + '_ {
    subs.iter().filter(|s| s.is_open_video()).filter_map(|s| {
        let layer = s.wanted()?;
        (s.forwarding != Some(layer)).then_some((s.origin, s.source_mid, layer))
    })
}
