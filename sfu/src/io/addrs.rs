//! Which addresses the SFU announces as ICE host candidates by default.

use std::net::IpAddr;

/// The machine's own interface addresses, so a browser on another machine (or in
/// a network namespace) can reach the SFU without configuration. Loopback comes
/// last: it only helps a browser on this machine. IPv6 link-local addresses are
/// left out (they need a scope id that browsers cannot use).
pub fn default_announce_addrs() -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    addrs.retain(|ip| match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    });
    addrs.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
    addrs.dedup();
    if addrs.is_empty() {
        addrs.push(IpAddr::from([127, 0, 0, 1]));
    }
    addrs
}
