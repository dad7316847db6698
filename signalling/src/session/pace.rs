//! How fast one socket may send: a token bucket. A browser sends a burst at
//! join (its offer, a score of ICE candidates, tile sizes) and little after;
//! a client that keeps sending faster than [`SocketLimits`] allows is closed
//! before it can keep a media worker busy for everyone else.

use tokio::time::Instant;

use crate::SocketLimits;

/// Messages a socket may still send now.
pub(crate) struct Pace {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    /// A full bucket at `now`.
    pub(crate) fn new(limits: &SocketLimits, now: Instant) -> Self {
        let burst = f64::from(limits.message_burst.max(1));
        Pace {
            per_sec: f64::from(limits.messages_per_sec),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one message's token; `false` when the socket is too fast.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_only_the_rate() {
        let limits = SocketLimits {
            messages_per_sec: 10,
            message_burst: 50,
            ..SocketLimits::default()
        };
        let t0 = Instant::now();
        let mut pace = Pace::new(&limits, t0);
        assert!((0..50).all(|_| pace.allow(t0)));
        assert!(!pace.allow(t0), "past the burst");
        // A second later, ten more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..20).filter(|_| pace.allow(t1)).count(), 10);
    }
}
