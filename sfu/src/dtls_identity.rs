//! The DTLS certificate the SFU presents to every browser.
//!
//! A key pair and self-signed certificate cost about a millisecond of a media
//! worker's time. Made afresh for each session, a burst of joins, or a
//! stranger's offers on the check page, holds up every call on that worker.
//! Browsers check the certificate only against the fingerprint in our answer,
//! so one certificate serves every session of the process (as in mediasoup
//! and Janus); it is replaced daily, well inside its year of validity.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use str0m::crypto::dtls::DtlsCert;

/// How long one certificate is handed out before a new one is made.
const RENEW_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The current certificate and when it was made.
static CURRENT: Mutex<Option<(Instant, DtlsCert)>> = Mutex::new(None);

/// The certificate for a session starting at `now`: the process's current
/// one, made (or renewed) here when there is none or it is a day old.
/// `None` only if the crypto provider cannot make certificates, in which
/// case the session makes its own.
pub(crate) fn dtls_cert(now: Instant) -> Option<DtlsCert> {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((made, cert)) = current.as_ref() {
        if now.saturating_duration_since(*made) < RENEW_AFTER {
            return Some(cert.clone());
        }
    }
    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()?;
    *current = Some((now, cert.clone()));
    Some(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_certificate_is_shared_for_a_day_then_renewed() {
        let t0 = Instant::now();
        let first = dtls_cert(t0).expect("the provider makes certificates");
        let later = dtls_cert(t0 + Duration::from_secs(3600)).unwrap();
        assert_eq!(first.certificate, later.certificate);
        let next_day = dtls_cert(t0 + RENEW_AFTER + Duration::from_secs(1)).unwrap();
        assert_ne!(first.certificate, next_day.certificate);
    }
}
