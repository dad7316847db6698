//! Decisions about one forwarded stream, as pure state: no WebRTC session, no
//! socket, so each rule is a unit test.

mod dynacast;
mod layer;
mod rewrite;

pub use dynacast::{PublishLimit, DOWN_HOLD};
pub use layer::{
    allocate, held_back, Demand, Layer, LayerSelector, LAYER_COUNT, UP_HEADROOM, UP_HOLD,
};
pub use rewrite::StreamRewriter;
