//! Who the client is, for per-client limits: the connection's address,
//! unless it is a reverse proxy the hub trusts, which names the client in
//! `X-Forwarded-For`. Behind the documented nginx every connection comes
//! from 127.0.0.1: without this, all care homes and staff would share one
//! limit, and one stranger could use it up for all of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpAddr]>);

impl TrustedProxies {
    /// Trusts `proxies` (none: every connection is its own client).
    pub fn new(proxies: Vec<IpAddr>) -> Self {
        TrustedProxies(proxies.into())
    }

    /// The client behind a connection from `peer` with `headers`: `peer`
    /// itself, or, when `peer` is a trusted proxy, the right-most address in
    /// `X-Forwarded-For` that is not one too (left of it, a client can write
    /// anything). `None` when there is no connection (a test calling the
    /// router directly).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|a| a.trim().parse::<IpAddr>().map(canonical))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !self.trusts(*ip))
                .unwrap_or(peer),
        )
    }

    /// The client of a request being extracted.
    pub fn client_of(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        self.client(peer, &parts.headers)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

/// IPv4 addresses seen as IPv4-mapped IPv6 count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static(v));
        h
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let none = TrustedProxies::default();
        let h = forwarded("203.0.113.9");
        assert_eq!(
            none.client(Some(ip("127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
        let nginx = TrustedProxies::new(vec![ip("127.0.0.1")]);
        assert_eq!(
            nginx.client(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.9"))
        );
        // A stranger's own header is not believed.
        assert_eq!(
            nginx.client(Some(ip("198.51.100.4")), &h),
            Some(ip("198.51.100.4"))
        );
        // The client's forged entries are left of the proxy's.
        let h = forwarded("10.9.9.9, 203.0.113.9");
        assert_eq!(
            nginx.client(Some(ip("127.0.0.1")), &h),
            Some(ip("203.0.113.9"))
        );
        // Nothing usable: the proxy itself.
        let h = forwarded("not an address");
        assert_eq!(
            nginx.client(Some(ip("127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            none.client(Some(ip("::ffff:192.0.2.1")), &HeaderMap::new()),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(none.client(None, &h), None);
    }
}
