//! The bytes between two nodes: control messages on the link's stream, each
//! behind a two-byte length, and packets one per datagram. Big-endian
//! fixed-width fields; nothing is trusted: a short, unknown or oversized
//! message is an error, never a panic.
//!
//! Rooms are named once per link ([`LinkMessage::Open`]) and then numbered:
//! each node numbers the rooms it sends about, so a datagram carries four
//! bytes of room, not its name.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::VideoOrientation;

use super::{Control, RelayedPacket};
use crate::forward::Layer;
use crate::id::{ParticipantId, RoomId};
use crate::packet::MediaPacket;

/// The longest control message a node accepts (a room name is at most 256
/// bytes, a participant's description [`MAX_PEER_INFO`]).
pub const MAX_MESSAGE: usize = 1024;

/// The longest description of a participant a node relays.
pub const MAX_PEER_INFO: usize = 768;

/// The first byte of every packet datagram: the format's version.
const PACKET_VERSION: u8 = 1;

/// Fixed part of a packet datagram, before the mid and payload.
const PACKET_HEADER: usize = 1 + 4 + 8 + 1 + 1 + 1 + 8 + 4 + 8 + 1;

/// The longest room name carried.
const MAX_ROOM_NAME: usize = 256;

const FLAG_MARKER: u8 = 1;
const FLAG_AUDIO_LEVEL: u8 = 2;
const FLAG_VOICE: u8 = 4;
const FLAG_VOICE_ACTIVE: u8 = 8;
const FLAG_ORIENTATION: u8 = 16;
const KNOWN_FLAGS: u8 = 31;

/// Why bytes from another node were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the message needs.
    #[error("message truncated")]
    Truncated,
    /// A message type or version this node does not know.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A layer number outside the three simulcast layers.
    #[error("no layer {0}")]
    BadLayer(u8),
    /// Packet flags this node does not know, or that contradict each other.
    #[error("unknown packet flags {0:#x}")]
    BadFlags(u8),
    /// A mid longer than 16 bytes or not UTF-8.
    #[error("malformed mid")]
    BadMid,
    /// A room name too long or not UTF-8.
    #[error("malformed room name")]
    BadRoom,
    /// A participant's description not UTF-8.
    #[error("malformed participant description")]
    BadPeer,
    /// A control message over [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over the limit")]
    Oversized(usize),
    /// Bytes left over after a control message.
    #[error("trailing bytes after a message")]
    Trailing,
    /// A recording neither running nor stopped, or stopped with a time.
    #[error("malformed recording state")]
    BadRecording,
}

/// One control message on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMessage {
    /// The sender has participants in `room` and numbers it `channel`.
    Open {
        /// The sender's number for the room.
        channel: u32,
        /// The room's name.
        room: RoomId,
    },
    /// The sender's last participant in its `channel` left.
    Close {
        /// The sender's number for the room.
        channel: u32,
    },
    /// A room's own message.
    Room {
        /// The sender's number for the room.
        channel: u32,
        /// What it says.
        control: Control,
    },
}

