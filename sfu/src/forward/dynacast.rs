//! Layers nobody watches are not worth encoding (the idea LiveKit calls
//! dynacast). A care home's upload is often the weakest link in the call:
//! every simulcast layer above the best one any viewer would take is paused
//! at the publisher, and comes back the moment a viewer would take it.

use std::time::{Duration, Instant};

use super::Layer;

/// How long the ceiling (the best layer any viewer would take) must stay
/// lower before the publisher is told to stop the layers above: a tile
/// briefly shrunk, or a viewer reconnecting, should not cost a layer that
/// takes a keyframe and a ramp to restart.
pub const DOWN_HOLD: Duration = Duration::from_secs(5);

/// What one publisher's browser was told to encode, and since when less
/// would do.
#[derive(Debug, Clone, Default)]
pub struct PublishLimit {
    /// The highest layer the browser was told to send; `None` before the
    /// first message, when the browser sends all of them.
    told: Option<Layer>,
    lower_since: Option<Instant>,
}

impl PublishLimit {
    /// Takes the ceiling, the highest layer any viewer would take now (`None` when nobody
    /// watches: the lowest layer is kept for whoever comes next, so they see
    /// a picture at once). Returns the highest layer to tell the browser to
    /// send, when that changed: higher at once, lower after [`DOWN_HOLD`].
    pub fn update(&mut self, now: Instant, ceiling: Option<Layer>) -> Option<Layer> {
        let ceiling = ceiling.unwrap_or(Layer::QUARTER);
        let told = self.told.unwrap_or(Layer::FULL);
        if ceiling >= told {
            self.lower_since = None;
            if ceiling == told {
                return None;
            }
        } else {
            let since = *self.lower_since.get_or_insert(now);
            if now.duration_since(since) < DOWN_HOLD {
                return None;
            }
            self.lower_since = None;
        }
        self.told = Some(ceiling);
        Some(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_above_what_anyone_watches_stop_after_the_hold_and_return_at_once() {
        let t0 = Instant::now();
        let mut limit = PublishLimit::default();
        // Everyone shows the publisher as a thumbnail: h and f stop after 5 s.
        let quarter = Some(Layer::QUARTER);
        assert_eq!(limit.update(t0, quarter), None);
        assert_eq!(limit.update(t0 + Duration::from_secs(4), quarter), None);
        assert_eq!(limit.update(t0 + DOWN_HOLD, quarter), quarter);
        assert_eq!(limit.update(t0 + DOWN_HOLD * 2, quarter), None);
        // A viewer enlarges the tile: f comes back at once.
        let full = Some(Layer::FULL);
        assert_eq!(limit.update(t0 + DOWN_HOLD * 2, full), full);
    }

    #[test]
    fn a_brief_dip_in_what_is_watched_changes_nothing() {
        let t0 = Instant::now();
        let mut limit = PublishLimit::default();
        limit.update(t0, Some(Layer::HALF));
        assert_eq!(
            limit.update(t0 + Duration::from_secs(3), Some(Layer::FULL)),
            None
        );
        // The hold starts again from the next dip.
        let later = t0 + Duration::from_secs(4);
        assert_eq!(limit.update(later, Some(Layer::HALF)), None);
        assert_eq!(
            limit.update(later + DOWN_HOLD, Some(Layer::HALF)),
            Some(Layer::HALF)
        );
    }

    #[test]
    fn with_nobody_watching_the_lowest_layer_is_kept() {
        let t0 = Instant::now();
        let mut limit = PublishLimit::default();
        limit.update(t0, None);
        assert_eq!(limit.update(t0 + DOWN_HOLD, None), Some(Layer::QUARTER));
    }
}
