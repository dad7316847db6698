//! A room: its participants and the publish → subscribe graph. Sans-IO: fed
//! with packets, commands and time; polled for datagrams to send, signals for
//! browsers and the time it next needs attention. A room spanning other
//! nodes is in `span.rs`.

mod call_state;
mod span;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Mid};
use str0m::net::Transmit;
use str0m::{Candidate, Input, Rtc};

use crate::bandwidth::{AdaptationStats, INITIAL_ESTIMATE};
use crate::cascade::Relay;
use crate::downlink_test::DownlinkPlan;
use crate::dtls_identity;
use crate::error::SfuError;
use crate::forward::Layer;
use crate::id::{ParticipantId, RoomId};
use crate::participant::{Forwarded, Participant, Polled, Propagated, Signals};
use crate::recording::tap::RecordingTap;
use crate::signal::MediaSignal;
use crate::stats::ParticipantStats;

/// How long the room may sleep when nothing asks for sooner attention.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often every subscriber's video layers are chosen again.
const LAYER_INTERVAL: Duration = Duration::from_millis(250);

/// One call. Owned by exactly one media worker: no locks on its packet path.
#[derive(Debug)]
pub struct Room {
    id: RoomId,
    participants: Vec<Participant>,
    propagate: VecDeque<Propagated>,
    signals: Signals,
    /// When layers are next chosen; `None` means at the next poll (something
    /// changed: a subscription opened, a tile was resized).
    next_layers: Option<Instant>,
    /// Whether sessions estimate their downlink and follow it (see
    /// `docs/adaptation.md` for why this is not yet the default).
    estimate_bandwidth: bool,
    /// The running recording's tap, if the room is being recorded.
    recording: Option<RecordingTap>,
    /// Participants who may only receive (observers): what they offer to
    /// send is never published.
    receive_only: Vec<ParticipantId>,
    /// Its links to other nodes, when the call spans them.
    relay: Relay,
    /// How signalling described each participant here, for other nodes
    /// (see [`Room::announce`]).
    local_infos: Vec<(ParticipantId, std::sync::Arc<str>)>,
    /// Who started the recording running here and when (Unix seconds),
    /// for other nodes (see [`Room::announce_recording`]).
    local_recording: Option<(ParticipantId, u64)>,
    /// The call's consent to record as last noted, here or on another
    /// node (see [`Room::announce_consent`]).
    consent: Option<call_state::NotedConsent>,
}

/// Which sessions a poll runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    /// Every session something reached or whose timer is due.
    Due,
    /// Only sessions fed a datagram since their last poll.
    Received,
}

/// Bounds the timer runs within one poll of a participant.
const MAX_EARLY_RUNS: usize = 64;

/// How often str0m reports statistics when estimating bandwidth: the
/// latest estimate arrives with them (see `bandwidth.rs`).
const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// How often otherwise: the admin plane's rates and totals.
const STATS_INTERVAL_UNESTIMATED: Duration = Duration::from_secs(1);

/// Builds a WebRTC session configured the way the SFU forwards: RTP mode (packets,
/// not frames), ICE-lite (the SFU has only host candidates and answers checks),
/// Opus + VP8 + H.264; with `estimate_bandwidth`, send-side bandwidth
/// estimation (which also paces what is sent to the estimate). Every session
/// presents the process's one DTLS certificate (see `dtls_identity.rs`).
pub fn new_session(now: Instant, estimate_bandwidth: bool) -> Rtc {
    let initial = estimate_bandwidth.then_some(Bitrate::bps(INITIAL_ESTIMATE));
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .enable_bwe(initial)
        // The estimator's unsmoothed value comes with peer statistics.
        .set_stats_interval(Some(match estimate_bandwidth {
            true => STATS_INTERVAL,
            false => STATS_INTERVAL_UNESTIMATED,
        }))
        .clear_codecs()
        .enable_opus(true, true)
        // The answer lists codecs in this order whatever the offer's, and a
        // browser sends the first: VP8 before H.264, so a Safari offering
        // H.264 first still sends VP8, which every viewer decodes and the
        // recorder keeps (docs/decisions.md, "Video codec: VP8 first").
        .enable_vp8(true)
        .enable_h264(true);
    if let Some(cert) = dtls_identity::dtls_cert(now) {
        config = config.set_dtls_cert(cert);
    }
    config.build(now)
}

