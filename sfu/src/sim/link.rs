//! A simulated network path: one direction between the room and one peer.
//!
//! The in-memory handoff of [`super::SimCall`] is a perfect link. Real links
//! differ from it in the four ways the SFU's adaptation answers to: a
//! bottleneck (a token bucket in front of a bounded queue, so a sender above
//! the rate first sees the delay grow, then loses what overflows the queue),
//! random loss, loss in bursts, and propagation delay. [`LinkModel`] says how
//! much of each; [`Link`] holds the datagrams in flight and hands each out
//! when its arrival time comes. Losses come from a seeded xorshift generator,
//! so a test loses the same datagrams on every run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How one direction of a simulated link behaves. The default is a perfect
/// link: no rate limit, no loss, no delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// The narrowest hop, if the link has one.
    pub bottleneck: Option<Bottleneck>,
    /// One-way propagation delay, after the bottleneck's own queueing.
    pub delay: Duration,
    /// Probability that a datagram is lost, each independently of the others.
    pub loss: f64,
    /// Loss in bursts, on top of `loss`.
    pub burst_loss: Option<GilbertElliott>,
    /// Seed of the loss generator: the same seed loses the same datagrams.
    pub seed: u64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            bottleneck: None,
            delay: Duration::ZERO,
            loss: 0.0,
            burst_loss: None,
            seed: 0x5eed_1234_abcd_9876,
        }
    }
}

impl LinkModel {
    /// A link limited to `rate_bps` (see [`Bottleneck::new`]) with a
    /// one-way `delay`: the usual shape of a home's downlink.
    pub fn limited(rate_bps: u64, delay: Duration) -> LinkModel {
        LinkModel {
            bottleneck: Some(Bottleneck::new(rate_bps)),
            delay,
            ..LinkModel::default()
        }
    }
}

/// A rate limit as a router's shaper applies it (Linux `tc tbf`): datagrams
/// leave at most at `rate_bps`, after a burst of `burst_bytes` from idle;
/// those waiting queue in arrival order, up to `queue_bytes`, and a datagram
/// that would overflow the queue is dropped (tail drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bottleneck {
    /// Bit/s.
    pub rate_bps: u64,
    /// The token bucket's depth: what may pass at line speed after idle.
    pub burst_bytes: u64,
    /// What may wait for tokens.
    pub queue_bytes: u64,
}

impl Bottleneck {
    /// A bucket of one MTU (`tc` asks at least that) and a queue that holds
    /// [`Bottleneck::DEFAULT_QUEUE`] at the rate, as the poor-network
    /// browser tests shape their links.
    pub fn new(rate_bps: u64) -> Bottleneck {
        Bottleneck {
            rate_bps,
            burst_bytes: 1_500,
            queue_bytes: bytes_in(rate_bps, Self::DEFAULT_QUEUE),
        }
    }

    /// How long the default queue holds at the rate: the 300 ms of
    /// `tests/poor_network.rs` (see `docs/adaptation.md`).
    pub const DEFAULT_QUEUE: Duration = Duration::from_millis(300);
}

/// Bytes a link at `rate_bps` carries in `span`.
fn bytes_in(rate_bps: u64, span: Duration) -> u64 {
    (u128::from(rate_bps) * span.as_micros() / 8_000_000) as u64
}

/// Loss in bursts, as a two-state (Gilbert-Elliott) channel: Wi-Fi
/// interference and a busy cell lose runs of packets, not single ones, which
/// costs RED and NACK more than the same share lost at random. The state
/// moves once per datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Chance, per datagram, that a good period ends.
    pub enter_bad: f64,
    /// Chance, per datagram, that a bad period ends: a bad period lasts
    /// `1 / leave_bad` datagrams on average.
    pub leave_bad: f64,
    /// Chance of loss during a bad period.
    pub loss_in_bad: f64,
}

/// What a link did with the datagrams it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams given to the link.
    pub entered: u64,
    /// Datagrams that reached the far end.
    pub delivered: u64,
    /// Datagrams lost at random, in a burst, or by [`Link::drop_next`].
    pub lost: u64,
    /// Datagrams dropped because the bottleneck's queue was full.
    pub overflowed: u64,
    /// The longest any datagram waited in the bottleneck's queue.
    pub longest_wait: Duration,
}

