//! The crate's one error type.

use crate::id::{ParticipantId, RoomId};

/// What can go wrong when signalling hands the media plane a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP text could not be parsed.
    #[error("unreadable SDP from {participant}: {reason}")]
    BadSdp {
        /// Who sent it.
        participant: ParticipantId,
        /// The parser's complaint.
        reason: String,
    },
    /// The WebRTC stack refused the offer or answer.
    #[error("negotiation with {participant} failed: {reason}")]
    Negotiation {
        /// Who it was negotiating with.
        participant: ParticipantId,
        /// The stack's complaint.
        reason: String,
    },
    /// An offer or answer over [`crate::SdpLimits`]: refused before a
    /// media worker spends time on it.
    #[error("SDP from {participant} refused: {reason}")]
    SdpTooLarge {
        /// Who sent it.
        participant: ParticipantId,
        /// Which limit it is over.
        reason: String,
    },
    /// A participant sent more ICE candidates than a browser would.
    #[error("{participant} sent more than {limit} ICE candidates")]
    TooManyCandidates {
        /// Who sent them.
        participant: ParticipantId,
        /// The limit.
        limit: usize,
    },
    /// A command named a participant the room does not have.
    #[error("{participant} is not in room {room}")]
    UnknownParticipant {
        /// The room named.
        room: RoomId,
        /// The participant named.
        participant: ParticipantId,
    },
    /// A media or TURN socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The TURN server's thread or randomness could not be had.
    #[error("TURN server could not start: {0}")]
    TurnStart(&'static str),
    /// A command named a room with nobody in it.
    #[error("room {0} has no media session")]
    NoSuchRoom(RoomId),
    /// A recording could not start.
    #[error("recording could not start: {0}")]
    Recording(String),
    /// A download test was asked of a session with no video m-line to send
    /// it on (the check's page offers one to receive on).
    #[error("{participant} offered no video to receive a download test on")]
    NoTestStream {
        /// Who was to receive it.
        participant: ParticipantId,
    },
    /// The relay to other nodes failed: no endpoint configured, a link that
    /// could not be made, or its thread gone.
    #[error("relay between nodes: {0}")]
    Relay(String),
    /// The media worker thread is gone (it only stops when the server stops).
    #[error("media worker stopped")]
    WorkerGone,
}
