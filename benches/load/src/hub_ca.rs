//! A hub's own CA for a run of several nodes, and each node's relay
//! certificate signed by it (see `docs/scaling.md`): the settings a
//! `carecall serve` needs to link its relay to the others'. Used by the
//! `span` scenario and the tests that start nodes.

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The CA, and a directory its node certificates and keys are written to.
pub struct HubCa {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl HubCa {
    /// A fresh CA, its certificate written as `hub-ca.pem`.
    pub fn new() -> Result<HubCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let dir = tempfile::tempdir().context("a directory for the relays' certificates")?;
        std::fs::write(dir.path().join("hub-ca.pem"), ca.pem())?;
        Ok(HubCa { ca, dir })
    }

    /// A node named `name` with a relay on a free loopback port: its
    /// certificate and key written, and the settings (`CARECALL_RELAY_*`)
    /// that use them. Nodes read the files at start; the CA must live until
    /// then.
    pub fn node_env(&self, name: &str) -> Result<Vec<(&'static str, String)>> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![name.to_owned()])?.signed_by(&key, &self.ca)?;
        let path = |file: &str| self.dir.path().join(file);
        std::fs::write(path(&format!("{name}-cert.pem")), cert.pem())?;
        std::fs::write(path(&format!("{name}-key.pem")), key.serialize_pem())?;
        let shown = |file: &str| path(file).display().to_string();
        Ok(vec![
            ("CARECALL_RELAY_ADDR", "127.0.0.1:0".to_owned()),
            ("CARECALL_RELAY_NAME", name.to_owned()),
            ("CARECALL_RELAY_CERT", shown(&format!("{name}-cert.pem"))),
            ("CARECALL_RELAY_KEY", shown(&format!("{name}-key.pem"))),
            ("CARECALL_RELAY_HUB_CA", shown("hub-ca.pem")),
        ])
    }
}
