//! Binding one socket (UDP) or listener (TCP) per announced address, so the
//! address a packet arrived on is known without `IP_PKTINFO`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::error::SfuError;

/// Binds with `bind` on each announced address and `port`, and returns each
/// bound socket with the address browsers are told to use. An announced
/// address that is not on this machine (a NAT's public address) is served
/// by a wildcard socket. `local` reads the port actually bound (for port 0).
pub(crate) fn bind_announced<S>(
    announce: &[IpAddr],
    port: u16,
    bind: impl Fn(SocketAddr) -> io::Result<S>,
    local: impl Fn(&S) -> io::Result<SocketAddr>,
) -> Result<Vec<(S, SocketAddr)>, SfuError> {
    let mut out = Vec::new();
    for ip in announce {
        let wanted = SocketAddr::new(*ip, port);
        let err = |source| SfuError::Bind {
            addr: wanted,
            source,
        };
        let socket = match bind(wanted) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                let any: IpAddr = if ip.is_ipv4() {
                    [0, 0, 0, 0].into()
                } else {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                };
                let wildcard = SocketAddr::new(any, port);
                bind(wildcard).map_err(|source| SfuError::Bind {
                    addr: wildcard,
                    source,
                })?
            }
            Err(source) => return Err(err(source)),
        };
        let bound = local(&socket).map_err(err)?;
        out.push((socket, SocketAddr::new(*ip, bound.port())));
    }
    Ok(out)
}
