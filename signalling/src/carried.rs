//! Sessions carried over a restart. A joined session's resume state (its
//! participant, the link's claims, the SHA-256 of its resume token) is kept
//! in the database while it lasts; when the hub stops to restart, every
//! browser is told and waits, and the next process takes those sessions
//! back so each browser resumes with the same participant id, in the same
//! consultation, on a fresh media session.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use carecall_sfu::ParticipantId;

use crate::JoinClaims;

/// One session the previous process left for a resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedSession {
    /// Hex SHA-256 of its resume token.
    pub resume_hash: String,
    /// Its participant id, kept.
    pub participant: ParticipantId,
    /// The link's claims, checked again on resume.
    pub claims: JoinClaims,
    /// When the previous process stopped.
    pub parked_at: SystemTime,
    /// It was recording when the hub stopped: it records again once its
    /// media is back.
    pub recording: bool,
}

/// Carried-over sessions not yet resumed, by token hash.
#[derive(Default)]
pub(crate) struct CarriedOver {
    waiting: Mutex<HashMap<String, CarriedSession>>,
}

impl CarriedOver {
    /// Holds `sessions` for their browsers.
    pub fn hold(&self, sessions: Vec<CarriedSession>) {
        let mut waiting = self.lock();
        for s in sessions {
            waiting.insert(s.resume_hash.clone(), s);
        }
    }

    /// The session `token` resumes, if one is held.
    pub fn take(&self, token: &str) -> Option<CarriedSession> {
        self.lock().remove(&resume_hash(token))
    }

    /// Every session still held: their browsers did not come back.
    #[cfg(test)]
    pub fn give_up(&self) -> Vec<CarriedSession> {
        self.lock().drain().map(|(_, s)| s).collect()
    }

    /// Those of the sessions with `hashes` still held.
    pub fn give_up_these(&self, hashes: &[String]) -> Vec<CarriedSession> {
        let mut waiting = self.lock();
        hashes.iter().filter_map(|h| waiting.remove(h)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CarriedSession>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hex SHA-256 of a resume token: what is stored instead of the token.
pub fn resume_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn a_held_session_is_found_by_its_token_once() {
        let carried = CarriedOver::default();
        let claims = JoinClaims::lasting(
            "ward-1",
            Role::Home,
            "Rose",
            std::time::Duration::from_secs(60),
        );
        carried.hold(vec![CarriedSession {
            resume_hash: resume_hash("token-a"),
            participant: ParticipantId(7),
            claims,
            parked_at: SystemTime::UNIX_EPOCH,
            recording: false,
        }]);
        assert!(carried.take("token-b").is_none(), "another token");
        assert_eq!(
            carried.take("token-a").map(|s| s.participant),
            Some(ParticipantId(7))
        );
        assert!(carried.take("token-a").is_none(), "taken once");
        assert!(carried.give_up().is_empty());
        assert_eq!(resume_hash("abc").len(), 64);
    }
}
