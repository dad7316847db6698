//! Decisions about one forwarded stream, as pure state: no WebRTC session, no
//! socket, so each rule is a unit test.

mod dynacast;
mod layer;
mod picture;
mod resend;
mod rewrite;

pub use dynacast::{PublishLimit, DOWN_HOLD};
pub use layer::{
    allocate, held_back, Demand, Layer, LayerSelector, LAYER_COUNT, UP_HEADROOM, UP_HOLD,
};
pub use picture::{patch as vp8_patch, vp8_picture_numbers, PictureNumbers, PictureRewriter};
pub use resend::{resend_window, RESEND_PACKETS, RESEND_RATIO_CAP, SHORTEST_WINDOW};
pub use rewrite::StreamRewriter;
