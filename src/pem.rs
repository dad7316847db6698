//! Certificates for the hub's TLS listeners (HTTPS and TURN over TLS): read
//! from PEM files, or generated self-signed for development.

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its key.
pub type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads a chain and key from PEM files; `what` names them in errors
/// ("HTTPS", "TURN").
pub fn read(cert: &Path, key: &Path, what: &str) -> anyhow::Result<Pair> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the {what} certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the {what} key {}", key.display()))?;
    Ok((chain, key))
}

/// A self-signed certificate, for development and tests.
pub struct SelfSigned {
    /// The certificate (one, no chain) and its key.
    pub pair: Pair,
    /// base64 SHA-256 of its public key, for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub spki: String,
    /// The certificate as PEM, to add to a test machine's trust store.
    pub pem: String,
}

/// Generates a self-signed certificate for `hosts` (names or addresses).
pub fn self_signed(hosts: Vec<String>, what: &str) -> anyhow::Result<SelfSigned> {
    let generated = rcgen::generate_simple_self_signed(hosts)
        .with_context(|| format!("generating a self-signed {what} certificate"))?;
    let spki = ring::digest::digest(
        &ring::digest::SHA256,
        &rcgen::PublicKeyData::subject_public_key_info(&generated.signing_key),
    );
    use base64::Engine;
    let spki = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("self-signed {what} key: {e}"))?;
    Ok(SelfSigned {
        pair: (vec![generated.cert.der().clone()], key),
        spki,
        pem: generated.cert.pem(),
    })
}
