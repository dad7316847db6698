//! Signatures the Standard Webhooks way, so a receiver can check that an
//! event came from this hub and was not changed or replayed: HMAC-SHA256
//! over `id.timestamp.body`, sent as `webhook-signature: v1,<base64>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::hmac;

/// A hook endpoint's signing secret: `whsec_` and the base64 of at least
/// 24 random bytes, shared with the receiver.
#[derive(Clone)]
pub struct HookSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSecret(..)")
    }
}

/// Why a configured hook secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error(
        "a hook secret is \"whsec_\" followed by base64 (make one with `carecall hook-secret`)"
    )]
    Format,
    /// Fewer than 24 bytes of key.
    #[error("a hook secret needs at least 24 bytes of key; this one has {0}")]
    TooShort(usize),
}

impl HookSecret {
    /// Reads a secret in the `whsec_<base64>` form.
    pub fn parse(text: &str) -> Result<HookSecret, SecretError> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Format)?;
        let bytes = B64.decode(b64).map_err(|_| SecretError::Format)?;
        if bytes.len() < 24 {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(HookSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// A new random secret, in the form [`HookSecret::parse`] reads.
    pub fn generate() -> String {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random number generator");
        format!("whsec_{}", B64.encode(bytes))
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: u64, body: &str) -> String {
        let content = format!("{id}.{timestamp}.{body}");
        let tag = hmac::sign(&self.key, content.as_bytes());
        format!("v1,{}", B64.encode(tag.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example in the Standard Webhooks specification.
        let secret = HookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(
            HookSecret::parse("secret").unwrap_err(),
            SecretError::Format
        );
        assert_eq!(
            HookSecret::parse("whsec_!!").unwrap_err(),
            SecretError::Format
        );
        assert_eq!(
            HookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::TooShort(5)
        );
        assert!(HookSecret::parse(&HookSecret::generate()).is_ok());
    }
}
