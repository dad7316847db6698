//! Time-limited download links for what the hub keeps of a call: a finished
//! recording (in `recording.ready`) or a clinical image (in `image.ready`,
//! and shown to whoever asked for it). The link alone is the permission (no
//! admin session), until it expires; a link for one thing never opens
//! another, of the same kind or not.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// What a link downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// A recording's WebM.
    Recording,
    /// A clinical image.
    Image,
}

impl Download {
    /// The path segment its links live under.
    fn path(self) -> &'static str {
        match self {
            Download::Recording => "recordings",
            Download::Image => "images",
        }
    }

    /// What is signed: recordings keep the form their links always had.
    fn message(self, id: &str, expires: u64) -> String {
        match self {
            Download::Recording => format!("{id}\n{expires}"),
            Download::Image => format!("image\n{id}\n{expires}"),
        }
    }
}

/// Makes and checks download links.
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
            key: crate::token::derived_key(secret, b"carecall recording downloads"),
            ttl,
        }
    }

    /// The link for recording `id`, made at `now` (Unix seconds), and when
    /// it expires.
    pub fn link(&self, id: &str, now: u64) -> (String, u64) {
        self.link_to(Download::Recording, id, now)
    }

    /// The link for `what` `id`, made at `now` (Unix seconds), and when it
    /// expires.
    pub fn link_to(&self, what: Download, id: &str, now: u64) -> (String, u64) {
        let expires = now + self.ttl.as_secs();
        let sig = hmac::sign(&self.key, what.message(id, expires).as_bytes());
        let url = format!(
            "{}/{}/{id}/download?expires={expires}&sig={}",
            self.base_url,
            what.path(),
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        );
        (url, expires)
    }

    /// Whether `sig` is this hub's signature for recording `id` until
    /// `expires`, and that time has not passed at `now`.
    pub fn verify(&self, id: &str, expires: u64, sig: &str, now: u64) -> Result<(), &'static str> {
        self.verify_for(Download::Recording, id, expires, sig, now)
    }

    /// Whether `sig` is this hub's signature for `what` `id` until
    /// `expires`, and that time has not passed at `now`.
    pub fn verify_for(
        &self,
        what: Download,
        id: &str,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), &'static str> {
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "the link's signature is unreadable")?;
        hmac::verify(&self.key, what.message(id, expires).as_bytes(), &sig)
            .map_err(|_| "the link is not valid for this file")?;
        if now > expires {
            return Err("the link has expired; ask the hub for a new one");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> DownloadLinks {
        DownloadLinks::new(
            "https://hub.example/",
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_link_works_for_its_recording_until_it_expires() {
        let links = links();
        let (url, expires) = links.link("abc", 1000);
        assert!(url.starts_with("https://hub.example/recordings/abc/download?expires=1060&sig="));
        let sig = url.rsplit("sig=").next().unwrap();
        assert_eq!(links.verify("abc", expires, sig, 1059), Ok(()));
        assert!(links.verify("abc", expires, sig, 1061).is_err());
        assert!(links.verify("abd", expires, sig, 1000).is_err());
        assert!(links.verify("abc", expires + 1, sig, 1000).is_err());
    }

    #[test]
    fn an_image_link_opens_that_image_only() {
        let links = links();
        let (url, expires) = links.link_to(Download::Image, "abc", 1000);
        assert!(url.starts_with("https://hub.example/images/abc/download?expires=1060&sig="));
        let sig = url.rsplit("sig=").next().unwrap();
        assert_eq!(
            links.verify_for(Download::Image, "abc", expires, sig, 1000),
            Ok(())
        );
        assert!(
            links.verify("abc", expires, sig, 1000).is_err(),
            "not a recording's link"
        );
        let (url, _) = links.link("abc", 1000);
        let sig = url.rsplit("sig=").next().unwrap();
        assert!(links
            .verify_for(Download::Image, "abc", expires, sig, 1000)
            .is_err());
    }
}
