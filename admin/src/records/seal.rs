//! Sealing the clinical record's sensitive fields at rest: AES-256-GCM with
//! a key derived from the hub's recording secret (the same secret, another
//! use), a fresh random nonce per value, and the value's place (`what`, such
//! as "resident") bound in as associated data, so a sealed field copied into
//! another column does not open.

use crate::sql::SqlError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The key the clinical record is sealed with. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct RecordKey([u8; 32]);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The system's random number generator failed (no nonce).
    #[error("no randomness available from the operating system to seal a record field")]
    NoRandomness,
    /// The wrong key (another hub's data), or the value was altered.
    #[error(
        "a sealed record field does not open with this hub's key (another hub's data, or altered)"
    )]
    DoesNotOpen,
}

/// A sealing failure, as the database layer reports a value it cannot write.
pub(crate) fn unsealable(e: SealError) -> SqlError {
    SqlError::Unwritable(Box::new(e))
}

/// A sealed column `col` that does not open or parse, as the database
/// layer reports a value it cannot read.
pub(crate) fn unreadable(
    col: usize,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> SqlError {
    SqlError::Unreadable {
        column: col,
        source: e.into(),
    }
}

impl RecordKey {
    /// The key for the clinical record, derived from the hub's recording
    /// secret: HMAC-SHA256 of a fixed label under the secret, so the
    /// recordings' key and this one never coincide.
    pub fn derive(secret: &[u8]) -> RecordKey {
        let key = carecall_signalling::token::derived_key(secret, b"carecall clinical record v1");
        let tag = ring::hmac::sign(&key, b"key");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        RecordKey(bytes)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte key"))
    }

    /// `plain` sealed: the nonce, then the ciphertext and its tag.
    pub fn seal(&self, what: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::NoRandomness)?;
        let mut out = nonce.to_vec();
        let mut body = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.as_bytes()),
                &mut body,
            )
            .map_err(|_| SealError::NoRandomness)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The value `seal` sealed as `what`.
    pub fn open(&self, what: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut body = body.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(what.as_bytes()), &mut body)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_place() {
        let key = RecordKey::derive(b"a hub's recording secret, 32 bytes or more");
        let sealed = key.seal("resident", b"9434765919").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"9434765919"));
        assert_eq!(key.open("resident", &sealed).unwrap(), b"9434765919");
        assert_eq!(key.open("outcome", &sealed), Err(SealError::DoesNotOpen));
        let other = RecordKey::derive(b"another hub's recording secret, as long");
        assert_eq!(other.open("resident", &sealed), Err(SealError::DoesNotOpen));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open("resident", &altered), Err(SealError::DoesNotOpen));
        assert_eq!(
            key.open("resident", &sealed[..4]),
            Err(SealError::DoesNotOpen)
        );
        // A fresh nonce each time: the same value never seals the same.
        assert_ne!(key.seal("resident", b"9434765919").unwrap(), sealed);
    }
}
