//! Identifiers that cross the crate edge. Newtypes keep a room name from being
//! passed where a participant id is expected.

use std::fmt;

/// A room's name, chosen by whoever made the join link (for example `ward-7-bed-3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's id, unique for the life of the process. The browser sees it as
/// the `msid` stream id of every track the participant publishes, which is how a
/// tile is matched to a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}
