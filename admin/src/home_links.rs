//! Care homes' permanent links. A home's link carries no room: it opens the
//! "Call the hub" page. It is signed (HMAC-SHA256 with a key derived from
//! the link secret) and names the home and a link version, so withdrawing a
//! home's link, or issuing it a new one, refuses the old one at once (the
//! version is checked against the database on every use).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// Why a home link was refused: the message is safe to show the home.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeLinkError {
    /// Not a link this hub made (or damaged).
    #[error("This link is not valid for this hub. Check it was copied whole, or ask the hub for a new one.")]
    Invalid,
    /// The hub withdrew it (the home was removed, or given a new link).
    #[error("This link has been withdrawn by the hub. Ask the hub for the new one.")]
    Withdrawn,
}

/// Signs and reads home links.
#[derive(Clone, Debug)]
pub struct HomeLinks {
    key: hmac::Key,
}

impl HomeLinks {
    /// Links signed with a key derived from the hub's link secret.
    pub fn new(secret: &[u8]) -> Self {
        HomeLinks {
            key: carecall_signalling::token::derived_key(secret, b"carecall home links"),
        }
    }

    /// The token for home `id` at link version `version`.
    pub fn token(&self, id: &str, version: i64) -> String {
        let claims = format!("{id}.{version}");
        let sig = hmac::sign(&self.key, claims.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }

    /// The home id and link version a token names, if this hub signed it.
    pub fn read(&self, token: &str) -> Result<(String, i64), HomeLinkError> {
        let (claims, sig) = token.split_once('.').ok_or(HomeLinkError::Invalid)?;
        let claims = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| HomeLinkError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| HomeLinkError::Invalid)?;
        hmac::verify(&self.key, &claims, &sig).map_err(|_| HomeLinkError::Invalid)?;
        let claims = String::from_utf8(claims).map_err(|_| HomeLinkError::Invalid)?;
        let (id, version) = claims.rsplit_once('.').ok_or(HomeLinkError::Invalid)?;
        let version = version.parse().map_err(|_| HomeLinkError::Invalid)?;
        Ok((id.to_owned(), version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_and_a_forged_one_does_not() {
        let links = HomeLinks::new(b"0123456789abcdef0123456789abcdef");
        let t = links.token("hAbC", 3);
        assert_eq!(links.read(&t), Ok(("hAbC".to_owned(), 3)));
        let other = HomeLinks::new(b"another hub's secret, 32 bytes..");
        assert_eq!(other.read(&t), Err(HomeLinkError::Invalid));
        assert_eq!(links.read("garbage"), Err(HomeLinkError::Invalid));
        let (claims, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode("hAbC.4"));
        assert_ne!(claims, URL_SAFE_NO_PAD.encode("hAbC.4"));
        assert_eq!(links.read(&forged), Err(HomeLinkError::Invalid));
    }
}
