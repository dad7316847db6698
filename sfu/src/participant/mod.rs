//! One participant's WebRTC session and its tracks: the struct, its
//! polling and its clock here; offers and answers in `negotiation.rs`, what
//! its session reports in `events.rs`, its camera's packets and keyframes in
//! `publish.rs`, what it receives of others in `subscribe.rs`, which layers
//! it receives and publishes in `layers.rs`, and the connectivity check's
//! download test in `check.rs`.

mod check;
mod events;
mod layers;
mod negotiation;
mod publish;
mod subscribe;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};
use str0m::net::Transmit;
use str0m::{Input, Output, Rtc};

use crate::bandwidth::{AdaptationStats, DownlinkEstimate};
use crate::downlink_test::DownlinkTest;
use crate::echo::Echo;
use crate::forward::PublishLimit;
use crate::id::{ParticipantId, RoomId};
use crate::signal::MediaSignal;
use crate::stats::{MediaCounters, ParticipantStats, ReceivedVideo, VIDEO_START_UP};
use crate::tiles::TileSizes;
use crate::track::{Publication, Subscription};

use negotiation::Negotiation;
pub(crate) use publish::{receive, Learnt, Propagated};
pub(crate) use subscribe::Forwarded;

/// Signals for browsers, by participant, queued while a room works and
/// sent by the signalling layer afterwards.
pub(crate) type Signals = VecDeque<(ParticipantId, MediaSignal)>;

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
    new_layer_seen: bool,
    /// When this participant next needs polling if nothing reaches it
    /// first; `None` means at the next poll. The room sets `None` whenever it
    /// hands the participant anything (input, a packet to forward, a
    /// request), so an untouched session is not polled before its timer.
    wake_at: Option<Instant>,
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
    /// Its room.
    room: RoomId,
    /// Every log line of this participant's is in it: it names the room and
    /// the participant.
    span: tracing::Span,
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

impl Participant {
    pub fn new(
        room: RoomId,
        id: ParticipantId,
        now: Instant,
        rtc: Rtc,
        estimate_bandwidth: bool,
    ) -> Self {
        Participant {
            span: tracing::info_span!("participant", room = %room, participant = %id),
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

    /// Something reached this participant (input, a packet to forward, a
    /// request): it is polled at the next pass, whatever its timer says.
    #[inline]
    pub fn touch(&mut self) {
        self.wake_at = None;
    }

    /// Whether it needs polling at `now`: touched, or its timer is due.
    #[inline]
    pub fn due(&self, now: Instant) -> bool {
        self.wake_at.is_none_or(|w| w <= now)
    }

    /// When it next needs polling, if that is after `now` and nothing
    /// touches it first.
    #[inline]
    pub fn sleeping_until(&self, now: Instant) -> Option<Instant> {
        self.wake_at.filter(|w| *w > now)
    }

    /// Leaves it untouched until `wake` (a closed session waits for nothing).
    #[inline]
    pub fn sleep_until(&mut self, wake: Instant) {
        self.wake_at = self.rtc.is_alive().then_some(wake);
    }

    /// Whether one of its streams sent its first packet since last asked:
    /// the room chooses layers again before forwarding it.
    #[inline]
    pub fn take_new_layer(&mut self) -> bool {
        std::mem::take(&mut self.new_layer_seen)
    }

    pub fn handle_input(&mut self, input: Input) {
        let (Input::Timeout(t) | Input::Receive(t, _)) = input;
        self.clock = self.clock.max(Some(t));
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::warn!(parent: &self.span, error = %e, "WebRTC session failed");
            self.rtc.disconnect();
        }
    }

    /// Produces this participant's next output. Signals for its own browser go to
    /// `signals`.
    pub fn poll(&mut self, signals: &mut Signals) -> Polled {
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
                tracing::warn!(parent: &self.span, error = %e, "WebRTC session failed");
                self.rtc.disconnect();
                Polled::Nothing
            }
        }
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
}
