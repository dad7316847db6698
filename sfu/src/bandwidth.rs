//! What the link to one subscriber can carry, and when to probe it for more.
//!
//! str0m estimates the send bandwidth from the browser's transport-wide
//! congestion control feedback (TWCC, delay- and loss-based, the GCC family)
//! and reports it as [`BweKind::Twcc`]. A browser without TWCC may still send
//! REMB, its own receive estimate: that is the fallback. Audio is reserved
//! before video is given anything.
//!
//! str0m's estimate event is a mean over the last 3 s, which lags a sudden
//! drop by seconds while the link is flooded. Its peer statistics carry the
//! estimator's latest value, unsmoothed: the layer budget follows that, so it
//! falls at once on a link that loses packets (and after [`DIP_CONFIRM`] on
//! one that does not); a step up has its own hysteresis in the layer choice.
//! Pausing video waits for the mean to fall too.

use std::time::{Duration, Instant};

use str0m::bwe::BweKind;

/// Where str0m's estimate starts. Its first probes go to 3x and 6x this, so a
/// good link is found within about a second; a poor one starts on low layers.
pub const INITIAL_ESTIMATE: u64 = 1_000_000;

/// Reserved per audio track before any video: Opus speech at up to 40 kbit/s
/// plus about 24 kbit/s of packet headers at 50 packets a second.
pub const AUDIO_RESERVE: u64 = 64_000;

/// With no estimate this long after media connected, the browser sends no
/// bandwidth feedback at all; layers then follow tile sizes only.
const NO_FEEDBACK_GRACE: Duration = Duration::from_secs(3);

/// How often to ask str0m for a probe while a subscription is held below the
/// layer its tile wants. A probe is a short burst (tens of milliseconds) that
/// tells whether more bandwidth is back without moving media onto a link
/// that cannot take it.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// str0m's loss-based estimate can stay far below a link that has been clean
/// for seconds: after a burst of loss it holds its rate for a growing time
/// and does not probe while it holds (seen after a cut to 600 kbit/s: the
/// estimate sat at 150-250 kbit/s long after the cut was lifted). When the
/// link has lost nothing for this long while video is held back and the
/// estimate has not grown, the estimator restarts from the current estimate:
/// a fresh start probes at 3x and 6x at once.
const RESTART_WHEN_CLEAN_FOR: Duration = Duration::from_secs(3);

/// At most one restart in this time, so a link that really is that narrow
/// costs one pair of short probes per interval. A restart that found at least
/// half as much again may be followed by the next as soon as the link has been
/// clean for [`RESTART_WHEN_CLEAN_FOR`]: the link is coming back.
const RESTART_INTERVAL: Duration = Duration::from_secs(10);

/// Egress loss (over the last second) up to this fraction counts as clean.
const CLEAN_LOSS: f32 = 0.01;

/// A latest value this far under the smoothed one is a dip.
const DIP: f64 = 0.75;

/// A dip on a link that loses nothing is believed only once it has lasted
/// this long. A receiver short of CPU (a busy tablet, or three browsers on a
/// small machine) stamps its packets late for a second at a time, which reads
/// as a queue building; a link that really narrowed soon loses packets too,
/// or keeps the estimate down past this.
const DIP_CONFIRM: Duration = Duration::from_secs(2);

/// Loss reported within this time counts as a lossy link.
const LOSS_MEMORY: Duration = Duration::from_secs(1);

/// A gap in the video (nothing to send but sound) shorter than this is
/// left to the estimator.
const GAP_LEAST: Duration = Duration::from_secs(1);

/// The estimate from before a gap is trusted for this long after it.
const GAP_MEMORY: Duration = Duration::from_secs(120);

/// An estimate change smaller than this fraction is not logged.
const LOG_CHANGE: f64 = 0.2;

/// How one participant's video adapted, counted since it joined. Kept by the
/// media plane, exported by the admin plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptationStats {
    /// Switches from one video layer to another, across its subscriptions.
    pub layer_switches: u64,
    /// Times a subscription's video was paused to keep the sound clear.
    pub video_pauses: u64,
    /// Times paused video came back.
    pub video_resumes: u64,
    /// Estimate moves of more than a fifth (each is logged).
    pub estimate_changes: u64,
    /// Restarts of the estimator on a clean link whose estimate stuck
    /// below what the video wanted.
    pub estimator_restarts: u64,
    /// The latest downlink estimate in bit/s, if the browser gives feedback.
    pub estimate_bps: Option<u64>,
}

