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
    /// A joined participant's session can be resumed, after a restart too,
    /// with the token whose SHA-256 is `resume_hash` (kept until it leaves).
    Resumable {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// Hex SHA-256 of the resume token: the token itself is never stored.
        resume_hash: String,
        /// The link's claims, checked again on resume.
        claims: crate::JoinClaims,
    },
    /// A participant came back after the hub restarted: the same session
    /// in the call history, one more reconnect.
    Resumed {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// When.
        at: SystemTime,
    },
    /// The hub is stopping to restart: every joined session is left for the
    /// next process (written after every event before it).
    Stopping {
        /// When.
        at: SystemTime,
        /// Recordings the stop cut short: (room, the clinician who started
        /// it), who starts the next part once back.
        recording: Vec<(String, String)>,
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
    /// A clinical image asked for in the call arrived and is stored.
    ImageStored {
        /// Room name.
        room: String,
        /// The image's id.
        image: String,
        /// Who took it (`p<n>`).
        from: String,
        /// Who asked for it (`p<n>`).
        asked_by: String,
        /// `image/jpeg` or `image/png`.
        mime: &'static str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes of the image.
        size: u64,
        /// SHA-256 of the image, hex.
        sha256: String,
        /// The file.
        path: PathBuf,
        /// Sealed with the hub's recording key.
        encrypted: bool,
        /// From its first piece to its last, ms.
        upload_ms: u64,
        /// When it was asked for.
        asked_at: SystemTime,
        /// When it was stored.
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
        /// Stopped by a restart: its clinician's next part follows.
        cut_by_restart: bool,
        /// When.
        at: SystemTime,
    },
}
