//! Signed join links.
//!
//! A join token names one room, one role, a display name and an expiry, and is
//! signed with HMAC-SHA256 under the hub's link secret. The server keeps no list
//! of links: whoever holds the secret (the server, or `carecall link` run on the
//! same data directory) can mint one, and anything else is refused.
//!
//! Format: `base64url(json claims) "." base64url(tag)`, no padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What a participant may do in a call. Carried in the link, so the hub decides
/// it when the link is made, not the person who opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Care-home staff at the resident's bedside.
    Home,
    /// A hub operator who answered the home's call and passes it on.
    Operator,
    /// A hub clinician.
    Clinician,
    /// A specialist brought in by the clinician.
    Specialist,
    /// Watches and listens (e.g. a student, with consent).
    Observer,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 5] = [
        Role::Home,
        Role::Operator,
        Role::Clinician,
        Role::Specialist,
        Role::Observer,
    ];
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "home" => Ok(Role::Home),
            "operator" => Ok(Role::Operator),
            "clinician" => Ok(Role::Clinician),
            "specialist" => Ok(Role::Specialist),
            "observer" => Ok(Role::Observer),
            other => Err(format!(
                "unknown role {other:?}: use home, operator, clinician, specialist or observer"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Home => "home",
            Role::Operator => "operator",
            Role::Clinician => "clinician",
            Role::Specialist => "specialist",
            Role::Observer => "observer",
        })
    }
}

/// The claims a join token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinClaims {
    /// Room name: 1–64 of `A-Z a-z 0-9 - _ .`.
    pub room: String,
    /// The participant's role.
    pub role: Role,
    /// Shown under the participant's video tile.
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// When the link was made, seconds since the Unix epoch: links to a
    /// room made before a withdrawal stop working (0 in links made before
    /// this was carried, which any withdrawal covers).
    #[serde(default)]
    pub iat: u64,
}

impl JoinClaims {
    /// Claims for a link to `room` made now, working for `ttl`.
    pub fn lasting(room: &str, role: Role, name: &str, ttl: std::time::Duration) -> Self {
        let now = unix_now();
        JoinClaims {
            room: room.to_owned(),
            role,
            name: name.to_owned(),
            exp: now + ttl.as_secs(),
            iat: now,
        }
    }
}

/// Why a token was refused. Each says what the person holding the link can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not shaped like a token at all (truncated or mangled when copied).
    #[error("this link is incomplete or damaged; copy the whole link again")]
    Malformed,
    /// The signature does not match: forged, tampered with, or from another hub.
    #[error("this link is not valid for this hub; ask the hub for a new link")]
    BadSignature,
    /// Correctly signed but past its expiry.
    #[error("this link has expired; ask the hub for a new link")]
    Expired,
    /// Claims that could never have been signed by carecall (bad room or name).
    #[error("this link names an invalid room or name")]
    InvalidClaims,
    /// Correctly signed and unexpired, but the hub withdrew it.
    #[error("this link has been withdrawn; ask the hub for a new link")]
    Revoked,
}

impl TokenError {
    /// A stable machine-readable code for the browser and logs.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed-token",
            TokenError::BadSignature => "bad-token",
            TokenError::Expired => "expired-token",
            TokenError::InvalidClaims => "invalid-token",
            TokenError::Revoked => "revoked-token",
        }
    }
}

/// Signs and checks join tokens with the hub's link secret.
#[derive(Clone)]
pub struct LinkSigner {
    key: hmac::Key,
}