impl Room {
    /// An empty room.
    pub fn new(id: RoomId) -> Self {
        Room {
            id,
            participants: Vec::new(),
            propagate: VecDeque::with_capacity(64),
            signals: VecDeque::new(),
            next_layers: None,
            estimate_bandwidth: false,
            recording: None,
            receive_only: Vec::new(),
            relay: Relay::default(),
            local_infos: Vec::new(),
            local_recording: None,
            consent: None,
        }
    }

    /// Marks `id`, before it connects, as one who may only receive: the
    /// tracks its browser offers are not published to anyone.
    pub fn set_receive_only(&mut self, id: ParticipantId) {
        if !self.receive_only.contains(&id) {
            self.receive_only.push(id);
        }
    }

    /// Starts recording the room into `tap`, made by the caller with the
    /// recorder's file, thread and clock ([`crate::recording::start`]), so
    /// the room does no IO. The recording ends at
    /// [`Room::stop_recording`] or when the room does. While recording,
    /// every camera keeps sending its best layer.
    pub(crate) fn start_recording(&mut self, tap: RecordingTap) {
        self.recording = Some(tap);
        self.next_layers = None;
    }

    /// Stops the recording, if one runs; the recorder then finishes the file.
    pub fn stop_recording(&mut self) {
        self.recording = None;
        self.next_layers = None;
    }

    /// True while the room is being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Turns downlink bandwidth estimation on for participants who join from
    /// now on: layers then follow each subscriber's estimate as well as its
    /// tile sizes, and what is sent to it is paced to the estimate.
    pub fn set_bandwidth_estimation(&mut self, on: bool) {
        self.estimate_bandwidth = on;
    }

