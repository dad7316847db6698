//! The certificates of the hub's TLS listeners (HTTPS, TURN over TLS): from
//! PEM files in config, reloaded when they change on disk or on SIGHUP (a
//! renewed certificate needs no restart: new connections get it, open ones
//! keep theirs); or, for development, a self-signed one made at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Hands every new TLS connection the current certificate.
#[derive(Debug)]
pub struct CertStore {
    /// Which listener it serves ("HTTPS", "TURN"), for logs and errors.
    what: &'static str,
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<(PathBuf, PathBuf)>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .context("the certificate and key do not fit together")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// When the leaf certificate `der` stops being valid.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = cert.validity().not_after.timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

impl CertStore {
    /// The certificate in `cert` and `key` (PEM) for the `what` listener,
    /// watched for changes (see [`CertStore::watch`]).
    pub fn from_files(cert: &Path, key: &Path, what: &'static str) -> anyhow::Result<Arc<Self>> {
        let (chain, k) = crate::pem::read(cert, key, what)?;
        Ok(Arc::new(CertStore {
            what,
            current: RwLock::new(Arc::new(certified(chain, k)?)),
            files: Some((cert.to_owned(), key.to_owned())),
        }))
    }

    /// A certificate made in memory (self-signed), never reloaded.
    pub fn fixed(pair: crate::pem::Pair, what: &'static str) -> anyhow::Result<Arc<Self>> {
        let (chain, key) = pair;
        Ok(Arc::new(CertStore {
            what,
            current: RwLock::new(Arc::new(certified(chain, key)?)),
            files: None,
        }))
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the certificate served now expires.
    pub fn expires(&self) -> Option<SystemTime> {
        self.current().cert.first().and_then(|c| not_after(c))
    }

    /// A TLS server configuration that always serves the current certificate.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }

    /// Reloads from the files: on a change seen every [`WATCH_EVERY`], and
    /// on SIGHUP. A file that does not load (half-written, a key that does
    /// not fit) is logged and the current certificate kept.
    pub async fn watch(self: Arc<Self>) {
        let Some((cert, key)) = self.files.clone() else {
            return;
        };
        let mut seen = (modified(&cert), modified(&key));
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        loop {
            let asked = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let now = (modified(&cert), modified(&key));
            if !asked && now == seen {
                continue;
            }
            seen = now;
            let what = self.what;
            match crate::pem::read(&cert, &key, what).and_then(|(c, k)| certified(c, k)) {
                Ok(fresh) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                    let days_left = self
                        .expires()
                        .and_then(|t| t.duration_since(SystemTime::now()).ok())
                        .map(|d| d.as_secs() / 86_400);
                    tracing::info!(what, cert = %cert.display(), on_sighup = asked, days_left, "certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(what, error = %format!("{e:#}"), "certificate not reloaded; the current one stays")
                }
            }
        }
    }
}

impl carecall_admin::ServedCertificate for CertStore {
    fn listener(&self) -> &'static str {
        match self.what {
            "HTTPS" => "https",
            _ => "turn",
        }
    }

    fn expires(&self) -> Option<SystemTime> {
        CertStore::expires(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_read_from_the_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["hub.example".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let expires = not_after(cert.der()).expect("a validity");
        // 2031-03-04T00:00:00Z
        assert_eq!(expires, UNIX_EPOCH + Duration::from_secs(1_930_348_800));
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