impl LinkSigner {
    /// A signer for `secret` (at least 32 random bytes in practice).
    pub fn new(secret: &[u8]) -> Self {
        LinkSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Signs claims into a token. Fails on claims that `verify` would refuse.
    pub fn sign(&self, claims: &JoinClaims) -> Result<String, TokenError> {
        validate(claims)?;
        let body = serde_json::to_vec(claims).map_err(|_| TokenError::InvalidClaims)?;
        let body = B64.encode(body);
        let tag = hmac::sign(&self.key, body.as_bytes());
        Ok(format!("{body}.{}", B64.encode(tag.as_ref())))
    }

    /// The join link for `claims` under `base_url`: the one place a join URL
    /// is made, for the command line, the hub console and the links API.
    pub fn join_url(&self, base_url: &str, claims: &JoinClaims) -> Result<String, TokenError> {
        let token = self.sign(claims)?;
        Ok(format!("{}/join?t={token}", base_url.trim_end_matches('/')))
    }

    /// Checks a token's signature, then its expiry against `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<JoinClaims, TokenError> {
        if token.len() > 2048 {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        if body.is_empty() || tag.is_empty() {
            return Err(TokenError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, body.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        let json = B64.decode(body).map_err(|_| TokenError::Malformed)?;
        let claims: JoinClaims =
            serde_json::from_slice(&json).map_err(|_| TokenError::InvalidClaims)?;
        validate(&claims)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn validate(claims: &JoinClaims) -> Result<(), TokenError> {
    let room_ok = (1..=64).contains(&claims.room.len())
        && claims
            .room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let name_len = claims.name.chars().count();
    let name_ok = (1..=64).contains(&name_len) && !claims.name.chars().any(char::is_control);
    if room_ok && name_ok {
        Ok(())
    } else {
        Err(TokenError::InvalidClaims)
    }
}

/// A key for one use of the hub's link secret (`label` names the use), so a
/// signature made for one kind of link is never valid for another.
pub fn derived_key(secret: &[u8], label: &[u8]) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), label);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// Seconds since the Unix epoch, for token expiry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> JoinClaims {
        JoinClaims {
            room: "ward-7".into(),
            role: Role::Home,
            name: "Rose Court".into(),
            exp,
            iat: 0,
        }
    }

    #[test]
    fn signed_token_verifies_until_expiry() {
        let s = LinkSigner::new(b"0123456789abcdef0123456789abcdef");
        let t = s.sign(&claims(1_000)).unwrap();
        assert_eq!(s.verify(&t, 999).unwrap(), claims(1_000));
        assert_eq!(s.verify(&t, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn a_join_url_carries_a_token_that_verifies() {
        let s = LinkSigner::new(b"0123456789abcdef0123456789abcdef");
        let url = s
            .join_url("https://hub.example.nhs.uk/", &claims(1_000))
            .unwrap();
        let token = url
            .strip_prefix("https://hub.example.nhs.uk/join?t=")
            .expect("one slash before join");
        assert_eq!(s.verify(token, 0).unwrap(), claims(1_000));
        let mut bad = claims(1_000);
        bad.room = "no spaces".into();
        assert_eq!(
            s.join_url("https://hub", &bad),
            Err(TokenError::InvalidClaims)
        );
    }

    #[test]
    fn tampered_claims_fail_the_signature() {
        let s = LinkSigner::new(b"secret-one-secret-one-secret-one");
        let t = s.sign(&claims(1_000)).unwrap();
        let (_, tag) = t.split_once('.').unwrap();
        let mut forged = claims(1_000);
        forged.role = Role::Clinician;
        let body = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            s.verify(&format!("{body}.{tag}"), 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn another_hubs_secret_is_refused() {
        let a = LinkSigner::new(b"secret-one-secret-one-secret-one");
        let b = LinkSigner::new(b"secret-two-secret-two-secret-two");
        let t = a.sign(&claims(1_000)).unwrap();
        assert_eq!(b.verify(&t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let s = LinkSigner::new(b"k");
        for bad in ["", ".", "abc", "a.b.c", "%%%.%%%", &"x".repeat(5000)] {
            assert_eq!(s.verify(bad, 0), Err(TokenError::Malformed), "{bad:.20}");
        }
    }

    #[test]
    fn invalid_room_names_cannot_be_signed() {
        let s = LinkSigner::new(b"k");
        let mut c = claims(1);
        c.room = "../etc".into();
        assert_eq!(s.sign(&c), Err(TokenError::InvalidClaims));
        c.room = "ok".into();
        c.name = "bad\nname".into();
        assert_eq!(s.sign(&c), Err(TokenError::InvalidClaims));
    }
}
