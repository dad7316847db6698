//! How much of the public check page one address, and everyone together,
//! may use. The page needs no sign-in (a care home runs it before it has
//! anything else), so each costly step is limited: starting a check (TURN
//! credentials, a media session on a worker), storing a result (a row kept
//! 90 days), and moving test data (the throughput test).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};

use carecall_sfu::Live;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::pace::{Owed, SharedPace, TransferPace};

/// The check page's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Check requests (credentials, offers) per address per minute. One run
    /// of the page makes four.
    pub starts_per_minute: u32,
    /// Results stored per address per hour.
    pub results_per_hour: u32,
    /// Results stored per hour from everyone together: what the disk takes.
    pub results_per_hour_total: u32,
    /// Throughput transfers at once, from everyone.
    pub transfers_at_once: usize,
    /// Throughput transfers at once from one address.
    pub transfers_per_address: usize,
    /// Each transfer's rate at most, kbit/s: above every rate the verdict
    /// asks for (3.5 Mbit/s down for HD), so a check at the cap still
    /// reads "HD video will work".
    pub transfer_kbps: u32,
    /// All transfers together at most, kbit/s: four checks at full rate.
    pub transfer_kbps_total: u32,
    /// How long the TURN credentials handed to the page last.
    pub credential_lifetime: std::time::Duration,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            starts_per_minute: 20,
            results_per_hour: 10,
            results_per_hour_total: 200,
            transfers_at_once: 16,
            transfers_per_address: 2,
            transfer_kbps: 6_000,
            transfer_kbps_total: 24_000,
            credential_lifetime: std::time::Duration::from_secs(600),
        }
    }
}

/// The rate limiters and transfer counts behind [`CheckLimits`], which a
/// reload may change: counts of transfers carry over; a changed rate starts
/// its limiter afresh.
pub(crate) struct CheckGuard {
    limits: Live<CheckLimits>,
    rates: RwLock<Arc<Rates>>,
    transfers: Arc<Mutex<HashMap<String, usize>>>,
}

/// The limiters built for one set of rates.
struct Rates {
    built_for: RateKey,
    starts: DefaultKeyedRateLimiter<String>,
    results: DefaultKeyedRateLimiter<String>,
    results_total: DefaultDirectRateLimiter,
    /// Every transfer's shared rate budget.
    shared_pace: Arc<SharedPace>,
}

/// The limits [`Rates`] are built from.
type RateKey = (u32, u32, u32, u32);

fn rate_key(l: &CheckLimits) -> RateKey {
    (
        l.starts_per_minute,
        l.results_per_hour,
        l.results_per_hour_total,
        l.transfer_kbps_total,
    )
}

impl Rates {
    fn new(limits: &CheckLimits) -> Self {
        Rates {
            built_for: rate_key(limits),
            starts: RateLimiter::keyed(Quota::per_minute(at_least_one(limits.starts_per_minute))),
            results: RateLimiter::keyed(Quota::per_hour(at_least_one(limits.results_per_hour))),
            results_total: RateLimiter::direct(Quota::per_hour(at_least_one(
                limits.results_per_hour_total,
            ))),
            shared_pace: Arc::new(SharedPace::new(limits.transfer_kbps_total)),
        }
    }
}

