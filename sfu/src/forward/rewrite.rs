//! Sequence-number rebasing for one subscriber's copy of a stream.
//!
//! A subscriber who joins a call that has run for an hour must not see the
//! publisher's extended sequence numbers: the SRTP rollover counter is derived from
//! them and a fresh receiver assumes it is zero (RFC 3711 §3.3.1). So every
//! outgoing stream starts low and keeps the publisher's gaps, which lets loss
//! upstream show as loss downstream (and be NACKed) instead of being hidden.

/// Maps a publisher's extended sequence numbers onto one subscriber's.
#[derive(Debug, Default, Clone)]
pub struct SeqRewriter {
    base: Option<u64>,
}

/// Where a subscriber's sequence numbers start. Leaves room below for packets
/// that arrive slightly out of order just after the start.
const FIRST_OUTGOING: u64 = 1_000;

impl SeqRewriter {
    /// The outgoing sequence number for `incoming`, or `None` for a packet older
    /// than the start of this subscription (it cannot be placed and is dropped).
    pub fn rewrite(&mut self, incoming: u64) -> Option<u64> {
        let base = *self
            .base
            .get_or_insert_with(|| incoming.saturating_sub(FIRST_OUTGOING));
        let out = incoming.checked_sub(base)?;
        (out > 0).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_running_stream_starts_low_for_a_new_subscriber() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(5_000_000), Some(1_000));
        assert_eq!(r.rewrite(5_000_001), Some(1_001));
    }

    #[test]
    fn gaps_are_kept_so_loss_stays_visible() {
        let mut r = SeqRewriter::default();
        r.rewrite(70_000);
        assert_eq!(r.rewrite(70_005), Some(1_005));
    }

    #[test]
    fn slightly_reordered_packets_still_fit_and_ancient_ones_are_dropped() {
        let mut r = SeqRewriter::default();
        r.rewrite(90_000);
        assert_eq!(r.rewrite(89_990), Some(990));
        assert_eq!(r.rewrite(80_000), None);
    }

    #[test]
    fn stream_that_starts_near_zero_never_maps_to_zero() {
        let mut r = SeqRewriter::default();
        assert_eq!(r.rewrite(3), Some(3));
        assert_eq!(r.rewrite(0), None);
    }
}
