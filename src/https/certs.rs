//! The HTTPS certificate: from PEM files in config, reloaded when they change
//! on disk or on SIGHUP (a renewed certificate needs no restart: new
//! connections get it, open ones keep theirs); or, for development, a
//! self-signed one made at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Hands every new TLS connection the current certificate.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<(PathBuf, PathBuf)>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
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

fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let (chain, key) = crate::pem::read(cert, key, "HTTPS")?;
    certified(chain, key)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A self-signed development certificate, and what to tell people about it.
pub struct SelfSigned {
    /// base64 SHA-256 of its key, for Chromium's `--ignore-certificate-errors-spki-list`.
    pub spki: String,
    /// Where its PEM was written, to add to a trust store.
    pub pem: PathBuf,
}

impl CertStore {
    /// The certificate in `cert` and `key` (PEM), watched for changes.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertStore>> {
        let current = load(cert, key)?;
        Ok(Arc::new(CertStore {
            current: RwLock::new(Arc::new(current)),
            files: Some((cert.to_owned(), key.to_owned())),
        }))
    }

    /// A new self-signed certificate for `hosts`; its PEM is written to `dir`.
    pub fn self_signed(
        hosts: Vec<String>,
        dir: &Path,
    ) -> anyhow::Result<(Arc<CertStore>, SelfSigned)> {
        let dev = crate::pem::self_signed(hosts, "HTTPS")?;
        let pem = dir.join("https-dev-cert.pem");
        std::fs::write(&pem, &dev.pem).with_context(|| format!("writing {}", pem.display()))?;
        let (chain, key) = dev.pair;
        let current = certified(chain, key)?;
        let store = Arc::new(CertStore {
            current: RwLock::new(Arc::new(current)),
            files: None,
        });
        Ok((
            store,
            SelfSigned {
                spki: dev.spki,
                pem,
            },
        ))
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
            match load(&cert, &key) {
                Ok(fresh) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                    tracing::info!(cert = %cert.display(), on_sighup = asked, "HTTPS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "HTTPS certificate not reloaded; the current one stays")
                }
            }
        }
    }
}
