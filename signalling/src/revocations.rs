//! Withdrawn join links. A join link is signed and works until it expires;
//! when one is lost or forwarded where it should not be, the hub withdraws
//! every link to that room made up to now. A link carries when it was made
//! (`iat`), so one check at join and on resume refuses the withdrawn ones
//! and lets links made afterwards through. The admin plane keeps the list
//! in the database and fills this copy at start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::token::JoinClaims;

/// Rooms whose links made before a time are withdrawn.
#[derive(Debug, Clone, Default)]
pub struct LinkRevocations {
    rooms: Arc<RwLock<HashMap<String, u64>>>,
}

impl LinkRevocations {
    /// Withdraws every link to `room` made at or before `until` (Unix seconds).
    pub fn revoke(&self, room: &str, until: u64) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        let t = rooms.entry(room.to_owned()).or_default();
        *t = (*t).max(until);
    }

    /// Whether the link these claims came from has been withdrawn.
    pub fn is_revoked(&self, claims: &JoinClaims) -> bool {
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        rooms
            .get(&claims.room)
            .is_some_and(|until| claims.iat <= *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn made_at(room: &str, iat: u64) -> JoinClaims {
        JoinClaims {
            room: room.into(),
            role: Role::Home,
            name: "Rose Court".into(),
            exp: iat + 3600,
            iat,
        }
    }

    #[test]
    fn links_made_up_to_the_withdrawal_are_refused_and_later_ones_pass() {
        let r = LinkRevocations::default();
        assert!(!r.is_revoked(&made_at("ward-1", 100)));
        r.revoke("ward-1", 200);
        assert!(r.is_revoked(&made_at("ward-1", 100)));
        assert!(r.is_revoked(&made_at("ward-1", 200)));
        assert!(!r.is_revoked(&made_at("ward-1", 201)), "made afterwards");
        assert!(!r.is_revoked(&made_at("ward-2", 100)), "another room");
        // A link from before links carried their making time counts as old.
        assert!(r.is_revoked(&made_at("ward-1", 0)));
        r.revoke("ward-1", 150);
        assert!(r.is_revoked(&made_at("ward-1", 180)), "never moved back");
    }
}
