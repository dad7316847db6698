//! Facts about calls that other parts of carecall record (call history now;
//! metrics and record hooks later). Signalling emits them; it does not store them.

use std::time::SystemTime;

use crate::token::Role;

/// Something that happened in a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// A participant passed the token check and entered a room.
    Joined {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// Role from the link.
        role: Role,
        /// When.
        at: SystemTime,
    },
    /// A participant left or was disconnected.
    Left {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// When.
        at: SystemTime,
    },
}
