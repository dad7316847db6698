//! How long a subscriber's video packets are kept for resending (NACK).
//!
//! The top layer is kept for twice the round trip, at least
//! [`SHORTEST_WINDOW`], as Janus keeps every stream (its default floor is
//! 200 ms): the link that carries it has room to spare, and at about 150
//! packets/s a longer window is most of a subscriber's memory. A lower
//! layer the subscriber settled on (its budget or its tile chose it) is
//! kept [`LONGEST_WINDOW`]: the homes sent one are those whose round trip,
//! queue included, can pass a second, and a one-second window froze their
//! video after a step down at 600 kbit/s. A lower layer shown only until
//! the wanted one's keyframe (the start of a video) is kept the top
//! layer's window: its packets are replaced in a moment.
//!
//! The window changes only at a keyframe of the forwarded layer, because
//! str0m empties a stream's cache when it is resized: a browser that has a
//! keyframe no longer asks for the packets before it.

use std::time::Duration;

use super::Layer;

/// The most video packets kept per subscriber stream, whatever the window:
/// a little over a second of a 720p camera, the whole of a lower layer's
/// 25-55 packets/s over [`LONGEST_WINDOW`].
pub const RESEND_PACKETS: usize = 160;

/// The shortest time a video packet is kept: two repair rounds at a 100 ms
/// round trip, Janus's default floor.
pub const SHORTEST_WINDOW: Duration = Duration::from_millis(200);

/// The longest time a video packet is kept: str0m's own default.
pub const LONGEST_WINDOW: Duration = Duration::from_secs(3);

/// Windows are whole steps of this, so a round trip that wobbles does not
/// resize (and empty) the cache at every keyframe.
const STEP: Duration = Duration::from_millis(100);

/// Resends stop for a while when they pass this share of what a stream
/// sends (str0m's default): a subscriber that loses too much is sent a
/// lower layer by estimation, not every packet twice.
pub const RESEND_RATIO_CAP: Option<f32> = Some(0.15);

/// The window for packets of `layer` sent to a subscriber that wants
/// `wanted` (`None`: paused or undecided) over a round trip of `rtt`
/// (`None`: not measured yet).
pub fn resend_window(layer: Layer, wanted: Option<Layer>, rtt: Option<Duration>) -> Duration {
    let settled_lower = layer < Layer::FULL && wanted.is_none_or(|w| layer >= w);
    if settled_lower {
        return LONGEST_WINDOW;
    }
    let twice = rtt.unwrap_or_default().saturating_mul(2);
    let steps = twice.as_millis().div_ceil(STEP.as_millis()) as u32;
    (STEP * steps).clamp(SHORTEST_WINDOW, LONGEST_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_top_layer_on_a_short_round_trip_is_kept_the_shortest_window() {
        for rtt in [None, Some(MS(0)), Some(MS(40)), Some(MS(100))] {
            assert_eq!(resend_window(Layer::FULL, Some(Layer::FULL), rtt), MS(200));
        }
    }

    #[test]
    fn the_top_layer_is_kept_twice_the_round_trip_in_whole_steps() {
        let at = |rtt| resend_window(Layer::FULL, Some(Layer::FULL), Some(MS(rtt)));
        assert_eq!(at(101), MS(300));
        assert_eq!(at(250), MS(500));
        assert_eq!(at(600), MS(1200));
        assert_eq!(at(1400), MS(2800));
        assert_eq!(at(5000), LONGEST_WINDOW);
    }

    #[test]
    fn a_lower_layer_the_subscriber_settled_on_is_kept_longest() {
        for layer in [Layer::QUARTER, Layer::HALF] {
            assert_eq!(
                resend_window(layer, Some(layer), Some(MS(20))),
                LONGEST_WINDOW
            );
            // Stepping down: the lower layer's keyframe comes before the
            // wanted layer is lower still.
            assert_eq!(
                resend_window(layer, Some(Layer::QUARTER), None),
                LONGEST_WINDOW
            );
            // Paused or not yet decided.
            assert_eq!(resend_window(layer, None, None), LONGEST_WINDOW);
        }
    }

    #[test]
    fn a_lower_layer_shown_until_the_wanted_one_starts_is_kept_short() {
        let w = resend_window(Layer::QUARTER, Some(Layer::FULL), Some(MS(30)));
        assert_eq!(w, SHORTEST_WINDOW);
        let w = resend_window(Layer::HALF, Some(Layer::FULL), Some(MS(400)));
        assert_eq!(w, MS(800));
    }
}