/// One datagram as it entered the link: when, how big, and whether it
/// carried RTP (media, padding or probes; not RTCP, STUN or DTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// When the sender handed it over.
    pub at: Instant,
    /// Its size on the wire, UDP payload only.
    pub bytes: usize,
    /// Whether it carried RTP.
    pub rtp: bool,
}

/// A datagram the link holds until `arrival`.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// When it clears the bottleneck.
    leave: Instant,
    /// When it reaches the far end.
    pub arrival: Instant,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// One direction of one peer's link, with its datagrams in flight.
#[derive(Debug)]
pub struct Link {
    model: LinkModel,
    random: XorShift,
    in_bad_period: bool,
    drop_next: u32,
    /// When the bottleneck last let a datagram through, and the bits left
    /// in its bucket then.
    bucket: Option<(Instant, f64)>,
    in_flight: VecDeque<InFlight>,
    stats: LinkStats,
    departures: Vec<Departure>,
}

impl Link {
    /// A link that behaves as `model` says, with nothing in flight.
    pub fn new(model: LinkModel) -> Link {
        Link {
            model,
            random: XorShift::new(model.seed),
            in_bad_period: false,
            drop_next: 0,
            bucket: None,
            in_flight: VecDeque::new(),
            stats: LinkStats::default(),
            departures: Vec::new(),
        }
    }

    /// Changes how the link behaves from now on, as a network does when it
    /// gets worse or better: what is in flight still arrives as it was due,
    /// and the loss generator goes on from where it was (a new seed is
    /// ignored).
    pub fn reshape(&mut self, model: LinkModel) {
        self.model = LinkModel {
            seed: self.model.seed,
            ..model
        };
    }

    /// How the link behaves now.
    pub fn model(&self) -> &LinkModel {
        &self.model
    }

    /// Loses the next `n` datagrams, whatever they carry: a short outage.
    pub fn drop_next(&mut self, n: u32) {
        self.drop_next = n;
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Every datagram given to the link, in order: when the sender let each
    /// go is what a pacer controls.
    pub fn departures(&self) -> &[Departure] {
        &self.departures
    }

    /// Takes a datagram the sender lets go at `now`: it is lost, dropped at
    /// the full queue, or held until its arrival time.
    pub(crate) fn enter(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    ) {
        self.stats.entered += 1;
        self.departures.push(Departure {
            at: now,
            bytes: contents.len(),
            rtp: super::is_rtp(&contents),
        });
        if self.lost() {
            self.stats.lost += 1;
            return;
        }
        let leave = match self.model.bottleneck {
            Some(bottleneck) => match self.queue(now, contents.len(), bottleneck) {
                Some(leave) => leave,
                None => {
                    self.stats.overflowed += 1;
                    return;
                }
            },
            None => now,
        };
        self.stats.longest_wait = self.stats.longest_wait.max(leave - now);
        // In order: a shorter delay set while datagrams are in flight does
        // not let later ones overtake them.
        let last = self.in_flight.back().map(|d| d.arrival);
        let arrival = (leave + self.model.delay).max(last.unwrap_or(now));
        self.in_flight.push_back(InFlight {
            leave,
            arrival,
            source,
            destination,
            contents,
        });
    }

    /// The next datagram due at the far end by `now`, in arrival order.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<InFlight> {
        if self.in_flight.front()?.arrival > now {
            return None;
        }
        self.stats.delivered += 1;
        self.in_flight.pop_front()
    }

    /// Whether the loss rules take the next datagram; moves the burst state.
    fn lost(&mut self) -> bool {
        if self.drop_next > 0 {
            self.drop_next -= 1;
            return true;
        }
        if let Some(burst) = self.model.burst_loss {
            let flip = match self.in_bad_period {
                true => burst.leave_bad,
                false => burst.enter_bad,
            };
            if self.random.chance(flip) {
                self.in_bad_period = !self.in_bad_period;
            }
            if self.in_bad_period && self.random.chance(burst.loss_in_bad) {
                return true;
            }
        }
        self.random.chance(self.model.loss)
    }

