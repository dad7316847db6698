//! The throughput tests' pace: each transfer at most
//! [`CheckLimits::transfer_kbps`](super::CheckLimits), all of them together at most
//! `transfer_kbps_total`, so checks never take the hub's bandwidth from
//! calls in progress. A check that reaches the per-transfer cap reads "at
//! least" that rate, which is above every threshold the verdict uses.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// What the shared budget counts in.
const UNIT: usize = 16 << 10;
/// The shared budget's burst, in units: a download piece (64 KiB) and some.
const BURST_UNITS: u32 = 8;

/// How far behind its rate a transfer may catch up: a scheduling delay,
/// not a slow client.
const CATCH_UP: Duration = Duration::from_millis(50);

/// One transfer's pace: how long to wait after each piece so that, from
/// its start, it never runs faster than its rate.
#[derive(Debug)]
pub(crate) struct TransferPace {
    started: Instant,
    bytes: u64,
    bytes_per_second: u64,
}

impl TransferPace {
    /// A transfer starting `now` at `kbps` at most.
    pub fn new(kbps: u32, now: Instant) -> Self {
        TransferPace {
            started: now,
            bytes: 0,
            bytes_per_second: (u64::from(kbps) * 1000 / 8).max(1),
        }
    }

    /// Counts `n` bytes moved; the time before the next piece may move.
    /// Time a slow client left unused is not banked: a transfer that fell
    /// more than [`CATCH_UP`] behind its rate starts again from `now`
    /// rather than catching up faster than the rate.
    pub fn moved(&mut self, n: usize, now: Instant) -> Instant {
        if self.due() + CATCH_UP < now {
            (self.started, self.bytes) = (now, 0);
        }
        self.bytes += n as u64;
        self.due()
    }

    fn due(&self) -> Instant {
        self.started + Duration::from_micros(self.bytes * 1_000_000 / self.bytes_per_second)
    }
}

/// Every check transfer's shared budget.
pub(crate) struct SharedPace {
    budget: DefaultDirectRateLimiter,
}

impl SharedPace {
    /// A budget of `kbps` for all transfers together.
    pub fn new(kbps: u32) -> Self {
        let units_per_second = (u64::from(kbps) * 1000 / 8 / UNIT as u64).max(1);
        let per_unit = Duration::from_micros(1_000_000 / units_per_second);
        let quota = Quota::with_period(per_unit)
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST_UNITS).unwrap_or(NonZeroU32::MIN));
        SharedPace {
            budget: RateLimiter::direct(quota),
        }
    }

    /// Waits until the bytes `owed` so far fit the shared budget, charging
    /// whole units and leaving the remainder owed for the next piece: a
    /// client sending many small pieces pays for its bytes, not its pieces.
    pub async fn take(&self, owed: &mut Owed) {
        while let Some(units) = owed.next_charge() {
            // `units` is at most the burst, so this cannot fail.
            let _ = self.budget.until_n_ready(units).await;
        }
    }
}

/// Bytes a transfer has moved but not yet charged to the shared budget.
#[derive(Debug, Default)]
pub(crate) struct Owed(usize);

impl Owed {
    /// Counts `n` more bytes moved.
    pub fn add(&mut self, n: usize) {
        self.0 += n;
    }

    /// The next charge in whole units, at most the burst; `None` once less
    /// than a unit is owed.
    fn next_charge(&mut self) -> Option<NonZeroU32> {
        let units = (self.0 / UNIT).min(BURST_UNITS as usize);
        self.0 -= units * UNIT;
        NonZeroU32::new(units as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_waits_so_it_never_runs_faster_than_its_rate() {
        let t0 = Instant::now();
        // 8,000 kbit/s is 1,000,000 bytes a second.
        let mut pace = TransferPace::new(8_000, t0);
        assert_eq!(pace.moved(250_000, t0), t0 + Duration::from_millis(250));
        assert_eq!(pace.moved(250_000, t0), t0 + Duration::from_millis(500));
        // A client that fell behind goes on at the rate from where it is,
        // never faster to catch up.
        let late = t0 + Duration::from_secs(3);
        assert_eq!(pace.moved(100_000, late), late + Duration::from_millis(100));
        assert_eq!(pace.moved(100_000, late), late + Duration::from_millis(200));
    }

    #[test]
    fn small_pieces_are_charged_by_their_bytes_and_large_ones_in_full() {
        let mut owed = Owed::default();
        let mut charged = 0;
        // 1 KiB pieces: one unit per 16 of them, not one per piece.
        for _ in 0..100 {
            owed.add(1 << 10);
            while let Some(u) = owed.next_charge() {
                charged += u.get();
            }
        }
        assert_eq!(charged, 6, "100 KiB is 6 whole units");
        assert_eq!(owed.0, 4 << 10, "the rest stays owed");
        // A 256 KiB piece is charged all 16 units, in bursts of 8.
        let mut owed = Owed::default();
        owed.add(256 << 10);
        let charges: Vec<u32> =
            std::iter::from_fn(|| owed.next_charge().map(|u| u.get())).collect();
        assert_eq!(charges, [8, 8]);
    }

    #[tokio::test]
    async fn the_shared_budget_holds_everyone_to_its_rate() {
        // 2,048 kbit/s: 16 units of 16 KiB a second, 8 at once.
        let shared = SharedPace::new(2_048);
        let start = std::time::Instant::now();
        let mut owed = Owed::default();
        for _ in 0..64 {
            owed.add(UNIT / 4);
            shared.take(&mut owed).await;
        }
        // 8 go at once, the next 8 at 1/16 s each: about half a second.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
    }
}