/// The bandwidth state of one participant's downlink (SFU to browser).
#[derive(Debug, Default)]
pub(crate) struct DownlinkEstimate {
    /// Off: no estimate is asked for and the budget is unlimited.
    enabled: bool,
    /// str0m's estimate event: smoothed over 3 s.
    twcc: Option<u64>,
    /// The estimator's latest value, from str0m's peer statistics, once
    /// believed (see [`DIP_CONFIRM`]).
    latest: Option<u64>,
    /// Since when the latest value has been a dip under the smoothed one.
    dip_since: Option<Instant>,
    /// When loss over [`CLEAN_LOSS`] was last reported.
    lossy_at: Option<Instant>,
    remb: Option<u64>,
    connected_at: Option<Instant>,
    last_logged: Option<u64>,
    /// The desired rate last handed to str0m, and when a probe was last asked for.
    desired: Option<u64>,
    last_probe: Option<Instant>,
    /// Whether the last desired rate was lowered to make the next raise probe.
    dipped: bool,
    /// Since when the link has lost nothing, and the estimate then.
    clean_since: Option<(Instant, u64)>,
    /// When the estimator was last restarted, and from what rate.
    last_restart: Option<(Instant, u64)>,
    /// The estimate when video last flowed, and when.
    while_video: Option<(Instant, u64)>,
    /// Since when there has been no video to send, if there is none.
    gap_since: Option<Instant>,
}

impl DownlinkEstimate {
    pub fn new(enabled: bool) -> Self {
        DownlinkEstimate {
            enabled,
            ..Default::default()
        }
    }