    /// When a datagram of `bytes` entering at `now` clears the bottleneck,
    /// or `None` when the queue has no room for it. Datagrams leave in the
    /// order they came, each once the bucket holds its size (or the rest of
    /// it has trickled in).
    fn queue(&mut self, now: Instant, bytes: usize, bottleneck: Bottleneck) -> Option<Instant> {
        let waiting: usize = self
            .in_flight
            .iter()
            .rev()
            .take_while(|d| d.leave > now)
            .map(|d| d.contents.len())
            .sum();
        if (waiting + bytes) as u64 > bottleneck.queue_bytes {
            return None;
        }
        let rate = bottleneck.rate_bps as f64;
        let depth = (bottleneck.burst_bytes * 8) as f64;
        let (start, tokens) = match self.bucket {
            Some((last, left)) if last > now => (last, left),
            Some((last, left)) => (now, (left + rate * (now - last).as_secs_f64()).min(depth)),
            None => (now, depth),
        };
        let needed = (bytes * 8) as f64;
        let (leave, left) = if tokens >= needed {
            (start, tokens - needed)
        } else {
            let wait = Duration::from_secs_f64((needed - tokens) / rate);
            (start + wait, 0.0)
        };
        self.bucket = Some((leave, left));
        Some(leave)
    }
}

/// A xorshift64 generator (Marsaglia, 2003): enough randomness for loss
/// patterns, and the same sequence from the same seed everywhere.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is xorshift's one fixed point.
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // The top 53 bits as a fraction in [0, 1).
        let fraction = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        fraction < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    /// Arrival times of `count` datagrams of `bytes` entered at `at`.
    fn arrivals(link: &mut Link, at: Instant, count: usize, bytes: usize) -> Vec<Duration> {
        for _ in 0..count {
            link.enter(at, addr(), addr(), vec![0; bytes]);
        }
        let far = at + Duration::from_secs(60);
        std::iter::from_fn(|| link.pop_due(far))
            .map(|d| d.arrival - at)
            .collect()
    }

    #[test]
    fn a_perfect_link_delivers_everything_at_once() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkModel::default());
        assert_eq!(arrivals(&mut link, t0, 3, 1000), [Duration::ZERO; 3]);
    }

    #[test]
    fn a_bottleneck_spaces_datagrams_at_its_rate_after_the_burst() {
        let t0 = Instant::now();
        // 1000 bytes take 8 ms at 1 Mbit/s; the 1500-byte bucket passes the
        // first at once and half of the second.
        let model = LinkModel::limited(1_000_000, Duration::from_millis(20));
        let mut link = Link::new(model);
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            arrivals(&mut link, t0, 4, 1000),
            [ms(20), ms(24), ms(32), ms(40)]
        );
        assert_eq!(link.stats().longest_wait, ms(20));
    }

    #[test]
    fn a_full_queue_drops_what_does_not_fit() {
        let t0 = Instant::now();
        let model = LinkModel {
            bottleneck: Some(Bottleneck {
                rate_bps: 1_000_000,
                burst_bytes: 1_000,
                queue_bytes: 3_000,
            }),
            ..LinkModel::default()
        };
        let mut link = Link::new(model);
        // The first leaves at once, three wait, the rest overflow.
        assert_eq!(arrivals(&mut link, t0, 10, 1000).len(), 4);
        assert_eq!(link.stats().overflowed, 6);
    }

    #[test]
    fn losses_follow_the_seed() {
        let lossy = LinkModel {
            loss: 0.1,
            ..LinkModel::default()
        };
        let t0 = Instant::now();
        let run = |model| {
            let mut link = Link::new(model);
            arrivals(&mut link, t0, 10_000, 10);
            link.stats().lost
        };
        let lost = run(lossy);
        assert_eq!(lost, run(lossy));
        assert!((900..1100).contains(&lost), "{lost}");
        assert_ne!(lost, run(LinkModel { seed: 7, ..lossy }));
    }

    #[test]
    fn burst_loss_loses_runs() {
        let t0 = Instant::now();
        let model = LinkModel {
            burst_loss: Some(GilbertElliott {
                enter_bad: 0.01,
                leave_bad: 0.1,
                loss_in_bad: 1.0,
            }),
            ..LinkModel::default()
        };
        let mut link = Link::new(model);
        let mut runs = Vec::new();
        let mut run = 0;
        for _ in 0..10_000 {
            link.enter(t0, addr(), addr(), vec![0; 10]);
            match link.pop_due(t0) {
                Some(_) if run > 0 => {
                    runs.push(run);
                    run = 0;
                }
                Some(_) => {}
                None => run += 1,
            }
        }
        let mean = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
        // Bad periods of ten datagrams on average, about one in eleven of the time.
        assert!((7.0..13.0).contains(&mean), "{mean}");
        let lost = link.stats().lost;
        assert!((600..1300).contains(&lost), "{lost}");
    }
}
