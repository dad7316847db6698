//! Failed sign-ins, counted per client address and per account name, so
//! nobody can guess passwords at speed, from one machine or against one
//! account from many.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);

/// At most this many keys are tracked; the oldest are forgotten first.
const MAX_KEYS: usize = 10_000;

/// Recent failures per key.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Whether any of `keys` is locked out at `now`; if so, for how long.
    pub fn locked(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| {
                let times = failures.get_mut(k)?;
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                (times.len() >= MAX_FAILURES)
                    .then(|| WINDOW - now.saturating_duration_since(times[0]))
            })
            .max()
    }

    /// Counts a failed sign-in against every key.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
            });
        }
        for k in keys {
            let times = failures.entry(k.clone()).or_default();
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub fn succeeded(&self, account_key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_try_within_the_window_is_refused_until_it_passes() {
        let limiter = LoginLimiter::default();
        let keys = vec!["ip:127.0.0.1".to_string(), "name:hub".to_string()];
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limiter.locked(&keys, t0), None, "try {i}");
            limiter.failed(&keys, t0);
        }
        let wait = limiter.locked(&keys, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        // Another address, the same account: still refused.
        let other = vec!["ip:10.0.0.9".to_string(), "name:hub".to_string()];
        assert!(limiter.locked(&other, t0).is_some());
        assert_eq!(limiter.locked(&keys, t0 + WINDOW), None);
    }
}