impl LinkMessage {
    /// The relay version that first had it: a node of an older one takes
    /// it for garbage.
    pub fn version(&self) -> u8 {
        match self {
            LinkMessage::Room {
                control: Control::Recording { .. } | Control::Consent { .. },
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// Appends `message` to `out`, behind its length.
pub fn encode_message(message: &LinkMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    match message {
        LinkMessage::Open { channel, room } => {
            out.push(1);
            out.extend_from_slice(&channel.to_be_bytes());
            let name = prefix(&room.0, MAX_ROOM_NAME).as_bytes();
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name);
        }
        LinkMessage::Close { channel } => {
            out.push(2);
            out.extend_from_slice(&channel.to_be_bytes());
        }
        LinkMessage::Room { channel, control } => {
            let (kind, origin) = match control {
                Control::Published { origin, .. } => (3, origin),
                Control::Left { origin } => (4, origin),
                Control::Want { origin, .. } => (5, origin),
                Control::Keyframe { origin, .. } => (6, origin),
                Control::Peer { origin, .. } => (7, origin),
                Control::Recording { origin, .. } => (8, origin),
                Control::Consent { origin, .. } => (9, origin),
            };
            out.push(kind);
            out.extend_from_slice(&channel.to_be_bytes());
            out.extend_from_slice(&origin.0.to_be_bytes());
            match control {
                Control::Published { mid, kind, .. } => {
                    put_mid(out, mid);
                    out.push(u8::from(*kind == MediaKind::Video));
                }
                Control::Left { .. } => {}
                Control::Want { mid, ceiling, .. } => {
                    put_mid(out, mid);
                    out.push(ceiling.map_or(u8::MAX, |l| l.index() as u8));
                }
                Control::Keyframe { mid, layer, .. } => {
                    put_mid(out, mid);
                    out.push(layer.index() as u8);
                }
                Control::Peer { info, .. } => put_info(out, info),
                Control::Consent { at, info, .. } => {
                    out.extend_from_slice(&at.to_be_bytes());
                    put_info(out, info);
                }
                Control::Recording { since, .. } => {
                    out.push(u8::from(since.is_some()));
                    out.extend_from_slice(&since.unwrap_or(0).to_be_bytes());
                }
            }
        }
    }
    let len = (out.len() - start - 2) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
}

/// The length of the next message from its two-byte prefix; an error when
/// over [`MAX_MESSAGE`], before anything that long is read.
pub fn message_len(prefix: [u8; 2]) -> Result<usize, WireError> {
    let len = u16::from_be_bytes(prefix) as usize;
    match len > MAX_MESSAGE {
        true => Err(WireError::Oversized(len)),
        false => Ok(len),
    }
}

/// Reads one message's body (without its length prefix).
pub fn decode_message(body: &[u8]) -> Result<LinkMessage, WireError> {
    if body.len() > MAX_MESSAGE {
        return Err(WireError::Oversized(body.len()));
    }
    let mut r = Reader(body);
    let kind = r.u8()?;
    let channel = r.u32()?;
    let message = match kind {
        1 => {
            let len = r.u16()? as usize;
            if len > MAX_ROOM_NAME {
                return Err(WireError::BadRoom);
            }
            let name = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::BadRoom)?;
            LinkMessage::Open {
                channel,
                room: RoomId(name.to_owned()),
            }
        }
        2 => LinkMessage::Close { channel },
        3..=9 => {
            let origin = ParticipantId(r.u64()?);
            let control = match kind {
                3 => {
                    let mid = r.mid()?;
                    let kind = match r.u8()? {
                        0 => MediaKind::Audio,
                        1 => MediaKind::Video,
                        other => return Err(WireError::UnknownType(other)),
                    };
                    Control::Published { origin, mid, kind }
                }
                4 => Control::Left { origin },
                5 => {
                    let mid = r.mid()?;
                    let ceiling = match r.u8()? {
                        u8::MAX => None,
                        n => Some(layer(n)?),
                    };
                    Control::Want {
                        origin,
                        mid,
                        ceiling,
                    }
                }
                6 => {
                    let mid = r.mid()?;
                    let layer = layer(r.u8()?)?;
                    Control::Keyframe { origin, mid, layer }
                }
                8 => {
                    let recording = r.u8()?;
                    let since = r.u64()?;
                    // One way to write each: a stopped one carries no time.
                    let since = match (recording, since) {
                        (0, 0) => None,
                        (1, since) => Some(since),
                        _ => return Err(WireError::BadRecording),
                    };
                    Control::Recording { origin, since }
                }
                7 => Control::Peer {
                    origin,
                    info: r.info()?,
                },
                _ => Control::Consent {
                    origin,
                    at: r.u64()?,
                    info: r.info()?,
                },
            };
            LinkMessage::Room { channel, control }
        }
        other => return Err(WireError::UnknownType(other)),
    };
    match r.0.is_empty() {
        true => Ok(message),
        false => Err(WireError::Trailing),
    }
}

/// Writes one packet as a datagram into `out` (cleared first).
pub fn encode_packet(channel: u32, relayed: &RelayedPacket, out: &mut Vec<u8>) {
    let p = &relayed.packet;
    out.clear();
    out.reserve(PACKET_HEADER + 16 + 2 + p.payload.len());
    let mut flags = 0;
    if p.marker {
        flags |= FLAG_MARKER;
    }
    if p.audio_level.is_some() {
        flags |= FLAG_AUDIO_LEVEL;
    }
    if let Some(active) = p.voice_activity {
        flags |= FLAG_VOICE | if active { FLAG_VOICE_ACTIVE } else { 0 };
    }
    if p.video_orientation.is_some() {
        flags |= FLAG_ORIENTATION;
    }
    out.push(PACKET_VERSION);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&relayed.origin.0.to_be_bytes());
    out.push(relayed.layer.index() as u8);
    out.push(flags);
    out.push(*p.pt);
    out.extend_from_slice(&p.seq.to_be_bytes());
    out.extend_from_slice(&p.rtp_time.to_be_bytes());
    out.extend_from_slice(&p.media_time.to_be_bytes());
    put_mid(out, &relayed.mid);
    if let Some(level) = p.audio_level {
        out.push(level as u8);
    }
    if let Some(o) = p.video_orientation {
        out.push(o as u8);
    }
    out.extend_from_slice(&p.payload);
}

/// Reads a packet datagram that arrived at `arrival`: its channel and the packet.
pub fn decode_packet(datagram: &[u8], arrival: Instant) -> Result<(u32, RelayedPacket), WireError> {
    let mut r = Reader(datagram);
    match r.u8()? {
        PACKET_VERSION => {}
        other => return Err(WireError::UnknownType(other)),
    }
    let channel = r.u32()?;
    let origin = ParticipantId(r.u64()?);
    let layer = layer(r.u8()?)?;
    let flags = r.u8()?;
    if flags & !KNOWN_FLAGS != 0 || (flags & FLAG_VOICE_ACTIVE != 0 && flags & FLAG_VOICE == 0) {
        return Err(WireError::BadFlags(flags));
    }
    let pt = Pt::from(r.u8()?);
    let seq = r.u64()?;
    let rtp_time = r.u32()?;
    let media_time = r.u64()?;
    let mid = r.mid()?;
    let audio_level = match flags & FLAG_AUDIO_LEVEL {
        0 => None,
        _ => Some(r.u8()? as i8),
    };
    let voice_activity = (flags & FLAG_VOICE != 0).then_some(flags & FLAG_VOICE_ACTIVE != 0);
    let video_orientation = match flags & FLAG_ORIENTATION {
        0 => None,
        _ => match r.u8()? {
            o @ 0..=3 => Some(VideoOrientation::from(o)),
            _ => return Err(WireError::BadFlags(flags)),
        },
    };
    let payload: Arc<[u8]> = Arc::from(r.0);
    let packet = MediaPacket {
        seq,
        rtp_time,
        media_time,
        arrival,
        pt,
        marker: flags & FLAG_MARKER != 0,
        // As it came from the browser: a 12-byte header and its payload.
        size: payload.len() + 12,
        payload,
        audio_level,
        voice_activity,
        video_orientation,
    };
    let relayed = RelayedPacket {
        origin,
        mid,
        layer,
        packet,
    };
    Ok((channel, relayed))
}

/// At most `max` bytes of `text`, cut at a character boundary: a cut
/// character would make the whole message unreadable to the far node.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn put_mid(out: &mut Vec<u8>, mid: &Mid) {
    let bytes = mid.as_bytes();
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// A peer's or a consent's text: at most [`MAX_PEER_INFO`] bytes, cut at a
/// character boundary, after its length.
fn put_info(out: &mut Vec<u8>, info: &str) {
    let info = prefix(info, MAX_PEER_INFO).as_bytes();
    out.extend_from_slice(&(info.len() as u16).to_be_bytes());
    out.extend_from_slice(info);
}

fn layer(n: u8) -> Result<Layer, WireError> {
    Layer::ALL
        .get(n as usize)
        .copied()
        .ok_or(WireError::BadLayer(n))
}

/// Reads fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Text written by [`put_info`].
    fn info(&mut self) -> Result<Arc<str>, WireError> {
        let len = self.u16()? as usize;
        if len > MAX_PEER_INFO {
            return Err(WireError::Oversized(len));
        }
        let info = std::str::from_utf8(self.take(len)?).map_err(|_| WireError::BadPeer)?;
        Ok(info.into())
    }

