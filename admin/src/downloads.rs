//! Time-limited download links for finished recordings, as put in the
//! `recording.ready` event: the integration engine fetches the file with the
//! link alone (no admin session), until it expires.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// Makes and checks recording download links.
#[derive(Clone, Debug)]
pub struct DownloadLinks {
    base_url: String,
    key: hmac::Key,
    ttl: Duration,
}

impl DownloadLinks {
    /// Links under `base_url`, signed with a key derived from `secret`
    /// (the link secret; derived so a join link's signature is never a
    /// download's), valid for `ttl`.
    pub fn new(base_url: &str, secret: &[u8], ttl: Duration) -> Self {
        DownloadLinks {
            base_url: base_url.trim_end_matches('/').to_owned(),
            key: crate::derived_key(secret, b"carecall recording downloads"),
            ttl,
        }
    }

    fn message(id: &str, expires: u64) -> String {
        format!("{id}\n{expires}")
    }

    /// The link for recording `id`, made at `now` (Unix seconds), and when it expires.
    pub fn link(&self, id: &str, now: u64) -> (String, u64) {
        let expires = now + self.ttl.as_secs();
        let sig = hmac::sign(&self.key, Self::message(id, expires).as_bytes());
        let url = format!(
            "{}/recordings/{id}/download?expires={expires}&sig={}",
            self.base_url,
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        );
        (url, expires)
    }

    /// Whether `sig` is this hub's signature for `id` until `expires`, and
    /// that time has not passed at `now`.
    pub fn verify(&self, id: &str, expires: u64, sig: &str, now: u64) -> Result<(), &'static str> {
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "the link's signature is unreadable")?;
        hmac::verify(&self.key, Self::message(id, expires).as_bytes(), &sig)
            .map_err(|_| "the link is not valid for this recording")?;
        if now > expires {
            return Err("the link has expired; ask the hub for a new one");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_for_its_recording_until_it_expires() {
        let links = DownloadLinks::new(
            "https://hub.example/",
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
        );
        let (url, expires) = links.link("abc", 1000);
        assert!(url.starts_with("https://hub.example/recordings/abc/download?expires=1060&sig="));
        let sig = url.rsplit("sig=").next().unwrap();
        assert_eq!(links.verify("abc", expires, sig, 1059), Ok(()));
        assert!(links.verify("abc", expires, sig, 1061).is_err());
        assert!(links.verify("abd", expires, sig, 1000).is_err());
        assert!(links.verify("abc", expires + 1, sig, 1000).is_err());
    }
}