    /// Whether the downlink is estimated (and paced) at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Media is up: the estimate starts to count from here.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at.get_or_insert(now);
    }

    /// Takes an estimate event. Returns the estimate in bit/s when it moved
    /// by more than a fifth since last reported, so the caller logs it.
    pub fn on_estimate(&mut self, kind: BweKind) -> Option<u64> {
        match kind {
            BweKind::Twcc { estimate, .. } => self.twcc = Some(estimate.as_u64()),
            BweKind::Remb { estimate, .. } => self.remb = Some(estimate.as_u64()),
            _ => return None,
        }
        self.moved()
    }

    /// Takes the estimator's latest, unsmoothed value (from peer statistics).
    /// A dip on a link that loses nothing counts only once it has lasted
    /// [`DIP_CONFIRM`]; until then the smoothed value stands. Returns the
    /// estimate when it moved, as [`DownlinkEstimate::on_estimate`].
    pub fn on_latest(&mut self, now: Instant, bps: u64) -> Option<u64> {
        let smoothed = self.twcc.unwrap_or(bps);
        self.dip_since = if (bps as f64) < smoothed as f64 * DIP {
            self.dip_since.or(Some(now))
        } else {
            None
        };
        let lossy = self
            .lossy_at
            .is_some_and(|t| now.saturating_duration_since(t) < LOSS_MEMORY);
        let doubtful = !lossy && self.dip_unconfirmed(now);
        self.latest = Some(if doubtful { smoothed } else { bps });
        self.moved()
    }

    /// Takes the share of packets lost on the way to the browser over the
    /// last second (from TWCC feedback).
    pub fn on_loss(&mut self, now: Instant, fraction: f32) {
        if fraction > CLEAN_LOSS {
            self.clean_since = None;
            self.lossy_at = Some(now);
        } else if self.clean_since.is_none() {
            self.clean_since = self.current().map(|e| (now, e));
        }
    }

    /// Follows whether there is video to send (`present`) and whether some
    /// of it is sent (`flowing`). With only sound to send, str0m's estimate
    /// falls to about one and a half times that, and climbs back a probe
    /// at a time, seconds apart: a gap in the video (a far node's link
    /// lost, the only camera gone and another coming) cost the next video
    /// tens of seconds on its lowest layer. So when video comes back after
    /// a gap of [`GAP_LEAST`] or more on a link that lost nothing meanwhile,
    /// the estimate from before the gap is returned for the estimator to
    /// start again from (a link that narrowed meanwhile is found by the
    /// estimator within a second, as after any start).
    pub fn video_back(&mut self, now: Instant, present: bool, flowing: bool) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        if flowing {
            self.while_video = self.current().map(|e| (now, e));
        }
        if !present {
            self.gap_since.get_or_insert(now);
            return None;
        }
        let since = self.gap_since.take()?;
        let (at, before) = self.while_video?;
        let current = self.current()?;
        let lossy = self
            .lossy_at
            .is_some_and(|t| now.saturating_duration_since(t) < LOSS_MEMORY);
        let long = now.saturating_duration_since(since) >= GAP_LEAST;
        let recent = now.saturating_duration_since(at) <= GAP_MEMORY;
        if !long || !recent || lossy || current >= before / 2 {
            return None;
        }
        self.latest = Some(before);
        self.clean_since = Some((now, before));
        Some(before)
    }

    /// Whether to restart str0m's estimator now, and from what rate: when
    /// video has been `held_back` on a clean link for
    /// [`RESTART_WHEN_CLEAN_FOR`] and the estimate has neither fallen (the
    /// estimator is at work) nor doubled (it is probing by itself) meanwhile.
    /// See [`RESTART_WHEN_CLEAN_FOR`] for why.
    pub fn restart(&mut self, now: Instant, held_back: bool) -> Option<u64> {
        let (since, then) = self.clean_since?;
        let current = self.current()?;
        // A dip not yet believed: the estimator is at work too.
        let falling = current < then - then / 10 || self.dip_unconfirmed(now);
        let doubled = current >= 2 * then;
        if !self.enabled || !held_back || falling || doubled {
            self.clean_since = Some((now, current));
            return None;
        }
        let clean_long = now.saturating_duration_since(since) >= RESTART_WHEN_CLEAN_FOR;
        let due = self.last_restart.is_none_or(|(t, from)| {
            let helped = 2 * current >= 3 * from;
            let interval = if helped {
                RESTART_WHEN_CLEAN_FOR
            } else {
                RESTART_INTERVAL
            };
            now.saturating_duration_since(t) >= interval
        });
        if !(clean_long && due) {
            return None;
        }
        self.last_restart = Some((now, current));
        self.clean_since = Some((now, current));
        self.latest = Some(current);
        Some(current)
    }

    /// Whether the latest value is a dip younger than [`DIP_CONFIRM`].
    fn dip_unconfirmed(&self, now: Instant) -> bool {
        self.dip_since
            .is_some_and(|t| now.saturating_duration_since(t) < DIP_CONFIRM)
    }

    fn moved(&mut self) -> Option<u64> {
        let now = self.current()?;
        let moved = self
            .last_logged
            .is_none_or(|was| now.abs_diff(was) as f64 > was as f64 * LOG_CHANGE);
        moved.then(|| {
            self.last_logged = Some(now);
            now
        })
    }

    /// The estimate in bit/s, TWCC first; `None` before any feedback. The
    /// estimator's latest value when known: a step up waits for the layer
    /// choice's own hysteresis, not for a 3 s mean as well.
    pub fn current(&self) -> Option<u64> {
        match (self.twcc, self.latest) {
            (Some(_), Some(latest)) => Some(latest),
            (Some(smoothed), None) => Some(smoothed),
            (None, _) => self.remb,
        }
    }

    /// Whether the link carries `audio_tracks` with redundancy (RED doubles
    /// each) and still has room for each track's reserve: true without an
    /// estimate.
    pub fn carries_redundant_audio(&self, audio_tracks: usize) -> bool {
        let needed = 3 * AUDIO_RESERVE * audio_tracks as u64;
        self.current().is_none_or(|estimate| estimate >= needed)
    }

    /// The budget for video in bit/s, once `audio_tracks` are reserved. Before
    /// any feedback the estimator's starting point is assumed; a browser that
    /// never sends feedback is not limited.
    pub fn video_budget(&self, now: Instant, audio_tracks: usize) -> Option<u64> {
        self.budget_from(self.current(), now, audio_tracks)
    }

    /// The same from the smoothed estimate alone: what the link has carried
    /// over the last seconds. Pausing video waits for this to fall too, so a
    /// brief undershoot of the latest value (common right after the link
    /// narrows) does not cost the picture.
    pub fn sustained_video_budget(&self, now: Instant, audio_tracks: usize) -> Option<u64> {
        self.budget_from(self.twcc.or(self.remb), now, audio_tracks)
    }

    fn budget_from(&self, estimate: Option<u64>, now: Instant, audio_tracks: usize) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let total = match (estimate, self.connected_at) {
            (Some(e), _) => e,
            (None, Some(at)) if now.saturating_duration_since(at) >= NO_FEEDBACK_GRACE => {
                return None
            }
            (None, _) => INITIAL_ESTIMATE,
        };
        Some(total.saturating_sub(AUDIO_RESERVE * audio_tracks as u64))
    }

    /// Decides the desired rate to hand str0m after a layer pass, if it
    /// changed. `wanted` is what
    /// the tiles would use in full (audio included); `held_back` says some
    /// subscription is below its tile's layer for lack of budget. str0m probes
    /// when the desired rate rises above its estimate, so while held back the
    /// desired rate is dipped and restored every [`PROBE_INTERVAL`]. str0m
    /// caps its probes at twice the desired rate, so `wanted` must already
    /// count the video the tiles want, not only audio.
    pub fn plan(&mut self, now: Instant, wanted: u64, held_back: bool) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let due = self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_INTERVAL);
        let desired = if self.dipped {
            self.dipped = false;
            self.last_probe = Some(now);
            wanted
        } else if held_back && due && self.connected_at.is_some() && self.desired.is_some() {
            // A dip small enough not to matter, large enough to count as one.
            self.dipped = true;
            wanted - wanted / 20
        } else {
            wanted
        };
        (self.desired != Some(desired)).then(|| {
            self.desired = Some(desired);
            desired
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::bwe::Bitrate;

    fn twcc(kbps: u64) -> BweKind {
        BweKind::Twcc {
            estimate: Bitrate::kbps(kbps),
            can_probe: true,
        }
    }

    #[test]
    fn budget_starts_at_the_initial_estimate_and_reserves_audio() {
        let now = Instant::now();
        let est = DownlinkEstimate::new(true);
        assert_eq!(
            est.video_budget(now, 2),
            Some(INITIAL_ESTIMATE - 2 * AUDIO_RESERVE)
        );
    }

    #[test]
    fn budget_follows_twcc_and_never_underflows() {
        let now = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(600));
        assert_eq!(est.video_budget(now, 2), Some(600_000 - 2 * AUDIO_RESERVE));
        est.on_estimate(twcc(100));
        assert_eq!(est.video_budget(now, 2), Some(0));
    }

    #[test]
    fn budget_follows_the_latest_value_and_pausing_the_mean() {
        let now = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(3_000));
        // The link is cut and loses packets: the estimator knows at once,
        // its mean lags.
        est.on_loss(now, 0.08);
        assert_eq!(est.on_latest(now, 500_000), Some(500_000));
        assert_eq!(est.video_budget(now, 0), Some(500_000));
        assert_eq!(est.sustained_video_budget(now, 0), Some(3_000_000));
        // It recovers: the budget follows at once, the mean lags again.
        est.on_estimate(twcc(1_200));
        est.on_latest(now, 3_000_000);
        assert_eq!(est.current(), Some(3_000_000));
        assert_eq!(est.sustained_video_budget(now, 0), Some(1_200_000));
    }

    #[test]
    fn a_dip_on_a_link_that_loses_nothing_counts_only_once_it_lasts() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(3_000));
        est.on_loss(start, 0.0);
        // A receiver short of CPU for a moment: the smoothed value stands.
        let quarter = Duration::from_millis(250);
        for i in 0..4 {
            est.on_latest(start + quarter * i, 900_000);
            assert_eq!(est.current(), Some(3_000_000), "quarter {i}");
        }
        est.on_latest(start + quarter * 4, 2_800_000);
        assert_eq!(est.current(), Some(2_800_000), "over");
        // A dip that lasts is believed.
        let t = start + Duration::from_secs(5);
        est.on_latest(t, 900_000);
        assert_eq!(est.current(), Some(3_000_000));
        est.on_latest(t + DIP_CONFIRM, 900_000);
        assert_eq!(est.current(), Some(900_000), "lasted");
        // So is one with loss, at once.
        est.on_latest(t + DIP_CONFIRM, 3_000_000);
        let t = t + Duration::from_secs(5);
        est.on_loss(t, 0.05);
        est.on_latest(t, 700_000);
        assert_eq!(est.current(), Some(700_000), "lossy");
        // Loss long gone, a new dip waits again.
        let t = t + Duration::from_secs(5);
        est.on_latest(t, 3_000_000);
        est.on_latest(t, 700_000);
        assert_eq!(est.current(), Some(3_000_000), "loss forgotten");
    }

    #[test]
    fn redundant_audio_stops_when_the_link_cannot_carry_it_twice() {
        let mut est = DownlinkEstimate::new(true);
        assert!(est.carries_redundant_audio(2), "no estimate yet");
        est.on_estimate(twcc(600));
        assert!(est.carries_redundant_audio(2));
        let now = Instant::now();
        est.on_loss(now, 0.05);
        est.on_latest(now, 150_000);
        assert!(!est.carries_redundant_audio(2));
    }

    #[test]
    fn remb_is_used_only_without_twcc() {
        let now = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(BweKind::Remb {
            estimate: Bitrate::kbps(400),
            mid: "0".into(),
        });
        assert_eq!(est.current(), Some(400_000));
        est.on_estimate(twcc(900));
        assert_eq!(est.current(), Some(900_000));
        assert_eq!(est.video_budget(now, 0), Some(900_000));
    }

    #[test]
    fn no_feedback_after_the_grace_period_means_no_limit() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.connected(start);
        assert!(est
            .video_budget(start + Duration::from_secs(1), 1)
            .is_some());
        assert_eq!(est.video_budget(start + NO_FEEDBACK_GRACE, 1), None);
    }

    #[test]
    fn switched_off_means_unlimited_and_no_probing() {
        let now = Instant::now();
        let mut est = DownlinkEstimate::new(false);
        assert_eq!(est.video_budget(now, 2), None);
        assert_eq!(est.plan(now, 2_000_000, true), None);
    }

    #[test]
    fn a_stuck_estimate_on_a_clean_link_restarts_once_per_interval() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(200));
        est.on_loss(start, 0.04);
        assert_eq!(
            est.restart(start + RESTART_WHEN_CLEAN_FOR, true),
            None,
            "lossy"
        );
        est.on_loss(start, 0.0);
        let later = start + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(start, true), None, "just clean");
        assert_eq!(est.restart(later, true), Some(200_000));
        let soon = later + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(soon, true), None, "too soon");
        let next = later + RESTART_INTERVAL;
        assert_eq!(est.restart(next, true), Some(200_000));
        // Held back only for a moment: the clean period starts again.
        let t = next + RESTART_INTERVAL;
        assert_eq!(est.restart(t, false), None);
        assert_eq!(est.restart(t + Duration::from_millis(250), true), None);
        let t = t + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(t, true), Some(200_000));
    }

    #[test]
    fn no_restart_while_the_estimate_falls_or_doubles_by_itself() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(3_000));
        est.on_loss(start, 0.0);
        // The link is cut: the estimate falls before any loss is reported,
        // after the link has been clean for a while. Clean long enough for
        // a restart, but the dip is not yet believed: no restart.
        let cut = start + Duration::from_secs(2);
        est.on_latest(cut, 600_000);
        let soon = start + RESTART_WHEN_CLEAN_FOR + Duration::from_millis(500);
        assert!(soon < cut + DIP_CONFIRM);
        assert_eq!(est.restart(soon, true), None, "dipping");
        let t = cut + DIP_CONFIRM;
        est.on_latest(t, 600_000);
        assert_eq!(est.current(), Some(600_000), "a dip that lasts counts");
        est.on_estimate(twcc(600));
        assert_eq!(est.restart(t, true), None, "falling");
        // Rising fast: str0m is probing by itself.
        est.on_estimate(twcc(1_300));
        est.on_latest(t, 1_300_000);
        let t = t + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(t, true), None, "doubled");
        // Then only creeping up: stuck.
        est.on_estimate(twcc(1_500));
        est.on_latest(t, 1_500_000);
        let t = t + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(t, true), Some(1_500_000));
    }

    #[test]
    fn a_restart_that_found_more_may_be_followed_sooner() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.on_estimate(twcc(400));
        est.on_loss(start, 0.0);
        let t = start + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(t, true), Some(400_000));
        // The fresh start's probes find three times as much, then it creeps.
        est.on_latest(t, 1_200_000);
        assert_eq!(est.restart(t + Duration::from_millis(250), true), None);
        est.on_latest(t, 1_300_000);
        let t = t + Duration::from_millis(250) + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(t, true), Some(1_300_000));
        // This one found nothing: the full interval applies again.
        let soon = t + RESTART_WHEN_CLEAN_FOR;
        assert_eq!(est.restart(soon, true), None);
        assert_eq!(est.restart(t + RESTART_INTERVAL, true), Some(1_300_000));
    }

    #[test]
    fn video_back_after_a_gap_starts_from_the_estimate_before_it() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut d = DownlinkEstimate::new(true);
        d.on_estimate(twcc(2_000));
        assert_eq!(d.video_back(at(0), true, true), None, "video flowing");
        // A gap: only sound to send, and the estimate falls to its rate.
        assert_eq!(d.video_back(at(1), false, false), None);
        d.on_estimate(twcc(120));
        d.on_latest(at(5), 120_000);
        assert_eq!(d.video_back(at(5), false, false), None);
        // Video again: the estimate from before the gap, once.
        assert_eq!(d.video_back(at(11), true, false), Some(2_000_000));
        assert_eq!(d.current(), Some(2_000_000));
        assert_eq!(d.video_back(at(12), true, false), None, "once");
    }

    #[test]
    fn video_back_after_a_short_gap_or_on_a_lossy_link_is_left_to_the_estimator() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut d = DownlinkEstimate::new(true);
        d.on_estimate(twcc(2_000));
        d.video_back(ms(0), true, true);
        d.video_back(ms(100), false, false);
        d.on_estimate(twcc(120));
        d.on_latest(ms(500), 120_000);
        assert_eq!(d.video_back(ms(600), true, false), None, "a blink");
        d.video_back(ms(700), false, false);
        d.on_loss(ms(5_000), 0.2);
        assert_eq!(d.video_back(ms(5_500), true, false), None, "a lossy link");
        // Video held back by a narrow link is no gap: nothing to restore.
        let mut d = DownlinkEstimate::new(true);
        d.on_estimate(twcc(2_000));
        d.video_back(ms(0), true, true);
        d.on_estimate(twcc(120));
        d.on_latest(ms(5_000), 120_000);
        assert_eq!(
            d.video_back(ms(5_000), true, false),
            None,
            "paused, not absent"
        );
    }

    #[test]
    fn only_large_moves_are_reported() {
        let mut est = DownlinkEstimate::new(true);
        assert_eq!(est.on_estimate(twcc(1000)), Some(1_000_000));
        assert_eq!(est.on_estimate(twcc(1100)), None);
        assert_eq!(est.on_estimate(twcc(700)), Some(700_000));
    }

    #[test]
    fn held_back_dips_then_restores_the_desired_rate_at_intervals() {
        let start = Instant::now();
        let mut est = DownlinkEstimate::new(true);
        est.connected(start);
        assert_eq!(est.plan(start, 2_000_000, false).unwrap(), 2_000_000);
        // Held back: a dip, then the raise that makes str0m probe.
        assert_eq!(est.plan(start, 2_000_000, true).unwrap(), 1_900_000);
        let t = start + Duration::from_millis(250);
        assert_eq!(est.plan(t, 2_000_000, true).unwrap(), 2_000_000);
        // Nothing new until the interval has passed.
        for quarter in 1..4 {
            assert_eq!(
                est.plan(t + PROBE_INTERVAL * quarter / 4, 2_000_000, true),
                None
            );
        }
        let later = t + PROBE_INTERVAL;
        assert_eq!(est.plan(later, 2_000_000, true).unwrap(), 1_900_000);
        // Not held back: no dips.
        let mut calm = DownlinkEstimate::new(true);
        calm.connected(start);
        calm.plan(start, 2_000_000, false);
        assert_eq!(calm.plan(later, 2_000_000, false), None);
    }
}
