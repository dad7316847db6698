//! Sequence numbers and timestamps for one subscriber's copy of a stream, so
//! that a switch between simulcast layers (each its own RTP stream with its own
//! numbering) looks like one continuous stream to the receiving browser.
//!
//! VP8 picture numbers carry on across a switch too ([`super::PictureRewriter`]).
//!
//! A subscriber who joins a call that has run for an hour must not see the
//! publisher's extended sequence numbers either: the SRTP rollover counter is
//! derived from them and a fresh receiver assumes it is zero (RFC 3711 §3.3.1).
//! So every outgoing stream starts low and keeps the publisher's gaps within a
//! source, which lets loss upstream show as loss downstream (and be NACKed)
//! instead of being hidden.

use std::time::Instant;

/// Where a subscriber's sequence numbers start. Leaves room below for packets
/// that arrive slightly out of order just after the start.
const FIRST_OUTGOING: u64 = 1_000;

/// Maps one source stream at a time (a layer) onto one subscriber's stream.
#[derive(Debug, Clone, Default)]
pub struct StreamRewriter {
    /// `outgoing = incoming - seq_offset` for the current source.
    seq_offset: u64,
    /// Outgoing numbers below this belong to before the current source began.
    floor: u64,
    /// `outgoing = incoming + ts_offset` (wrapping) for the current source.
    ts_offset: u32,
    /// The newest packet written: its outgoing number, timestamp, arrival.
    last: Option<(u64, u32, Instant)>,
}

impl StreamRewriter {
    /// Makes the packet (`seq`, `ts`, arriving `at`) the start of a new source:
    /// the first of the subscription, or the keyframe of a layer switched to.
    /// `clock_rate` converts the time since the previous source's last packet
    /// into the timestamp step, so playout timing carries on.
    pub fn start_source(&mut self, seq: u64, ts: u32, at: Instant, clock_rate: u32) {
        match self.last {
            None => {
                self.seq_offset = seq.saturating_sub(FIRST_OUTGOING);
                self.floor = 1;
                self.ts_offset = 0;
            }
            Some((last_seq, last_ts, last_at)) => {
                let next = last_seq + 1;
                self.seq_offset = seq.wrapping_sub(next);
                self.floor = next;
                let elapsed = at.saturating_duration_since(last_at);
                let step = (elapsed.as_micros() as u64 * u64::from(clock_rate) / 1_000_000).max(1);
                let out_ts = last_ts.wrapping_add(step as u32);
                self.ts_offset = out_ts.wrapping_sub(ts);
            }
        }
    }

    /// The outgoing sequence number and timestamp for a packet of the current
    /// source, or `None` for one from before it began (dropped: it cannot be
    /// placed without colliding with what was already sent).
    pub fn rewrite(&mut self, seq: u64, ts: u32, at: Instant) -> Option<(u64, u32)> {
        // Wrapping: a switch to a stream numbered lower makes the offset
        // "negative". A packet from before the source began lands below the
        // floor, or (before the very first packet) wraps to a huge number.
        let out = seq.wrapping_sub(self.seq_offset);
        if out < self.floor || out >= 1 << 62 {
            return None;
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        if self.last.is_none_or(|(last, _, _)| out > last) {
            self.last = Some((out, out_ts, at));
        }
        Some((out, out_ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn started(seq: u64, ts: u32, at: Instant) -> StreamRewriter {
        let mut r = StreamRewriter::default();
        r.start_source(seq, ts, at, 90_000);
        r
    }

    #[test]
    fn long_running_stream_starts_low_for_a_new_subscriber() {
        let t = Instant::now();
        let mut r = started(5_000_000, 7, t);
        assert_eq!(r.rewrite(5_000_000, 7, t), Some((1_000, 7)));
        assert_eq!(r.rewrite(5_000_001, 3007, t), Some((1_001, 3007)));
    }

    #[test]
    fn gaps_are_kept_so_loss_stays_visible() {
        let t = Instant::now();
        let mut r = started(70_000, 0, t);
        r.rewrite(70_000, 0, t);
        assert_eq!(r.rewrite(70_005, 0, t).map(|o| o.0), Some(1_005));
    }

    #[test]
    fn slightly_reordered_packets_still_fit_and_ancient_ones_are_dropped() {
        let t = Instant::now();
        let mut r = started(90_000, 0, t);
        r.rewrite(90_000, 0, t);
        assert_eq!(r.rewrite(89_990, 0, t).map(|o| o.0), Some(990));
        assert_eq!(r.rewrite(80_000, 0, t), None);
    }

    #[test]
    fn stream_that_starts_near_zero_never_maps_to_zero() {
        let t = Instant::now();
        let mut r = started(3, 0, t);
        assert_eq!(r.rewrite(3, 0, t).map(|o| o.0), Some(3));
        assert_eq!(r.rewrite(0, 0, t), None);
    }

    #[test]
    fn a_layer_switch_continues_numbering_and_timing() {
        let t0 = Instant::now();
        // Layer A: seq 5000.., ts 10_000 + 3000 per frame at 30 fps.
        let mut r = started(5_000, 10_000, t0);
        let mut last = (0, 0);
        for i in 0..10u64 {
            let at = t0 + Duration::from_millis(33 * i);
            last = r
                .rewrite(5_000 + i, 10_000 + 3000 * i as u32, at)
                .expect("in order");
        }
        assert_eq!(last, (1_009, 37_000));
        // Layer B, a different stream: seq 80_000, ts near the wrap, first
        // keyframe 33 ms after A's last packet.
        let at = t0 + Duration::from_millis(33 * 10);
        r.start_source(80_000, u32::MAX - 100, at, 90_000);
        let (seq, ts) = r.rewrite(80_000, u32::MAX - 100, at).expect("switch");
        assert_eq!(seq, 1_010);
        assert_eq!(ts, 37_000 + 2970);
        // B's next frame 3000 ticks later, across B's own timestamp wrap.
        let (seq, ts2) = r
            .rewrite(80_001, (u32::MAX - 100).wrapping_add(3000), at)
            .expect("next");
        assert_eq!((seq, ts2), (1_011, ts + 3000));
        // A late packet of B from before the switch cannot be placed.
        assert_eq!(r.rewrite(79_999, u32::MAX - 3100, at), None);
    }

    #[test]
    fn a_switch_to_a_layer_with_lower_numbers_still_goes_forward() {
        let t = Instant::now();
        let mut r = started(60_000, 0, t);
        r.rewrite(60_000, 0, t);
        r.rewrite(60_001, 0, t);
        r.start_source(12, 5, t, 90_000);
        assert_eq!(r.rewrite(12, 5, t), Some((1_002, 1)));
        assert_eq!(r.rewrite(13, 3005, t), Some((1_003, 3001)));
    }
}
