//! carecall's media plane: a selective forwarding unit.
//!
//! Every participant publishes audio and video to the SFU and receives every
//! other participant's tracks from it, as RTP packets forwarded without
//! re-encoding over DTLS-SRTP. The WebRTC protocol work is done by `str0m`,
//! a sans-IO stack: [`Room`] is a plain struct fed with datagrams and time and
//! polled for datagrams to send, so forwarding rules are tested without sockets.
//! The sockets, threads and clock live in one place, the media workers behind
//! [`MediaServer`].
//!
//! This crate has no HTTP and no database: signalling drives it through
//! [`MediaServer`]'s commands and hears back through [`MediaSignal`]s.

#![warn(missing_docs)]

mod bandwidth;
pub mod cascade;
mod codec;
#[cfg(feature = "sim")]
pub mod counting_alloc;
mod downlink_test;
mod dtls_identity;
mod echo;
mod error;
pub mod forward;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod id;
mod io;
mod keyframe;
mod live;
mod packet;
mod participant;
pub mod recording;
mod refusals;
mod room;
mod rooms;
mod sdp_limits;
mod signal;
#[cfg(feature = "sim")]
pub mod sim;
mod stats;
mod tiles;
mod track;
pub mod turn;

pub use bandwidth::AdaptationStats;
pub use codec::{h264_keyframe_start, red_primary, vp8_keyframe_start};
pub use downlink_test::DownlinkPlan;
pub use echo::{ECHO_LABEL, MAX_ECHOES_PER_SECOND};
pub use error::SfuError;
pub use id::{ParticipantId, RoomId};
pub use io::{default_announce_addrs, MediaConfig, MediaServer, RelayCounts, RelaySettings};
pub use keyframe::{KeyframeThrottle, MIN_KEYFRAME_INTERVAL};
pub use live::Live;
pub use refusals::{Refusals, Surface};
pub use room::{new_session, Room};
pub use sdp_limits::SdpLimits;
pub use signal::MediaSignal;
pub use stats::{ParticipantStats, ReceivedVideo, VIDEO_START_UP};
pub use tiles::TileSizes;
