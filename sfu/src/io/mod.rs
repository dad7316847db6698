//! The edge: sockets, threads and the clock. Everything else in the crate is
//! sans-IO and is driven from here.

mod addrs;
mod bind;
mod link_queue;
mod relay;
mod server;
pub(crate) mod tcp;
pub(crate) mod udp;
mod worker;

pub use addrs::default_announce_addrs;
pub use relay::{RelayCounts, RelaySettings};
pub use server::{MediaConfig, MediaServer};
