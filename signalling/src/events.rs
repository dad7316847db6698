//! Facts about calls that other parts of carecall record (call history now;
//! metrics and record hooks later). Signalling emits them; it does not store them.

use std::path::PathBuf;
use std::time::SystemTime;

use carecall_sfu::recording::RecordingSummary;

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
    /// A clinician started recording the room.
    RecordingStarted {
        /// Room name.
        room: String,
        /// The recording's id.
        recording: String,
        /// Who started it (`p<n>`).
        by: String,
        /// The file being written.
        path: PathBuf,
        /// Sealed with the hub's recording key.
        encrypted: bool,
        /// When.
        at: SystemTime,
    },
    /// A clinician recorded consent to record the call, or a refusal.
    Consent {
        /// Room name.
        room: String,
        /// The entry.
        consent: crate::Consent,
        /// When.
        at: SystemTime,
    },
    /// A recording's file is finished (stopped, or the call ended), or failed.
    RecordingFinished {
        /// Room name.
        room: String,
        /// The recording's id.
        recording: String,
        /// The file's figures, or why it failed.
        result: Result<RecordingSummary, String>,
        /// When.
        at: SystemTime,
    },
}
