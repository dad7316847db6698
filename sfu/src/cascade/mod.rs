//! Rooms that span nodes: a call whose participants are on two (or more)
//! nodes of one hub, the nodes relaying media between them.
//!
//! Each node keeps its own [`crate::Room`] for the call, with its own
//! participants in it. The room tells every node it spans to what its
//! participants publish, relays their packets once per node (however many
//! viewers are there), and treats the far side's participants as
//! publishers of its own: local viewers subscribe to them, choose their
//! layers and ask for their keyframes as for anyone else. A node joining a
//! call spans the room only to the node hosting it, so a room on three
//! nodes is a star: the hosting node passes what one far node sends on to
//! the others (never back where it came from), and what they ask of it
//! back to its node. Each packet crosses each link once.
//!
//! The room stays sans-IO: it takes [`Control`] messages and
//! [`RelayedPacket`]s, and is polled for [`RelayOutput`]. The connection
//! between nodes (QUIC, with the room's control on a stream and packets in
//! datagrams) and its byte format ([`wire`]) live at the edge.

pub mod link;
mod relay;
pub mod wire;

pub(crate) use relay::Relay;

use str0m::media::{MediaKind, Mid};

use crate::forward::Layer;
use crate::id::ParticipantId;
use crate::packet::MediaPacket;

/// Another node a room spans to, numbered by the edge holding the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

/// What one node tells another about a room they both host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `origin`, a participant on the sending node, publishes a track.
    Published {
        /// The participant, on the node that hosts it.
        origin: ParticipantId,
        /// The track, by its publisher's mid.
        mid: Mid,
        /// Audio or video.
        kind: MediaKind,
    },
    /// Who `origin`, a participant on the sending node, is (name, role,
    /// microphone and camera state), as its signalling wrote it: passed to
    /// the browsers here as it is. Sent again when it changes.
    Peer {
        /// The participant.
        origin: ParticipantId,
        /// Signalling's description, at most [`wire::MAX_PEER_INFO`] bytes.
        info: std::sync::Arc<str>,
    },
    /// `origin` left the sending node: its tracks end.
    Left {
        /// The participant who left.
        origin: ParticipantId,
    },
    /// The sending node's participants would take `origin`'s track: its
    /// sound (`ceiling` the full layer) or its video up to `ceiling`
    /// (`None`: none of it). The receiving node relays that much and keeps
    /// those layers published.
    Want {
        /// The participant, on the node that hosts it.
        origin: ParticipantId,
        /// The track, by its publisher's mid.
        mid: Mid,
        /// The highest layer wanted; `None`: none.
        ceiling: Option<Layer>,
    },
    /// A viewer on the sending node needs a keyframe of this layer.
    Keyframe {
        /// The participant, on the node that hosts it.
        origin: ParticipantId,
        /// The track, by its publisher's mid.
        mid: Mid,
        /// The simulcast layer.
        layer: Layer,
    },
    /// The sending node (or one beyond it) records the call, or stopped
    /// (`since: None`): everyone in it is told, wherever they joined, since
    /// the recording takes every participant's media, relayed included.
    Recording {
        /// The clinician who started it.
        origin: ParticipantId,
        /// When it started, Unix seconds; `None`: it stopped.
        since: Option<u64>,
    },
    /// The consent to record that `origin`, a clinician on the sending
    /// node (or one beyond it), noted for the call, as that node's
    /// signalling wrote it: passed to the browsers here as it is.
    Consent {
        /// The clinician who noted it.
        origin: ParticipantId,
        /// When, Unix seconds: the newest entry is the call's, wherever
        /// noted, so nodes that hear two in different orders agree.
        at: u64,
        /// Signalling's entry, at most [`wire::MAX_PEER_INFO`] bytes.
        info: std::sync::Arc<str>,
    },
}

/// One RTP packet of a published track, on its way between nodes. Its
/// payload type is in the relay's own numbering (see `relay.rs`), not the
/// publisher's browser's.
#[derive(Debug, Clone)]
pub struct RelayedPacket {
    pub(crate) origin: ParticipantId,
    pub(crate) mid: Mid,
    pub(crate) layer: Layer,
    pub(crate) packet: MediaPacket,
}

impl RelayedPacket {
    /// Who published it.
    pub fn origin(&self) -> ParticipantId {
        self.origin
    }

    /// Its RTP sequence number (extended).
    pub fn seq(&self) -> u64 {
        self.packet.seq
    }

    /// Payload bytes, for counting what crosses.
    pub fn payload_len(&self) -> usize {
        self.packet.payload.len()
    }

    /// Its RTP bytes as counted on both sides of the relay: the payload
    /// and a 12-byte header (extensions are not relayed as such).
    pub fn rtp_bytes(&self) -> usize {
        self.packet.payload.len() + 12
    }
}

/// What a room hands the edge for another node.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum RelayOutput {
    /// A control message, to go in order on the link's stream.
    Control(LinkId, Control),
    /// A packet, to go as a datagram (lost rather than late).
    Packet(LinkId, RelayedPacket),
}