    /// A mid as str0m keeps one: 1 to 16 ASCII letters, digits or `_`.
    /// Built without allocating: it is read for every packet.
    fn mid(&mut self) -> Result<Mid, WireError> {
        let len = self.u8()? as usize;
        if len == 0 || len > 16 {
            return Err(WireError::BadMid);
        }
        let bytes = self.take(len)?;
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(WireError::BadMid);
        }
        let mut array = [b' '; 16];
        array[..len].copy_from_slice(bytes);
        Ok(Mid::from_array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> RelayedPacket {
        RelayedPacket {
            origin: ParticipantId(7_000_001),
            mid: Mid::from("1"),
            layer: Layer::HALF,
            packet: MediaPacket {
                seq: 70_000,
                rtp_time: 3_000_000,
                media_time: 4_297_967_296,
                arrival: Instant::now(),
                pt: Pt::from(96),
                marker: true,
                size: 1012,
                payload: Arc::from(&[0x10, 0x00, 0x9d, 0x01, 0x2a][..]),
                audio_level: Some(-30),
                voice_activity: Some(true),
                video_orientation: Some(VideoOrientation::Deg90),
            },
        }
    }

    #[test]
    fn a_packet_comes_back_as_it_was_sent() {
        let sent = packet();
        let mut out = Vec::new();
        encode_packet(9, &sent, &mut out);
        let (channel, got) = decode_packet(&out, Instant::now()).expect("decodes");
        assert_eq!(channel, 9);
        assert_eq!(
            (got.origin, got.mid, got.layer),
            (sent.origin, sent.mid, sent.layer)
        );
        let (a, b) = (&got.packet, &sent.packet);
        assert_eq!(
            (a.seq, a.rtp_time, a.media_time),
            (b.seq, b.rtp_time, b.media_time)
        );
        assert_eq!((a.pt, a.marker, &a.payload), (b.pt, b.marker, &b.payload));
        assert_eq!(
            (a.audio_level, a.voice_activity, a.video_orientation),
            (b.audio_level, b.voice_activity, b.video_orientation)
        );
    }

    #[test]
    fn every_control_message_comes_back_as_it_was_sent() {
        let (origin, mid) = (ParticipantId(3), Mid::from("0"));
        let messages = [
            LinkMessage::Open {
                channel: 1,
                room: RoomId("ward-7-bed-3".into()),
            },
            LinkMessage::Close { channel: 1 },
            LinkMessage::Room {
                channel: 2,
                control: Control::Published {
                    origin,
                    mid,
                    kind: MediaKind::Video,
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Left { origin },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Want {
                    origin,
                    mid,
                    ceiling: None,
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Want {
                    origin,
                    mid,
                    ceiling: Some(Layer::FULL),
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Peer {
                    origin,
                    info: r#"{"name":"Dr Hub","role":"clinician"}"#.into(),
                },
            },
            LinkMessage::Room {
                channel: u32::MAX,
                control: Control::Keyframe {
                    origin,
                    mid,
                    layer: Layer::QUARTER,
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Recording {
                    origin,
                    since: Some(1_796_000_000),
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Recording {
                    origin,
                    since: None,
                },
            },
            LinkMessage::Room {
                channel: 2,
                control: Control::Consent {
                    origin,
                    at: 1_796_000_000,
                    info: r#"{"given":true,"by":"resident","how":"verbal"}"#.into(),
                },
            },
        ];
        for m in messages {
            let mut out = Vec::new();
            encode_message(&m, &mut out);
            let len = message_len([out[0], out[1]]).expect("within the limit");
            assert_eq!(len, out.len() - 2, "{m:?}");
            assert_eq!(decode_message(&out[2..]), Ok(m));
        }
    }

    #[test]
    fn a_long_description_is_cut_between_characters_and_still_reads() {
        let info: std::sync::Arc<str> = "é".repeat(MAX_PEER_INFO).into();
        let m = LinkMessage::Room {
            channel: 1,
            control: Control::Peer {
                origin: ParticipantId(1),
                info,
            },
        };
        let mut out = Vec::new();
        encode_message(&m, &mut out);
        let Ok(LinkMessage::Room {
            control: Control::Peer { info, .. },
            ..
        }) = decode_message(&out[2..])
        else {
            panic!("a cut description did not read");
        };
        assert_eq!(info.chars().count(), MAX_PEER_INFO / 2);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(decode_message(&[]), Err(WireError::Truncated));
        assert_eq!(
            decode_message(&[10, 0, 0, 0, 1]),
            Err(WireError::UnknownType(10))
        );
        assert_eq!(
            decode_message(&[2, 0, 0, 0, 1, 0]),
            Err(WireError::Trailing)
        );
        // A recording neither on (1) nor off (0).
        let mut odd_recording = vec![8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 2];
        odd_recording.extend_from_slice(&[0; 8]);
        assert_eq!(decode_message(&odd_recording), Err(WireError::BadRecording));
        // Stopped, with a time: bytes that would not encode back the same
        // (found by the fuzz target).
        odd_recording[13] = 0;
        odd_recording[20] = 1;
        assert_eq!(decode_message(&odd_recording), Err(WireError::BadRecording));
        assert_eq!(message_len([0xff, 0xff]), Err(WireError::Oversized(65_535)));
        let mut out = Vec::new();
        encode_packet(1, &packet(), &mut out);
        for cut in 0..PACKET_HEADER {
            assert!(
                decode_packet(&out[..cut], Instant::now()).is_err(),
                "cut at {cut}"
            );
        }
        // A mid str0m could not keep as sent (found by the fuzz target).
        let mut odd = out.clone();
        odd[PACKET_HEADER] = 1;
        odd[PACKET_HEADER - 1 + 2] = 0x01;
        assert_eq!(
            decode_packet(&odd, Instant::now()).err(),
            Some(WireError::BadMid)
        );
        out[13] = 7;
        assert_eq!(
            decode_packet(&out, Instant::now()).err(),
            Some(WireError::BadLayer(7))
        );
        out[0] = 2;
        assert_eq!(
            decode_packet(&out, Instant::now()).err(),
            Some(WireError::UnknownType(2))
        );
    }

    /// Whatever decodes is exactly what its encoding gives back: nothing
    /// is silently dropped or read loosely.
    #[test]
    fn random_bytes_are_refused_or_read_exactly() {
        // A fixed xorshift stream: repeatable, and cheap enough for a unit test.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut decoded = 0;
        for i in 0..200_000 {
            let len = (next() % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half start as a real message or packet would, to reach past the type byte.
            if i % 2 == 0 && len > 1 {
                bytes[0] = (next() % 8) as u8;
                bytes[1..len.min(4)].fill(0);
            }
            if let Ok(m) = decode_message(&bytes) {
                let mut out = Vec::new();
                encode_message(&m, &mut out);
                assert_eq!(out[2..], bytes[..], "{m:?}");
                decoded += 1;
            }
            if let Ok((channel, p)) = decode_packet(&bytes, Instant::now()) {
                let mut out = Vec::new();
                encode_packet(channel, &p, &mut out);
                assert_eq!(out, bytes);
                decoded += 1;
            }
        }
        assert!(
            decoded > 100,
            "only {decoded} decoded: the test reaches too little"
        );
    }
}
