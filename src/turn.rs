//! Wiring TURN: the embedded server (or an external one's URLs) and the
//! credentials signalling hands to browsers.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carecall_sfu::turn::{start_turn, RelayBook, TurnConfig, TurnSecret};
use carecall_sfu::MediaServer;
use carecall_signalling::TurnOffer;

use crate::certs::CertStore;
use crate::config::Config;

/// How long TURN credentials last: longer than any consultation, so an ICE
/// restart late in a call still authenticates.
pub(crate) const CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The realm in TURN credentials.
const REALM: &str = "carecall";

/// What TURN offers browsers (the banner prints it).
pub struct TurnSetup {
    pub offer: TurnOffer,
    /// Set when the certificate was generated: how to trust it.
    pub self_signed_spki: Option<String>,
    /// The TURN-over-TLS certificate, when the embedded server runs.
    pub certs: Option<Arc<CertStore>>,
}

/// Starts the embedded TURN server (unless external URLs are configured).
/// `None` when TURN is off. A reload may change `limits`.
pub fn start(
    config: &Config,
    media: &MediaServer,
    book: RelayBook,
    limits: carecall_sfu::Live<carecall_sfu::turn::TurnLimits>,
    refusals: carecall_sfu::Refusals,
    failures: carecall_sfu::turn::TurnFailures,
) -> anyhow::Result<Option<TurnSetup>> {
    let t = &config.turn;
    if !t.enabled && t.urls.is_empty() {
        return Ok(None);
    }
    let secret = TurnSecret::new(&crate::secret::turn_secret(
        t.secret.as_deref(),
        &config.data_dir,
    )?);
    if !t.urls.is_empty() {
        let offer = TurnOffer {
            urls: t.urls.clone(),
            secret,
            ttl: CREDENTIAL_TTL,
        };
        return Ok(Some(TurnSetup {
            offer,
            self_signed_spki: None,
            certs: None,
        }));
    }
    let peers = media.local_addrs();
    let listen_ip = peers
        .first()
        .map(SocketAddr::ip)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let host = match &t.host {
        Some(h) => h.clone(),
        None => url_host(&config.base_url()).unwrap_or_else(|| listen_ip.to_string()),
    };
    let (certs, spki) = tls_certs(&host, t.cert.as_deref(), t.key.as_deref())?;
    let tls = certs.server_config()?;
    let bind_ip = if is_local(listen_ip) {
        listen_ip
    } else {
        IpAddr::from([0, 0, 0, 0])
    };
    // A port already taken (another TURN server on the machine) must not
    // stop calls on ordinary networks: the hub runs without TURN and says so.
    let started = start_turn(TurnConfig {
        udp: Some(SocketAddr::new(bind_ip, t.port)),
        tcp: Some(SocketAddr::new(bind_ip, t.port)),
        tls: Some((SocketAddr::new(bind_ip, t.tls_port), tls)),
        relay_ip: listen_ip,
        realm: REALM.into(),
        secret: secret.clone(),
        peers,
        book,
        limits,
        refusals,
        failures,
    });
    let listening = match started {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                error = %e,
                "TURN server not started: browsers on networks that block UDP cannot connect"
            );
            return Ok(None);
        }
    };
    let hostport = |port: Option<SocketAddr>| {
        let port = port.map_or(0, |a| a.port());
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    let urls = vec![
        format!("turn:{}?transport=udp", hostport(listening.udp)),
        format!("turn:{}?transport=tcp", hostport(listening.tcp)),
        format!("turns:{}?transport=tcp", hostport(listening.tls)),
    ];
    Ok(Some(TurnSetup {
        offer: TurnOffer {
            urls,
            secret,
            ttl: CREDENTIAL_TTL,
        },
        self_signed_spki: spki,
        certs: Some(certs),
    }))
}

/// Whether `ip` is one of this machine's addresses (else it is a NAT's).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// The host of an `http(s)://host[:port]/…` URL.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The certificate for TURN over TLS: the configured files (reloaded when
/// they change), or a self-signed one for `host` with its SPKI hash (base64
/// SHA-256, for Chromium's `--ignore-certificate-errors-spki-list`).
fn tls_certs(
    host: &str,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<(Arc<CertStore>, Option<String>)> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok((CertStore::from_files(cert, key, "TURN")?, None)),
        (None, None) => {
            let dev = crate::pem::self_signed(vec![host.to_owned()], "TURN")?;
            Ok((CertStore::fixed(dev.pair, "TURN")?, Some(dev.spki)))
        }
        _ => anyhow::bail!("turn.cert and turn.key go together: set both or neither"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_public_url() {
        assert_eq!(
            url_host("https://carecall.hub.example/x").as_deref(),
            Some("carecall.hub.example")
        );
        assert_eq!(
            url_host("http://10.0.0.5:8080").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            url_host("http://[2001:db8::1]:80").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(url_host("nonsense"), None);
    }
}
