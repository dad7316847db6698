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

/// Signs TURN usernames with the shared secret. Clones share it, so a
/// rotation reaches the TURN server and whoever issues credentials at once.
#[derive(Clone)]
pub struct TurnSecret {
    keys: std::sync::Arc<std::sync::RwLock<Keys>>,
}

struct Keys {
    current: hmac::Key,
    /// The secret rotated out, and until when (Unix seconds) credentials
    /// made with it still check.
    previous: Option<(hmac::Key, u64)>,
}

fn key_of(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret)
}

fn password_with(key: &hmac::Key, username: &str) -> String {
    let tag = hmac::sign(key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
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
            keys: std::sync::Arc::new(std::sync::RwLock::new(Keys {
                current: key_of(secret),
                previous: None,
            })),
        }
    }

    /// Issues credentials with `secret` from now on; those made with the
    /// one before keep working until `overlap_until` (Unix seconds), so no
    /// call in progress loses its relay.
    pub fn rotate(&self, secret: &[u8], overlap_until: u64) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut keys.current, key_of(secret));
        keys.previous = Some((old, overlap_until));
    }

    /// Credentials for `label` that work until `expires` (Unix seconds).
    pub fn issue(&self, label: &str, expires: u64) -> TurnCredentials {
        let username = format!("{expires}:{label}");
        let password = self.password(&username);
        TurnCredentials { username, password }
    }

    /// The password that goes with `username`, with the current secret.
    pub fn password(&self, username: &str) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        password_with(&keys.current, username)
    }

    /// The passwords `username` may have if it is a REST-API username that
    /// has not expired at `now` (Unix seconds): the current secret's, and
    /// the previous one's during a rotation's overlap; else why not.
    pub fn check(&self, username: &str, now: u64) -> Result<Vec<String>, TurnFailure> {
        let expiry = username
            .split_once(':')
            .and_then(|(expiry, _)| expiry.parse::<u64>().ok())
            .ok_or(TurnFailure::MalformedUsername)?;
        if expiry <= now {
            return Err(TurnFailure::ExpiredCredential);
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut passwords = vec![password_with(&keys.current, username)];
        if let Some((old, until)) = &keys.previous {
            if now < *until {
                passwords.push(password_with(old, username));
            }
        }
        Ok(passwords)
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
            Ok(vec![c.password.clone()])
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
    fn a_rotated_secret_keeps_issued_credentials_working_for_the_overlap() {
        let secret = TurnSecret::new(b"the first turn secret");
        let issuer = secret.clone();
        let before = issuer.issue("p7", 1_700_090_000);
        secret.rotate(b"the second turn secret", 1_700_086_400);
        let after = issuer.issue("p8", 1_700_090_000);
        assert_ne!(
            after.password,
            TurnSecret::new(b"the first turn secret")
                .issue("p8", 1_700_090_000)
                .password,
            "issued with the new one"
        );
        let accepts = |c: &TurnCredentials, now| {
            secret
                .check(&c.username, now)
                .is_ok_and(|p| p.contains(&c.password))
        };
        assert!(
            accepts(&before, 1_700_000_000),
            "the old one, in the overlap"
        );
        assert!(accepts(&after, 1_700_000_000));
        assert!(!accepts(&before, 1_700_086_400), "the overlap is over");
        assert!(accepts(&after, 1_700_086_400));
    }

    #[test]
    fn the_password_is_the_coturn_rest_api_one() {
        // base64(HMAC-SHA1("secret", "1:u")), computed with Python's hmac.
        let secret = TurnSecret::new(b"secret");
        assert_eq!(secret.password("1:u"), "KUHD1CkWw8p55pIgHmyFn2XyOzY=");
    }
}
