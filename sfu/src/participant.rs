//! One participant's WebRTC session and its tracks.
//!
//! The browser makes the first offer (its camera and microphone); after that the
//! SFU is the only side that offers, adding and stopping other participants'
//! tracks. One offer at a time: changes wanted while an offer is out wait for
//! its answer.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::Transmit;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::error::SfuError;
use crate::id::ParticipantId;
use crate::signal::MediaSignal;
use crate::track::{Publication, Subscription, SubscriptionState};

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
        params: PayloadParams,
        keyframe_start: bool,
        packet: RtpPacket,
    },
    /// A subscriber wants a keyframe of a publisher's track.
    KeyframeWanted { publisher: ParticipantId, mid: Mid },
}

/// What became of one packet offered to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Written to the subscriber's stream.
    Sent,
    /// Not for this subscriber (not subscribed, not negotiated yet, not connected).
    Skipped,
    /// Dropped because the subscriber waits for a keyframe: the publisher must
    /// be asked for one, or the subscriber's tile stays black.
    NeedsKeyframe,
}

/// What one poll of a participant gave.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Polled {
    Transmit(Transmit),
    Propagate(Propagated),
    Timeout(Instant),
    Nothing,
}

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
}

impl Participant {
    pub fn new(id: ParticipantId, rtc: Rtc) -> Self {
        Participant {
            id,
            rtc,
            negotiation: Negotiation::Stable,
            publications: Vec::new(),
            subscriptions: Vec::new(),
            connected: false,
            pending: VecDeque::new(),
        }
    }

