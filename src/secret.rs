//! Secrets (the link secret, the TURN secret): from config/env if given,
//! otherwise generated once into the data directory, readable only by the
//! service's user.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use ring::rand::{SecureRandom, SystemRandom};

/// The link-signing secret.
pub fn link_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    stored_secret("link secret", "link-secret", configured, data_dir)
}

/// The secret TURN credentials are made with.
pub fn turn_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    stored_secret("TURN secret", "turn-secret", configured, data_dir)
}

/// The secret recordings are sealed with.
pub fn recording_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    stored_secret("recording secret", "recording-secret", configured, data_dir)
}

/// This node's name among a hub's nodes: made once into the data
/// directory, so it stays the same across restarts (its claims on hook
/// deliveries are its own to release when it starts again).
pub fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let hex = stored_secret("node id", "node-id", None, data_dir)?;
    Ok(String::from_utf8_lossy(&hex[..16]).into_owned())
}

/// Returns the secret bytes, creating the data directory and secret file if needed.
fn stored_secret(
    what: &str,
    file: &str,
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        if s.len() < 32 {
            bail!("the configured {what} is too short: use at least 32 characters");
        }
        return Ok(s.as_bytes().to_vec());
    }
    make_data_dir(data_dir)?;
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(hex) => {
            let hex = hex.trim();
            if hex.len() < 64 {
                bail!(
                    "{} is shorter than 32 bytes: delete it to generate a new one",
                    path.display()
                );
            }
            Ok(hex.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(f, "{hex}").with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new {what}");
            Ok(hex.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Creates the data directory if needed and makes it the hub user's alone
/// (0700), whatever the umask: it holds secrets, the database and
/// recordings.
pub(crate) fn make_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    if let Err(e) = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %data_dir.display(), error = %e, "data directory permissions not set to 0700");
    }
    Ok(())
}
