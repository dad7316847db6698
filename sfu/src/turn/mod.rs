//! The embedded TURN server (RFC 8656) for care homes whose networks block
//! UDP or everything but TCP 443: TURN over UDP, TCP and TLS, credentials
//! from a shared secret (the TURN REST API scheme, so an external coturn can
//! take its place), relaying only to the SFU's own media addresses.

mod book;
mod credentials;
pub(crate) mod edge;
mod failures;
mod server;
mod stun;

pub use book::RelayBook;
pub use credentials::{TurnCredentials, TurnSecret};
pub use edge::{start_turn, TurnAddrs, TurnConfig};
pub use failures::{TurnFailure, TurnFailures};
pub use server::{Client, ClientAction, Transport, TurnLimits, TurnServer, MAX_ALLOCATIONS};
