//! Decisions about one forwarded stream, as pure state: no WebRTC session, no
//! socket, so each rule is a unit test.

mod dynacast;
mod layer;
mod picture;
mod rewrite;

pub use dynacast::{PublishLimit, DOWN_HOLD};
pub use layer::{
    allocate, held_back, Demand, Layer, LayerSelector, LAYER_COUNT, UP_HEADROOM, UP_HOLD,
};
pub use picture::{patch as vp8_patch, vp8_picture_numbers, PictureNumbers, PictureRewriter};
pub use rewrite::StreamRewriter;
