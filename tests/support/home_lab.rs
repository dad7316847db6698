//! A hub and a care home on either side of an emulated link: the server on
//! the host end of a [`NetNs`] link (so the home reaches it across the link)
//! with downlink estimation on, as by default; a browser driver on the hub's
//! side and one inside the namespace, both filming the test clip. Tests then
//! narrow, cut or slow the link while real browsers call through it.

use super::browser::Driver;
use super::netlab::NetNs;
use super::{Server, ServerOptions};

/// The two sides of a home's link and the hub serving both. Field order is
/// drop order: the drivers (and their browsers' processes), then the
/// server, then the network.
pub struct HomeLab {
    /// Browsers on the hub's side: clinicians, specialists.
    pub hub: Driver,
    /// Browsers inside the home's namespace.
    pub away: Driver,
    /// The server, listening on the link's host address.
    pub server: Server,
    /// The home's link, for the test to impair.
    pub net: NetNs,
}

impl HomeLab {
    /// Creates the link, starts the server on its host end and a browser
    /// driver on each side.
    pub async fn start() -> HomeLab {
        let net = NetNs::new();
        let server = Server::start_with(ServerOptions {
            ip: net.host_ip.into(),
            estimate_bandwidth: true,
            ..ServerOptions::default()
        });
        let hub = Driver::start_trusting(&server.base_url)
            .await
            .with_camera_clip();
        let away = Driver::start_in(&net, &server.base_url)
            .await
            .with_camera_clip();
        HomeLab {
            hub,
            away,
            server,
            net,
        }
    }
}
