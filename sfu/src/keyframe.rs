//! Keyframe requests toward a publisher, coalesced.
//!
//! Every subscriber that joins, and every receiver that loses a frame, asks for a
//! keyframe. Forwarding each PLI would make the publisher's encoder spend its
//! bitrate on keyframes (a care home's upload is the scarcest link in the call),
//! so requests within a short window collapse into one.

use std::time::{Duration, Instant};

/// The shortest gap between two keyframe requests sent to one published track.
/// A keyframe takes roughly one round trip plus encode time to arrive; asking
/// again sooner only produces a second keyframe.
pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Coalesces keyframe requests for one published video track.
#[derive(Debug, Default, Clone)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Records a wish for a keyframe; returns true when a request should go out now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < MIN_KEYFRAME_INTERVAL => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// A request deferred by the window is now due: returns true once, when it
    /// should go out.
    pub fn poll_deferred(&mut self, now: Instant) -> bool {
        self.pending && self.request(now)
    }

    /// When the deferred request, if any, falls due.
    pub fn deferred_until(&self) -> Option<Instant> {
        match (self.pending, self.last_sent) {
            (true, Some(t)) => Some(t + MIN_KEYFRAME_INTERVAL),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_goes_out_at_once() {
        let mut k = KeyframeThrottle::default();
        assert!(k.request(Instant::now()));
    }

    #[test]
    fn requests_inside_the_window_collapse_into_one_deferred() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(10)));
        assert!(!k.request(t0 + Duration::from_millis(20)));
        assert_eq!(k.deferred_until(), Some(t0 + MIN_KEYFRAME_INTERVAL));
        assert!(!k.poll_deferred(t0 + Duration::from_millis(100)));
        assert!(k.poll_deferred(t0 + MIN_KEYFRAME_INTERVAL));
        assert!(!k.poll_deferred(t0 + Duration::from_secs(5)));
        assert_eq!(k.deferred_until(), None);
    }
}
