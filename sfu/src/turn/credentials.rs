//! Time-limited TURN credentials, the TURN REST API way (as coturn's
//! `use-auth-secret`): the username is `<expiry unix time>:<label>`, the
//! password is base64(HMAC-SHA1(shared secret, username)). The hub hands
//! them out in the join flow; the TURN server (this one, or an external
//! coturn with the same secret) checks them without any shared state.

use base64::Engine;
use ring::hmac;

use super::TurnFailure;

/// A username and password for one participant's TURN use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `<expiry>:<label>`.
    pub username: String,
    /// base64 of the HMAC-SHA1 of the username.
    pub password: String,
}

/// Signs TURN usernames with the shared secret.
#[derive(Clone)]
pub struct TurnSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

impl TurnSecret {
    /// A secret shared by whoever issues credentials and the TURN server.
    pub fn new(secret: &[u8]) -> Self {
        TurnSecret {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
        }
    }

    /// Credentials for `label` that work until `expires` (Unix seconds).
    pub fn issue(&self, label: &str, expires: u64) -> TurnCredentials {
        let username = format!("{expires}:{label}");
        let password = self.password(&username);
        TurnCredentials { username, password }
    }

    /// The password that goes with `username`.
    pub fn password(&self, username: &str) -> String {
        let tag = hmac::sign(&self.key, username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }

    /// The password for `username` if it is a REST-API username that has
    /// not expired at `now` (Unix seconds); else why not.
    pub fn check(&self, username: &str, now: u64) -> Result<String, TurnFailure> {
        let expiry = username
            .split_once(':')
            .and_then(|(expiry, _)| expiry.parse::<u64>().ok())
            .ok_or(TurnFailure::MalformedUsername)?;
        if expiry <= now {
            return Err(TurnFailure::ExpiredCredential);
        }
        Ok(self.password(username))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_check_until_they_expire() {
        let secret = TurnSecret::new(b"a shared turn secret");
        let c = secret.issue("p7", 1_700_000_600);
        assert_eq!(c.username, "1700000600:p7");
        assert_eq!(
            secret.check(&c.username, 1_700_000_000),
            Ok(c.password.clone())
        );
        assert_eq!(
            secret.check(&c.username, 1_700_000_600),
            Err(TurnFailure::ExpiredCredential)
        );
        assert_eq!(secret.check("p7", 0), Err(TurnFailure::MalformedUsername));
        let other = TurnSecret::new(b"another secret");
        assert_ne!(other.issue("p7", 1_700_000_600).password, c.password);
    }

    #[test]
    fn the_password_is_the_coturn_rest_api_one() {
        // base64(HMAC-SHA1("secret", "1:u")), computed with Python's hmac.
        let secret = TurnSecret::new(b"secret");
        assert_eq!(secret.password("1:u"), "KUHD1CkWw8p55pIgHmyFn2XyOzY=");
    }
}
