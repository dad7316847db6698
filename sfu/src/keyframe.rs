//! Keyframe requests toward a publisher, coalesced.
//!
//! Every subscriber that joins, and every receiver that loses a frame, asks for a
//! keyframe. Forwarding each PLI would make the publisher's encoder spend its
//! bitrate on keyframes (a care home's upload is the scarcest link in the call),
//! so requests inside a window collapse into one sent when the window ends.
//!
//! The window also matches what browsers do: libwebrtc ignores a keyframe
//! request that arrives within 300 ms of the last one it acted on. A request
//! sent inside that time is lost, and whoever waits for it waits a second
//! window; one sent just after it is honoured.

use std::time::{Duration, Instant};

/// The shortest gap between two keyframe requests sent to one published track:
/// libwebrtc's 300 ms, plus a margin for the request's own jitter on the way.
pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(350);

/// Coalesces keyframe requests for one published video track.
#[derive(Debug, Default, Clone)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    /// A request arrived inside the window and no keyframe has answered it yet.
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

    /// The publisher sent a keyframe: every subscriber waiting gets it, so a
    /// deferred request is void. The window stays: the publisher's does too.
    pub fn keyframe_seen(&mut self) {
        self.pending = false;
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

    #[test]
    fn a_keyframe_voids_the_deferred_request_but_not_the_window() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(10)));
        k.keyframe_seen();
        assert_eq!(k.deferred_until(), None);
        assert!(!k.poll_deferred(t0 + MIN_KEYFRAME_INTERVAL));
        // Inside the publisher's window a new wish still waits for its end.
        assert!(!k.request(t0 + Duration::from_millis(60)));
        assert_eq!(k.deferred_until(), Some(t0 + MIN_KEYFRAME_INTERVAL));
    }
}
