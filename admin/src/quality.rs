//! A participant's call quality at a glance: green, amber or red, with the
//! reasons, from what the SFU sees of its link and its video.
//!
//! The thresholds follow common guidance for interactive video: loss above
//! about 2-3% starts to show, above 10% the picture breaks up; a round trip
//! above about 250 ms starts to make conversation awkward, above 500 ms it
//! breaks turn-taking. Video paused to keep the sound clear is red: the
//! clinician cannot see the resident. A video at 180p is amber once past its
//! start-up ([`carecall_sfu::VIDEO_START_UP`]): every video starts on its lowest layer
//! while the sender's encoder ramps up, and counting that would mark every
//! call amber in the history.

use carecall_sfu::ParticipantStats;
use serde::Serialize;

/// The colour of a participant's badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Badge {
    /// Nothing wrong that the SFU can see.
    Green = 0,
    /// Noticeable: some loss, a slow link, low-resolution video.
    Amber = 1,
    /// The call is impaired: heavy loss, a very slow link, video paused.
    Red = 2,
}

impl Badge {
    /// "green", "amber" or "red", as in the API and the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Badge::Green => "green",
            Badge::Amber => "amber",
            Badge::Red => "red",
        }
    }

    /// The badge stored as `level` (0, 1, 2); anything above 2 is red.
    pub fn from_level(level: i64) -> Badge {
        match level {
            ..=0 => Badge::Green,
            1 => Badge::Amber,
            _ => Badge::Red,
        }
    }
}

/// Upload loss from which the badge turns amber, and red.
const LOSS_AMBER: f32 = 0.03;
const LOSS_RED: f32 = 0.10;
/// Round-trip times from which the badge turns amber, and red (ms).
const RTT_AMBER_MS: u128 = 250;
const RTT_RED_MS: u128 = 500;
/// Video this short (the lowest simulcast layer) counts as low resolution.
const LOW_HEIGHT: u32 = 180;

/// The badge and why: each reason is a short phrase for the dashboard.
pub fn badge(s: &ParticipantStats) -> (Badge, Vec<String>) {
    let mut worst = Badge::Green;
    let mut reasons = Vec::new();
    let mut note = |b: Badge, why: String| {
        worst = worst.max(b);
        reasons.push(why);
    };
    let loss = s.receive_loss;
    if loss >= LOSS_AMBER {
        let b = if loss >= LOSS_RED {
            Badge::Red
        } else {
            Badge::Amber
        };
        note(b, format!("{:.0}% of its upload lost", loss * 100.0));
    }
    if let Some(rtt) = s.rtt.map(|r| r.as_millis()) {
        if rtt >= RTT_AMBER_MS {
            let b = if rtt >= RTT_RED_MS {
                Badge::Red
            } else {
                Badge::Amber
            };
            note(b, format!("{rtt} ms round trip"));
        }
    }
    if s.adaptation.video_pauses > s.adaptation.video_resumes {
        note(Badge::Red, "video to it paused (link too slow)".into());
    }
    let low = s
        .video_layers
        .iter()
        .filter(|v| !v.starting)
        .filter(|v| v.layer.is_some_and(|l| l.nominal_height() <= LOW_HEIGHT))
        .count();
    if low > 0 {
        note(Badge::Amber, format!("receives {low} video(s) at 180p"));
    }
    (worst, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecall_sfu::forward::Layer;
    use carecall_sfu::{ParticipantId, ReceivedVideo};
    use std::time::Duration;

    fn video(layer: Layer, starting: bool) -> ReceivedVideo {
        ReceivedVideo {
            origin: ParticipantId(2),
            layer: Some(layer),
            starting,
        }
    }

    #[test]
    fn a_clean_fast_link_is_green() {
        let s = ParticipantStats {
            rtt: Some(Duration::from_millis(40)),
            receive_loss: 0.005,
            video_layers: vec![video(Layer::FULL, false)],
            ..ParticipantStats::default()
        };
        assert_eq!(badge(&s), (Badge::Green, vec![]));
    }

    #[test]
    fn loss_and_delay_turn_it_amber_then_red() {
        let mut s = ParticipantStats {
            receive_loss: 0.05,
            ..ParticipantStats::default()
        };
        assert_eq!(badge(&s).0, Badge::Amber);
        s.rtt = Some(Duration::from_millis(600));
        let (b, why) = badge(&s);
        assert_eq!(b, Badge::Red);
        assert_eq!(why, ["5% of its upload lost", "600 ms round trip"]);
    }

    #[test]
    fn paused_video_is_red_and_the_lowest_layer_amber() {
        let mut s = ParticipantStats::default();
        s.adaptation.video_pauses = 2;
        s.adaptation.video_resumes = 1;
        assert_eq!(badge(&s).0, Badge::Red);
        s.adaptation.video_resumes = 2;
        s.video_layers = vec![video(Layer::QUARTER, false)];
        assert_eq!(badge(&s).0, Badge::Amber);
    }

    #[test]
    fn the_lowest_layer_at_a_videos_start_is_not_a_problem() {
        let mut s = ParticipantStats {
            video_layers: vec![video(Layer::QUARTER, true)],
            ..ParticipantStats::default()
        };
        assert_eq!(badge(&s), (Badge::Green, vec![]));
        s.video_layers[0].starting = false;
        assert_eq!(badge(&s).0, Badge::Amber);
    }
}
