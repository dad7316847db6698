//! TURN requests answered with an error, counted by reason, so an operator
//! can tell a home whose credentials expired from one whose firewall
//! rewrites packets. Limit refusals are counted apart, in
//! [`Refusals`](crate::Refusals). The first request of every allocation is
//! answered 401 by design (it carries no credentials yet) and is not counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a TURN request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnFailure {
    /// A username not of the `expiry:participant` form carecall issues.
    MalformedUsername,
    /// Credentials past their expiry (a page left open for over a day).
    ExpiredCredential,
    /// The message's integrity does not match: a wrong password, or one
    /// issued with another secret.
    WrongPassword,
    /// A nonce past its lifetime; the client retries with a fresh one.
    StaleNonce,
    /// A request for an allocation the client does not hold, or a second one.
    AllocationMismatch,
    /// Credentials other than those the allocation was made with.
    WrongCredentials,
    /// A peer other than the SFU's media addresses.
    ForbiddenPeer,
    /// A relay over anything but UDP.
    UnsupportedTransport,
    /// No relay port could be bound.
    NoRelayAddress,
    /// A request missing what it needs, or an unknown method.
    BadRequest,
}

impl TurnFailure {
    /// Every reason, in the order counted.
    pub const ALL: [TurnFailure; 10] = [
        TurnFailure::MalformedUsername,
        TurnFailure::ExpiredCredential,
        TurnFailure::WrongPassword,
        TurnFailure::StaleNonce,
        TurnFailure::AllocationMismatch,
        TurnFailure::WrongCredentials,
        TurnFailure::ForbiddenPeer,
        TurnFailure::UnsupportedTransport,
        TurnFailure::NoRelayAddress,
        TurnFailure::BadRequest,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnFailure::MalformedUsername => "malformed_username",
            TurnFailure::ExpiredCredential => "expired_credential",
            TurnFailure::WrongPassword => "wrong_password",
            TurnFailure::StaleNonce => "stale_nonce",
            TurnFailure::AllocationMismatch => "allocation_mismatch",
            TurnFailure::WrongCredentials => "wrong_credentials",
            TurnFailure::ForbiddenPeer => "forbidden_peer",
            TurnFailure::UnsupportedTransport => "unsupported_transport",
            TurnFailure::NoRelayAddress => "no_relay_address",
            TurnFailure::BadRequest => "bad_request",
        }
    }

    /// The STUN error code and reason phrase sent back.
    pub(crate) fn reply(self) -> (u16, &'static str) {
        match self {
            TurnFailure::MalformedUsername
            | TurnFailure::ExpiredCredential
            | TurnFailure::WrongPassword => (401, "Unauthorized"),
            TurnFailure::StaleNonce => (438, "Stale Nonce"),
            TurnFailure::AllocationMismatch => (437, "Allocation Mismatch"),
            TurnFailure::WrongCredentials => (441, "Wrong Credentials"),
            TurnFailure::ForbiddenPeer => (403, "Forbidden"),
            TurnFailure::UnsupportedTransport => (442, "Unsupported Transport Protocol"),
            TurnFailure::NoRelayAddress => (508, "Insufficient Capacity"),
            TurnFailure::BadRequest => (400, "Bad Request"),
        }
    }
}

/// Counts of failed TURN requests by reason; cheap to clone (shared), and
/// counted without a lock.
#[derive(Debug, Clone, Default)]
pub struct TurnFailures(Arc<[AtomicU64; TurnFailure::ALL.len()]>);

impl TurnFailures {
    /// Counts one failure.
    pub fn count(&self, why: TurnFailure) {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason and its count, zeros included.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        TurnFailure::ALL
            .iter()
            .map(|f| (f.as_str(), self.0[*f as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_counted_under_its_own_label() {
        for (i, f) in TurnFailure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "ALL is in declaration order");
        }
        let failures = TurnFailures::default();
        failures.count(TurnFailure::ExpiredCredential);
        failures.count(TurnFailure::ExpiredCredential);
        failures.clone().count(TurnFailure::ForbiddenPeer);
        let counts = failures.counts();
        assert_eq!(counts.len(), 10);
        assert!(counts.contains(&("expired_credential", 2)));
        assert!(counts.contains(&("forbidden_peer", 1)));
        assert!(counts.contains(&("wrong_password", 0)));
    }
}