/// Why a check request was refused: the metric reason.
pub(crate) type Refusal = &'static str;

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl CheckGuard {
    pub(crate) fn new(limits: Live<CheckLimits>) -> Self {
        let rates = Rates::new(&limits.get());
        CheckGuard {
            limits,
            rates: RwLock::new(Arc::new(rates)),
            transfers: Arc::default(),
        }
    }

    /// The limits it enforces now.
    pub(crate) fn limits(&self) -> CheckLimits {
        *self.limits.get()
    }

    /// The limiters for the limits in force.
    fn rates(&self) -> Arc<Rates> {
        let key = rate_key(&self.limits());
        let rates = self.rates.read().unwrap_or_else(|e| e.into_inner()).clone();
        if rates.built_for == key {
            return rates;
        }
        let mut rates = self.rates.write().unwrap_or_else(|e| e.into_inner());
        if rates.built_for != key {
            *rates = Arc::new(Rates::new(&self.limits()));
        }
        rates.clone()
    }

    /// Counts a check request from `client`.
    pub(crate) fn start(&self, client: &str) -> Result<(), Refusal> {
        let rates = self.rates();
        rates.forget_idle();
        rates
            .starts
            .check_key(&client.to_owned())
            .map_err(|_| "starts_per_address")
    }

    /// Counts a result to store from `client`.
    pub(crate) fn result(&self, client: &str) -> Result<(), Refusal> {
        let rates = self.rates();
        rates.forget_idle();
        rates
            .results
            .check_key(&client.to_owned())
            .map_err(|_| "results_per_address")?;
        rates.results_total.check().map_err(|_| "results_total")
    }

    /// A throughput transfer for `client`, held until dropped.
    pub(crate) fn transfer(&self, client: &str) -> Result<Transfer, Refusal> {
        let limits = self.limits();
        let mut open = self.transfers.lock().unwrap_or_else(|e| e.into_inner());
        if open.values().sum::<usize>() >= limits.transfers_at_once {
            return Err("transfers_total");
        }
        let mine = open.entry(client.to_owned()).or_default();
        if *mine >= limits.transfers_per_address {
            return Err("transfers_per_address");
        }
        *mine += 1;
        Ok(Transfer {
            open: self.transfers.clone(),
            client: client.to_owned(),
            pace: TransferPace::new(limits.transfer_kbps, Instant::now()),
            shared: self.rates().shared_pace.clone(),
            owed: Owed::default(),
        })
    }
}

impl Rates {
    /// Drops the rate limiters' state for addresses quiet for a while, so
    /// many addresses cannot grow it for good.
    fn forget_idle(&self) {
        if self.starts.len() + self.results.len() > 10_000 {
            self.starts.retain_recent();
            self.results.retain_recent();
        }
    }
}

/// One transfer in progress; counted until dropped.
pub(crate) struct Transfer {
    open: Arc<Mutex<HashMap<String, usize>>>,
    client: String,
    pace: TransferPace,
    shared: Arc<SharedPace>,
    owed: Owed,
}

impl Transfer {
    /// Counts `n` bytes moved and waits until the transfer, and all of
    /// them together, are back within their rates. The shared wait comes first and overlaps the transfer's own, so a
    /// large piece is not delayed twice.
    pub(crate) async fn paced(&mut self, n: usize) {
        let next = self.pace.moved(n, Instant::now());
        self.owed.add(n);
        self.shared.take(&mut self.owed).await;
        tokio::time::sleep_until(next).await;
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_is_limited_per_address_and_overall() {
        let guard = CheckGuard::new(Live::new(CheckLimits {
            starts_per_minute: 4,
            results_per_hour: 2,
            results_per_hour_total: 3,
            transfers_at_once: 3,
            transfers_per_address: 2,
            ..CheckLimits::default()
        }));
        assert_eq!((0..10).filter(|_| guard.start("a").is_ok()).count(), 4);
        assert!(guard.start("b").is_ok(), "another address");
        assert_eq!(guard.result("a"), Ok(()));
        assert_eq!(guard.result("a"), Ok(()));
        assert_eq!(guard.result("a"), Err("results_per_address"));
        assert_eq!(guard.result("b"), Ok(()));
        assert_eq!(guard.result("c"), Err("results_total"));
        let t1 = guard.transfer("a").unwrap();
        let _t2 = guard.transfer("a").unwrap();
        assert_eq!(guard.transfer("a").err(), Some("transfers_per_address"));
        let _t3 = guard.transfer("b").unwrap();
        assert_eq!(guard.transfer("c").err(), Some("transfers_total"));
        drop(t1);
        assert!(
            guard.transfer("c").is_ok(),
            "a finished transfer frees its place"
        );
    }

    #[test]
    fn a_reload_changes_the_limits_and_keeps_transfers_counted() {
        let limits = Live::new(CheckLimits {
            starts_per_minute: 1,
            transfers_per_address: 1,
            ..CheckLimits::default()
        });
        let guard = CheckGuard::new(limits.clone());
        assert_eq!(guard.start("a"), Ok(()));
        assert_eq!(guard.start("a"), Err("starts_per_address"));
        let _held = guard.transfer("a").unwrap();
        limits.replace(CheckLimits {
            starts_per_minute: 3,
            transfers_per_address: 2,
            ..CheckLimits::default()
        });
        assert_eq!((0..5).filter(|_| guard.start("a").is_ok()).count(), 3);
        let _second = guard.transfer("a").unwrap();
        assert_eq!(
            guard.transfer("a").err(),
            Some("transfers_per_address"),
            "the transfer held before the reload still counts"
        );
    }
}