    /// The room's id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// True when nobody is left (nor announced, about to connect).
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty() && self.local_infos.is_empty()
    }

    /// Participants currently in the room.
    pub fn participant_ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.iter().map(|p| p.id)
    }

    /// Adds a participant from its browser's first offer; the answer is queued as
    /// a signal. It subscribes to everything already published in the room.
    pub fn connect(
        &mut self,
        now: Instant,
        id: ParticipantId,
        offer: &str,
        local_candidates: &[Candidate],
    ) -> Result<(), SfuError> {
        if self.participants.iter().any(|p| p.id == id) {
            // A second offer from the same participant is a renegotiation.
            let answer = self.participant_mut(id)?.accept_offer(offer)?;
            self.signals.push_back((id, MediaSignal::Answer(answer)));
            return Ok(());
        }
        let mut rtc = new_session(now, self.estimate_bandwidth);
        for c in local_candidates {
            rtc.add_local_candidate(c.clone());
        }
        self.tell_remote_peers(id);
        let mut participant =
            Participant::new(self.id.clone(), id, now, rtc, self.estimate_bandwidth);
        participant.receive_only = self.receive_only.contains(&id);
        let answer = participant.accept_offer(offer)?;
        for other in &self.participants {
            for publication in &other.publications {
                participant.subscribe(other.id, publication.mid, publication.kind);
            }
        }
        for r in &self.relay.remote {
            let publication = &r.publication;
            participant.subscribe(r.origin, publication.mid, publication.kind);
        }
        participant.adopt_receive_slots(offer, &mut self.signals);
        self.participants.push(participant);
        self.signals.push_back((id, MediaSignal::Answer(answer)));
        self.next_layers = None;
        Ok(())
    }

    /// Takes a participant's answer to the SFU's offer.
    pub fn accept_answer(&mut self, id: ParticipantId, answer: &str) -> Result<(), SfuError> {
        self.participant_mut(id)?.accept_answer(answer)?;
        // Newly opened subscriptions get their first layer (and keyframe) now.
        self.next_layers = None;
        Ok(())
    }

    /// Records the size, in device pixels, at which participant `id` shows
    /// `origin`'s video: a thumbnail is sent a small layer.
    pub fn set_view(
        &mut self,
        id: ParticipantId,
        origin: ParticipantId,
        height: u32,
    ) -> Result<(), SfuError> {
        self.participant_mut(id)?.set_view(origin, height);
        self.next_layers = None;
        Ok(())
    }

    /// Starts the connectivity check's download test to participant `id`
    /// (see [`DownlinkPlan`]).
    pub fn start_downlink_test(
        &mut self,
        id: ParticipantId,
        plan: DownlinkPlan,
        now: Instant,
    ) -> Result<(), SfuError> {
        let p = self.participant_mut(id)?;
        p.start_downlink_test(plan, now)?;
        p.touch();
        Ok(())
    }

    /// Adds a trickled ICE candidate from a participant's browser.
    pub fn add_remote_candidate(&mut self, id: ParticipantId, c: &str) -> Result<(), SfuError> {
        self.participant_mut(id)?.add_remote_candidate(c)
    }

    /// Removes a participant; the others' copies of its tracks are stopped,
    /// here and on the nodes the room spans.
    pub fn remove(&mut self, id: ParticipantId) {
        let before = self.participants.len();
        self.participants.retain(|p| p.id != id);
        self.receive_only.retain(|p| *p != id);
        let announced = self.local_infos.len();
        self.local_infos.retain(|(p, _)| *p != id);
        if self.participants.len() != before || self.local_infos.len() != announced {
            self.unsubscribe_all_from(id);
            self.relay.local_left(id);
        }
    }

    /// How many sessions the next poll at `now` will run: those something
    /// reached since their last poll, and those whose timer is due. The rest
    /// are skipped.
    pub fn sessions_to_poll(&self, now: Instant) -> usize {
        self.participants.iter().filter(|p| p.due(now)).count()
    }

    /// The participant whose session this datagram belongs to, if any.
    pub fn accepts(&self, input: &Input) -> Option<ParticipantId> {
        self.participants
            .iter()
            .find(|p| p.rtc.accepts(input))
            .map(|p| p.id)
    }

    /// Feeds a datagram to a participant's session.
    pub fn handle_input(&mut self, id: ParticipantId, input: Input) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
            p.touch();
            p.received = true;
            p.handle_input(input);
        }
    }

    /// Advances the clock of every session whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in &mut self.participants {
            if !p.due(now) {
                continue;
            }
            p.touch();
            p.handle_input(Input::Timeout(now));
            p.handle_deferred_keyframes(now);
        }
    }

    /// Drains every session: datagrams go to `transmit`, packets are forwarded
    /// between participants, and the time of the next needed timeout is returned.
    // Never inlined: `benches/instructions.sh` counts the room's work by
    // this function's name. It runs once per wake-up, not per packet.
    #[inline(never)]
    pub fn poll(&mut self, now: Instant, transmit: impl FnMut(&Transmit)) -> Instant {
        self.poll_sessions(now, transmit, Which::Due)
    }

    /// Polls only the sessions fed a datagram since their last poll, and
    /// hands what they published to their subscribers without polling those.
    /// Between datagrams of one burst this is enough: a subscriber then sends
    /// the whole burst from one [`Room::poll`] at its end, instead of being
    /// polled once per packet.
    pub fn poll_received(&mut self, now: Instant, transmit: impl FnMut(&Transmit)) {
        self.poll_sessions(now, transmit, Which::Received);
    }

    fn poll_sessions(
        &mut self,
        now: Instant,
        mut transmit: impl FnMut(&Transmit),
        which: Which,
    ) -> Instant {
        loop {
            let mut next = now + IDLE_POLL;
            for p in &mut self.participants {
                if which == Which::Received && !p.received {
                    continue;
                }
                // Nothing reached it and its timer is not due: polling would
                // only run its timers early.
                if let Some(wake) = p.sleeping_until(now) {
                    next = next.min(wake);
                    continue;
                }
                p.received = false;
                let mut wake = now + IDLE_POLL;
                p.advance_clock(now);
                if let Some(t) = p.send_test_packets(now) {
                    wake = wake.min(t);
                }
                let mut early_runs = 0;
                loop {
                    match p.poll(&mut self.signals) {
                        Polled::Transmit(t) => transmit(&t),
                        Polled::Propagate(event) => self.propagate.push_back(event),
                        Polled::Timeout(t)
                            if early_runs < MAX_EARLY_RUNS && p.run_due_timer(t, now) =>
                        {
                            early_runs += 1;
                        }
                        Polled::Timeout(t) => {
                            wake = wake.min(t);
                            break;
                        }
                        Polled::Nothing if !p.rtc.is_alive() => break,
                        Polled::Nothing => {}
                    }
                }
                if let Some(t) = p.handle_deferred_keyframes(now) {
                    wake = wake.min(t);
                }
                // A dead session is polled every time until it is removed.
                p.sleep_until(wake);
                next = next.min(wake);
                if p.take_new_layer() {
                    self.next_layers = None;
                }
            }
            // Due, or a layer just started: choose before its first packets
            // are offered, since one of them may be the keyframe to start on.
            if self.next_layers.is_none_or(|t| t <= now) {
                self.select_layers(now);
            }
            if let Some(t) = self.next_layers {
                next = next.min(t);
            }
            if let Some(t) = self.deferred_remote_keyframes(now) {
                next = next.min(t);
            }
            let mut wishes = Vec::new();
            if let Some(tap) = &mut self.recording {
                tap.keyframe_wishes(|origin, mid, layer| wishes.push((origin, mid, layer)));
            }
            for (origin, mid, layer) in wishes {
                self.request_keyframe(origin, mid, layer, now);
            }
            if self.propagate.is_empty() {
                self.remove_dead();
                return next;
            }
            while let Some(event) = self.propagate.pop_front() {
                self.deliver(now, event);
            }
        }
    }

    /// How each participant's video adapted so far.
    pub fn adaptation(&self) -> Vec<(ParticipantId, AdaptationStats)> {
        self.participants
            .iter()
            .map(|p| (p.id, p.adaptation()))
            .collect()
    }

    /// Every participant's media statistics, for the admin plane.
    pub fn stats(&self) -> Vec<ParticipantStats> {
        self.participants.iter().map(Participant::stats).collect()
    }

    /// The next signal for a participant's browser.
    pub fn poll_signal(&mut self) -> Option<(ParticipantId, MediaSignal)> {
        self.signals.pop_front()
    }

    fn deliver(&mut self, now: Instant, event: Propagated) {
        match event {
            Propagated::Published { origin, mid, kind } => {
                for p in self.participants.iter_mut().filter(|p| p.id != origin) {
                    p.touch();
                    p.subscribe(origin, mid, kind);
                }
                self.relay
                    .tell_all(crate::cascade::Control::Published { origin, mid, kind });
            }
            Propagated::Rtp {
                origin,
                mid,
                layer,
                params,
                learnt,
                packet,
            } => {
                let mut wants_keyframe = false;
                for p in self.participants.iter_mut().filter(|p| p.id != origin) {
                    match p.forward(origin, mid, layer, &params, learnt, &packet) {
                        // Only a session given a packet has anything to send.
                        Forwarded::Sent => p.touch(),
                        Forwarded::NeedsKeyframe(l) => wants_keyframe |= l == layer,
                        Forwarded::Skipped => {}
                    }
                }
                let recording_wants = self.recording.as_mut().and_then(|tap| {
                    tap.offer(
                        now,
                        origin,
                        mid,
                        layer,
                        &params,
                        learnt.start_point,
                        &packet,
                    )
                });
                // Ours to every node; a far one's on to the others.
                if !self.relay.is_alone() {
                    self.relay.offer(origin, mid, layer, &params, &packet);
                }
                if let Some(wanted) = recording_wants {
                    self.request_keyframe(origin, mid, wanted, now);
                }
                if wants_keyframe {
                    // Coalesced per layer: one request outstanding, however many wait.
                    self.request_keyframe(origin, mid, layer, now);
                }
            }
            Propagated::KeyframeWanted {
                publisher,
                mid,
                layer,
            } => self.request_keyframe(publisher, mid, layer, now),
        }
    }

    /// Chooses every subscriber's video layers, and asks publishers for the
    /// keyframes that the switches need.
    fn select_layers(&mut self, now: Instant) {
        let rates: Vec<_> = self
            .participants
            .iter()
            .flat_map(|p| {
                p.publications
                    .iter()
                    .filter(|publication| publication.kind == MediaKind::Video)
                    .map(move |publication| (p.id, publication.mid, publication.layer_rates(now)))
            })
            .chain(self.remote_rates(now))
            .collect();
        self.note_floors(&rates);
        self.next_layers = Some(now + LAYER_INTERVAL);
        // Three kinds of wanting, kept apart: a viewer's wish (the layer its
        // tile and link would take of a camera), a camera's ceiling (the
        // best any viewer wishes for: dynacast), and the keyframes needed by
        // viewers just switched to a layer.
        let mut keyframes_needed = Vec::new();
        for p in &mut self.participants {
            p.touch();
            p.select_layers(now, &rates, &mut self.signals, &mut keyframes_needed);
        }
        // Dynacast: each camera sends only the layers someone would take; a
        // recording takes the best.
        let recording = self.recording.is_some();
        let ceilings: Vec<Option<Layer>> = self
            .participants
            .iter()
            .map(|publisher| {
                if recording {
                    return Some(Layer::FULL);
                }
                let viewers = self.participants.iter().filter(|v| v.id != publisher.id);
                let far = self.relay.ceiling_for(publisher.id);
                viewers
                    .filter_map(|v| v.wish_for(publisher.id))
                    .chain(far)
                    .max()
            })
            .collect();
        for (p, ceiling) in self.participants.iter_mut().zip(ceilings) {
            p.limit_publishing(now, ceiling, &mut self.signals);
        }
        self.ask_far_nodes();
        for (publisher, mid, layer) in keyframes_needed {
            self.request_keyframe(publisher, mid, layer, now);
        }
    }

    /// Asks a publisher for a keyframe of one layer (coalesced by its throttle).
    fn request_keyframe(&mut self, publisher: ParticipantId, mid: Mid, layer: Layer, now: Instant) {
        if let Some(p) = self.participants.iter_mut().find(|p| p.id == publisher) {
            p.touch();
            p.request_keyframe(mid, layer, now);
        } else {
            self.request_remote_keyframe(publisher, mid, layer, now);
        }
    }

    fn remove_dead(&mut self) {
        while let Some(i) = self.participants.iter().position(|p| !p.rtc.is_alive()) {
            let id = self.participants[i].id;
            tracing::info!(room = %self.id, participant = %id, "media session ended");
            self.remove(id);
            self.signals
                .push_back((id, MediaSignal::Closed("media session ended".into())));
        }
    }

    /// Queues `signal` for every browser here.
    fn tell_everyone(&mut self, signal: MediaSignal) {
        for p in &self.participants {
            self.signals.push_back((p.id, signal.clone()));
        }
    }

    /// A participant the caller is about to hand something: it is polled
    /// at the next poll.
    fn participant_mut(&mut self, id: ParticipantId) -> Result<&mut Participant, SfuError> {
        let room = &self.id;
        let p = self
            .participants
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| SfuError::UnknownParticipant {
                room: room.clone(),
                participant: id,
            })?;
        p.touch();
        Ok(p)
    }
}
