//! How long joining takes, as Prometheus histograms: from a browser's first
//! offer to media connected (ICE and DTLS), and from when it first had
//! someone's video to receive to the first video the SFU forwarded to it (the
//! server's share of the time to the first picture).
//!
//! The media plane keeps both durations per participant; each is observed
//! once, the first time a snapshot shows it (every scrape, every dashboard
//! refresh). Someone who joins and leaves between two snapshots is missed.

use std::collections::HashSet;

use carecall_sfu::{ParticipantId, ParticipantStats};
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts};

/// Bucket bounds in seconds: a join should take well under a second on a
/// good link; a locked-down network can take many.
const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// The two histograms and who has been counted.
pub struct JoinTimes {
    join: Histogram,
    first_video: Histogram,
    counted_join: HashSet<ParticipantId>,
    counted_video: HashSet<ParticipantId>,
}

impl Default for JoinTimes {
    fn default() -> Self {
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
            Histogram::with_opts(opts).expect("constant histogram options are valid")
        };
        JoinTimes {
            join: histogram(
                "carecall_join_seconds",
                "From a browser's first offer to media connected.",
            ),
            first_video: histogram(
                "carecall_first_video_seconds",
                "From a browser having video to receive to the first video forwarded to it.",
            ),
            counted_join: HashSet::new(),
            counted_video: HashSet::new(),
        }
    }
}

impl JoinTimes {
    /// Counts every duration not counted yet; forgets who is gone.
    pub fn observe(&mut self, media: &[ParticipantStats]) {
        for s in media {
            if let Some(d) = s.connected_after {
                if self.counted_join.insert(s.participant) {
                    self.join.observe(d.as_secs_f64());
                }
            }
            if let Some(d) = s.first_video_after {
                if self.counted_video.insert(s.participant) {
                    self.first_video.observe(d.as_secs_f64());
                }
            }
        }
        let present: HashSet<_> = media.iter().map(|s| s.participant).collect();
        self.counted_join.retain(|p| present.contains(p));
        self.counted_video.retain(|p| present.contains(p));
    }

    /// The histograms, to register in a scrape's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.join.clone()),
            Box::new(self.first_video.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_participant_is_counted_once() {
        let mut times = JoinTimes::default();
        let mut p = ParticipantStats {
            participant: ParticipantId(7),
            connected_after: Some(Duration::from_millis(300)),
            ..ParticipantStats::default()
        };
        times.observe(std::slice::from_ref(&p));
        p.first_video_after = Some(Duration::from_millis(450));
        times.observe(std::slice::from_ref(&p));
        times.observe(std::slice::from_ref(&p));
        assert_eq!(times.join.get_sample_count(), 1);
        assert_eq!(times.first_video.get_sample_count(), 1);
        assert!((times.first_video.get_sample_sum() - 0.45).abs() < 1e-9);
        // Gone, then a new participant.
        times.observe(&[]);
        assert!(times.counted_join.is_empty());
    }
}