    /// Accepts an offer from the browser and returns the SDP answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp {
            participant: self.id,
            reason: e.to_string(),
        })?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Negotiation {
                participant: self.id,
                reason: e.to_string(),
            })?;
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

    /// Accepts the browser's answer to our last offer. Returns the subscriptions
    /// (publisher, source mid) of video tracks that just opened, which need a
    /// keyframe from their publisher now.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<(ParticipantId, Mid)>, SfuError> {
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
        tracing::debug!(participant = %self.id, connected = self.connected, "answer accepted");
        let mut opened = Vec::new();
        let mut direct = self.rtc.direct_api();
        for sub in &mut self.subscriptions {
            if let SubscriptionState::Negotiating(mid) = sub.state {
                match direct.stream_tx_by_mid(mid, None).map(|s| s.ssrc()) {
                    Some(ssrc) => {
                        sub.state = SubscriptionState::Open { mid, ssrc };
                        if sub.kind == MediaKind::Video && self.connected {
                            opened.push((sub.origin, sub.source_mid));
                        }
                    }
                    None => {
                        tracing::warn!(participant = %self.id, %mid, "no send stream after answer");
                        sub.state = SubscriptionState::ToOpen;
                    }
                }
            }
        }
        self.subscriptions
            .retain(|s| !matches!(s.state, SubscriptionState::NegotiatingStop(_)));
        Ok(opened)
    }

    /// Adds a trickled ICE candidate from the browser.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), SfuError> {
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
        self.subscriptions
            .push(Subscription::new(origin, mid, kind));
    }

    /// Stops every subscription to a participant who left.
    pub fn unsubscribe_from(&mut self, origin: ParticipantId) {
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
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::warn!(participant = %self.id, error = %e, "WebRTC session failed");
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
                tracing::warn!(participant = %self.id, error = %e, "WebRTC session failed");
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
                tracing::debug!(participant = %self.id, "media connected");
                self.connected = true;
                // Subscriptions negotiated before the transport came up got no
                // usable keyframe yet: ask for one now.
                let wanted = open_video_sources(&self.subscriptions)
                    .map(|(publisher, mid)| Propagated::KeyframeWanted { publisher, mid });
                self.pending.extend(wanted);
                signals.push_back((self.id, MediaSignal::Connected));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                signals.push_back((self.id, MediaSignal::IceDisconnected))
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
                    tracing::info!(participant = %self.id, mid = %added.mid, "extra published track ignored");
                }
                if incoming && !ours && !duplicate {
                    self.publications.push(Publication {
                        mid: added.mid,
                        kind: added.kind,
                        ssrc: None,
                        keyframes: Default::default(),
                    });
                    return Polled::Propagate(Propagated::Published {
                        origin: self.id,
                        mid: added.mid,
                        kind: added.kind,
                    });
                }
            }
            Event::RtpPacket(packet) => return self.incoming_rtp(packet),
            Event::KeyframeRequest(req) => {
                if let Some(sub) = self.subscriptions.iter().find(|s| s.mid() == Some(req.mid)) {
                    return Polled::Propagate(Propagated::KeyframeWanted {
                        publisher: sub.origin,
                        mid: sub.source_mid,
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
        let ssrc = packet.header.ssrc;
        let index = match self.publications.iter().position(|p| p.ssrc == Some(ssrc)) {
            Some(i) => i,
            None => {
                let Some(mid) = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid()) else {
                    return Polled::Nothing;
                };
                let Some(i) = self.publications.iter().position(|p| p.mid == mid) else {
                    return Polled::Nothing;
                };
                self.publications[i].ssrc = Some(ssrc);
                i
            }
        };
        let mid = self.publications[index].mid;
        let pt = packet.header.payload_type;
        let Some(params) = self.rtc.codec_config().find(|p| p.pt() == pt).copied() else {
            return Polled::Nothing;
        };
        let keyframe_start = params.spec().codec.is_video()
            && crate::track::starts_keyframe(params.spec().codec, &packet.payload);
        if keyframe_start {
            self.publications[index].keyframes.keyframe_seen();
        }
        Polled::Propagate(Propagated::Rtp {
            origin: self.id,
            mid,
            params,
            keyframe_start,
            packet,
        })
    }

    /// Writes another participant's packet to this participant, if subscribed.
    /// Video starts at a keyframe; until one comes, packets are dropped and
    /// the caller is told to ask the publisher for a keyframe.
    /// Allocation-free: the payload is shared, the state is preallocated.
    pub fn forward(
        &mut self,
        origin: ParticipantId,
        source_mid: Mid,
        params: &PayloadParams,
        keyframe_start: bool,
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
        if sub.awaiting_keyframe {
            if !keyframe_start {
                return Forwarded::NeedsKeyframe;
            }
            sub.awaiting_keyframe = false;
            tracing::debug!(participant = %self.id, %origin, "first keyframe forwarded");
        }
        let codecs = self.rtc.codec_config();
        let Some(pt) = sub.outgoing_pt(params, |p| codecs.match_params(*p).map(|m| m.pt())) else {
            return Forwarded::Skipped;
        };
        let Some(seq) = sub.seq.rewrite(*packet.seq_no) else {
            return Forwarded::Skipped;
        };
        let nackable = sub.kind == MediaKind::Video;
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
        tx.write_rtp(
            RtpWrite::new(
                pt,
                seq.into(),
                packet.header.timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(ext)
            .nackable(nackable),
        );
        Forwarded::Sent
    }

    /// Asks this participant's browser for a keyframe on a published track,
    /// coalesced by the track's throttle.
    pub fn request_keyframe(&mut self, mid: Mid, now: Instant) {
        let Some(publication) = self.publications.iter_mut().find(|p| p.mid == mid) else {
            return;
        };
        if publication.keyframes.request(now) {
            tracing::debug!(participant = %self.id, %mid, "keyframe requested");
            send_pli(&mut self.rtc, mid);
        }
    }

    /// Sends keyframe requests that the throttle deferred; returns the earliest
    /// time one is still waiting for.
    pub fn handle_deferred_keyframes(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for publication in &mut self.publications {
            if publication.keyframes.poll_deferred(now) {
                tracing::debug!(participant = %self.id, mid = %publication.mid, "deferred keyframe requested");
                send_pli(&mut self.rtc, publication.mid);
            }
            if let Some(t) = publication.keyframes.deferred_until() {
                next = Some(next.map_or(t, |n| n.min(t)));
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
        tracing::debug!(participant = %self.id, "offer sent");
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

fn send_pli(rtc: &mut Rtc, mid: Mid) {
    if let Some(stream) = rtc.direct_api().stream_rx_by_mid(mid, None) {
        stream.request_keyframe(KeyframeRequestKind::Pli);
    }
}

fn open_video_sources(subs: &[Subscription]) -> impl Iterator<Item = (ParticipantId, Mid)> + '_ {
    subs.iter()
        .filter(|s| s.kind == MediaKind::Video && matches!(s.state, SubscriptionState::Open { .. }))
        .map(|s| (s.origin, s.source_mid))
}
