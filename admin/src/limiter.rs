//! Sign-in attempts, limited per client address and per account name, so
//! nobody can guess passwords at speed, from one machine or against one
//! account from many, and nobody can lock the staff out.
//!
//! An attempt is counted *before* its password is checked ([`LoginLimiter::begin`]),
//! so a burst of concurrent tries from one address is cut at the limit
//! instead of all being checked. An address that fails too often waits out
//! the window. An account is never locked: after a few failures from
//! anywhere, each further try waits a little longer (doubling, capped at a
//! few seconds), so the real owner, from another address, still gets in.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many addresses and accounts are tracked; past it, the ones
/// with nothing recent are forgotten.
const MAX_KEYS: usize = 10_000;

/// Failures an account takes before its tries are spaced out.
const FREE_ACCOUNT_FAILURES: u32 = 5;

/// How sign-in attempts are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failed sign-ins from one address within `window` before it waits.
    pub failures_per_address: usize,
    /// How far back failures count.
    pub window: Duration,
    /// The longest wait between an account's tries after failures.
    pub max_backoff: Duration,
    /// Password checks at once (each takes ~19 MiB for ~0.1 s).
    pub concurrent_checks: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            failures_per_address: 5,
            window: Duration::from_secs(10 * 60),
            max_backoff: Duration::from_secs(30),
            concurrent_checks: 2,
        }
    }
}

/// Why an attempt was refused before its password was checked, and for how
/// long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The metric reason.
    pub reason: &'static str,
    /// When to try again.
    pub wait: Duration,
}

#[derive(Debug, Clone, Copy)]
struct AccountFailures {
    count: u32,
    last: Instant,
}

#[derive(Default)]
struct Attempts {
    /// Counted attempts per address (failures, and tries in progress).
    by_address: HashMap<String, VecDeque<Instant>>,
    by_account: HashMap<String, AccountFailures>,
}

/// Recent sign-in attempts per address and per account.
pub struct LoginLimiter {
    limits: carecall_sfu::Live<SignInLimits>,
    attempts: Mutex<Attempts>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(carecall_sfu::Live::default())
    }
}

impl LoginLimiter {
    /// A limiter enforcing `limits` (a reload may change them; what was
    /// counted before still counts).
    pub fn new(limits: carecall_sfu::Live<SignInLimits>) -> Self {
        LoginLimiter {
            limits,
            attempts: Mutex::default(),
        }
    }

    fn backoff(limits: &SignInLimits, failures: u32) -> Duration {
        if failures < FREE_ACCOUNT_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_ACCOUNT_FAILURES).min(20);
        Duration::from_secs(1u64 << doublings).min(limits.max_backoff)
    }

    /// Counts a try by `address` at `account` before its password is
    /// checked: it counts as a failure until [`LoginLimiter::succeeded`].
    pub fn begin(&self, address: &str, account: &str, now: Instant) -> Result<(), Refused> {
        let limits = *self.limits.get();
        let window = limits.window;
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if a.by_address.len() + a.by_account.len() >= MAX_KEYS {
            a.by_address.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            a.by_account
                .retain(|_, f| now.saturating_duration_since(f.last) < window);
        }
        let tries = a.by_address.entry(address.to_owned()).or_default();
        while tries
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            tries.pop_front();
        }
        if tries.len() >= limits.failures_per_address {
            let wait = window.saturating_sub(now.saturating_duration_since(tries[0]));
            return Err(Refused {
                reason: "failures_per_address",
                wait,
            });
        }
        let account_failures = match a.by_account.get(account) {
            Some(f) if now.saturating_duration_since(f.last) < window => Some(*f),
            _ => None,
        };
        if let Some(f) = account_failures {
            let ready = f.last + Self::backoff(&limits, f.count);
            if now < ready {
                return Err(Refused {
                    reason: "account_backoff",
                    wait: ready - now,
                });
            }
        }
        a.by_address
            .entry(address.to_owned())
            .or_default()
            .push_back(now);
        a.by_account.insert(
            account.to_owned(),
            AccountFailures {
                count: account_failures.map_or(0, |f| f.count) + 1,
                last: now,
            },
        );
        Ok(())
    }

    /// The right password: the account's failures are forgotten and the
    /// try no longer counts against the address.
    pub fn succeeded(&self, address: &str, account: &str) {
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        a.by_account.remove(account);
        if let Some(tries) = a.by_address.get_mut(address) {
            tries.pop_back();
        }
    }

    /// A try that could not be checked (the server was busy): it does not
    /// count against anyone.
    pub fn not_checked(&self, address: &str, account: &str) {
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tries) = a.by_address.get_mut(address) {
            tries.pop_back();
        }
        if let Some(f) = a.by_account.get_mut(account) {
            f.count = f.count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_cut_at_its_limit_even_before_any_check_ends() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let limit = SignInLimits::default().failures_per_address;
        // Concurrent tries at many accounts: none has finished yet.
        for i in 0..limit {
            limiter
                .begin("192.0.2.1", &format!("name{i}"), t0)
                .unwrap_or_else(|r| panic!("try {i} refused: {r:?}"));
        }
        let refused = limiter.begin("192.0.2.1", "other", t0).unwrap_err();
        assert_eq!(refused.reason, "failures_per_address");
        assert_eq!(refused.wait, SignInLimits::default().window);
        // Another address is not affected; the window passing frees it.
        assert!(limiter.begin("192.0.2.2", "other", t0).is_ok());
        assert!(limiter
            .begin("192.0.2.1", "other", t0 + SignInLimits::default().window)
            .is_ok());
    }

    #[test]
    fn an_account_is_slowed_never_locked() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let mut now = t0;
        // Failures from many addresses against one account.
        let mut waits = Vec::new();
        for i in 0..12 {
            let from = format!("198.51.100.{i}");
            match limiter.begin(&from, "admin", now) {
                Ok(()) => {}
                Err(r) => {
                    assert_eq!(r.reason, "account_backoff");
                    waits.push(r.wait);
                    now += r.wait;
                    limiter.begin(&from, "admin", now).unwrap();
                }
            }
        }
        assert_eq!(waits.first(), Some(&Duration::from_secs(1)));
        assert_eq!(waits.last(), Some(&SignInLimits::default().max_backoff));
        assert!(waits
            .iter()
            .all(|w| *w <= SignInLimits::default().max_backoff));
        // The owner, after waiting the backoff, gets its try and succeeds.
        now += SignInLimits::default().max_backoff;
        limiter.begin("203.0.113.5", "admin", now).unwrap();
        limiter.succeeded("203.0.113.5", "admin");
        assert!(limiter.begin("203.0.113.6", "admin", now).is_ok());
    }

    #[test]
    fn a_success_does_not_count_against_the_address() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            limiter.begin("192.0.2.9", "hub", t0).unwrap();
            limiter.succeeded("192.0.2.9", "hub");
        }
        for _ in 0..3 {
            limiter.begin("192.0.2.9", "busy", t0).unwrap();
            limiter.not_checked("192.0.2.9", "busy");
        }
        assert!(limiter.begin("192.0.2.9", "hub", t0).is_ok());
    }
}
