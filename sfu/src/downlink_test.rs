//! The connectivity check's download test: a stream of RTP packets sent to
//! the check's browser at a steady, known pace, never repaired, so that what
//! the browser counts as lost is what its network lost on the way down.
//! Sans-IO: asked with the time for the packets due, it says when the next
//! one is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Pt;
use str0m::rtp::RtpWrite;

/// How a download test sends: how many packets a second, how big, for how
/// long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownlinkPlan {
    /// Packets per second, evenly spaced.
    pub packets_per_second: u32,
    /// RTP payload bytes of each packet.
    pub payload_bytes: usize,
    /// How long the test sends.
    pub duration: Duration,
}

impl DownlinkPlan {
    /// The check's test: 100 packets a second of 500 bytes (about
    /// 430 kbit/s with headers, less than a call's lowest video layer and
    /// audio together, so it measures loss rather than capacity) for 10 s.
    /// 1,000 packets read a 4% loss to within about ±0.6 points (one
    /// standard deviation).
    pub const CHECK: DownlinkPlan = DownlinkPlan {
        packets_per_second: 100,
        payload_bytes: 500,
        duration: Duration::from_secs(10),
    };

    /// The packets the plan sends in all.
    pub fn packets(&self) -> u64 {
        self.duration.as_millis() as u64 * u64::from(self.packets_per_second) / 1000
    }
}

/// The video clock the test's RTP timestamps run at.
const CLOCK_HZ: u128 = 90_000;

/// A running download test.
#[derive(Debug)]
pub(crate) struct DownlinkTest {
    pt: Pt,
    started: Instant,
    interval: Duration,
    sent: u64,
    total: u64,
    /// One payload for every packet (a VP8 descriptor starting a frame,
    /// then an inter frame's header and zeros): shared, not copied.
    payload: Arc<[u8]>,
}

impl DownlinkTest {
    /// A test of `plan` sending with payload type `pt`, starting at `now`.
    pub fn new(plan: DownlinkPlan, pt: Pt, now: Instant) -> Self {
        let mut payload = vec![0u8; plan.payload_bytes.max(4)];
        // VP8 payload descriptor: start of partition 0; then the frame tag
        // of an inter frame, so no decoder mistakes it for a picture to show.
        payload[0] = 0x10;
        payload[1] = 0x01;
        DownlinkTest {
            pt,
            started: now,
            interval: Duration::from_secs(1) / plan.packets_per_second.max(1),
            sent: 0,
            total: plan.packets(),
            payload: payload.into(),
        }
    }

    /// When the next packet is due; `None` once all are sent.
    pub fn next_at(&self) -> Option<Instant> {
        (self.sent < self.total).then(|| self.due_time(self.sent))
    }

    /// The next packet, if it is due at `now`. Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<RtpWrite> {
        let due = self.next_at().filter(|t| *t <= now)?;
        let n = self.sent;
        self.sent += 1;
        let elapsed = due.saturating_duration_since(self.started).as_nanos();
        let timestamp = (elapsed * CLOCK_HZ / 1_000_000_000) as u32;
        // Starts at 1: a sequence number of 0 would be the stream's first
        // with a rollover counter some receivers treat specially.
        let write = RtpWrite::new(
            self.pt,
            (n + 1).into(),
            timestamp,
            due,
            self.payload.clone(),
        )
        .marker(true)
        .nackable(false);
        Some(write)
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn due_time(&self, n: u64) -> Instant {
        self.started + self.interval * n as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_plan_sends_a_thousand_packets_evenly_over_ten_seconds() {
        let start = Instant::now();
        let mut test = DownlinkTest::new(DownlinkPlan::CHECK, Pt::from(96), start);
        let mut times = Vec::new();
        let mut now = start;
        // Polled every 3 ms, as a busy worker might.
        while let Some(next) = test.next_at() {
            while test.poll(now).is_some() {
                times.push(now);
            }
            now = now.max(next) + Duration::from_millis(3);
        }
        assert_eq!(times.len(), 1000);
        assert_eq!(test.sent(), 1000);
        let span = times[999] - times[0];
        assert!(
            span >= Duration::from_millis(9_990) && span <= Duration::from_millis(10_000),
            "{span:?}"
        );
        assert!(test.poll(now + Duration::from_secs(5)).is_none(), "done");
    }

    #[test]
    fn nothing_is_sent_before_its_time() {
        let start = Instant::now();
        let mut test = DownlinkTest::new(DownlinkPlan::CHECK, Pt::from(96), start);
        assert!(test.poll(start).is_some(), "the first at once");
        assert!(test.poll(start + Duration::from_millis(9)).is_none());
        assert_eq!(test.next_at(), Some(start + Duration::from_millis(10)));
        // Late by 25 ms: the two packets due go at once, the third waits.
        assert!(test.poll(start + Duration::from_millis(25)).is_some());
        assert!(test.poll(start + Duration::from_millis(25)).is_some());
        assert!(test.poll(start + Duration::from_millis(25)).is_none());
    }
}
