//! A published RTP packet as the room hands it on: the fields forwarding,
//! recording and the relay between nodes read, and nothing else.
//!
//! str0m's own `RtpPacket` cannot be built outside str0m, and a packet that
//! arrives from another node over the relay has no str0m session behind it.
//! Both kinds of packet become a [`MediaPacket`], so subscribers forward
//! them the same way. Building one from str0m's packet moves its payload;
//! nothing is copied or allocated.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::{RtpPacket, VideoOrientation};

/// One RTP packet of a published track.
#[derive(Debug, Clone)]
pub(crate) struct MediaPacket {
    /// Extended sequence number (no wrap-around).
    pub seq: u64,
    /// The RTP header's timestamp.
    pub rtp_time: u32,
    /// Extended RTP time in the codec's clock (no wrap-around).
    pub media_time: u64,
    /// When it reached this node.
    pub arrival: Instant,
    /// Its payload type, as the publisher's browser numbered it.
    pub pt: Pt,
    pub marker: bool,
    /// Header and payload bytes as received, for the bitrate meters.
    pub size: usize,
    pub payload: Arc<[u8]>,
    /// Header extensions passed on to subscribers.
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    pub video_orientation: Option<VideoOrientation>,
}

impl From<RtpPacket> for MediaPacket {
    fn from(p: RtpPacket) -> Self {
        MediaPacket {
            seq: *p.seq_no,
            rtp_time: p.header.timestamp,
            media_time: p.time.numer(),
            arrival: p.timestamp,
            pt: p.header.payload_type,
            marker: p.header.marker,
            size: p.payload.len() + p.header.header_len,
            audio_level: p.header.ext_vals.audio_level,
            voice_activity: p.header.ext_vals.voice_activity,
            video_orientation: p.header.ext_vals.video_orientation,
            payload: p.payload,
        }
    }
}
