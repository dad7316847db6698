//! Identifiers that cross the crate edge. Newtypes keep a room name from being
//! passed where a participant id is expected.

use std::fmt;

/// A room's name, chosen by whoever made the join link (for example `ward-7-bed-3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's id, unique for the life of the process. The browser sees it as
/// the `msid` stream id of every track the participant publishes, which is how a
/// tile is matched to a name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl std::str::FromStr for ParticipantId {
    type Err = ();

    /// Reads the `p<n>` form that [`Display`](fmt::Display) writes.
    fn from_str(s: &str) -> Result<Self, ()> {
        let n = s.strip_prefix('p').ok_or(())?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        n.parse().map(ParticipantId).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_ids_round_trip_and_junk_is_refused() {
        assert_eq!("p42".parse::<ParticipantId>(), Ok(ParticipantId(42)));
        assert_eq!(ParticipantId(7).to_string().parse(), Ok(ParticipantId(7)));
        for junk in [
            "",
            "p",
            "42",
            "p-1",
            "p+1",
            "q1",
            "p99999999999999999999999",
        ] {
            assert_eq!(junk.parse::<ParticipantId>(), Err(()), "{junk}");
        }
    }
}
