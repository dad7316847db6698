//! Decisions about one forwarded stream, as pure state: no WebRTC session, no
//! socket, so each rule is a unit test.

mod rewrite;

pub use rewrite::SeqRewriter;
