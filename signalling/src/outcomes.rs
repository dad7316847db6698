//! How joins ended, for the admin plane's metrics: a participant who joined
//! and left without its media ever connecting is a home that saw "joining…"
//! and gave up, or a network that let signalling through and not media.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Role;

/// Joins whose media never connected, by role; counted without a lock.
#[derive(Debug, Default)]
pub(crate) struct JoinOutcomes {
    never_connected: [AtomicU64; Role::ALL.len()],
}

impl JoinOutcomes {
    /// Counts a participant of `role` leaving before its media connected.
    pub fn never_connected(&self, role: Role) {
        self.never_connected[role as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every role and its count so far, zeros included.
    pub fn never_connected_counts(&self) -> Vec<(Role, u64)> {
        Role::ALL
            .iter()
            .map(|r| {
                (
                    *r,
                    self.never_connected[*r as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_role() {
        for (i, r) in Role::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in declaration order");
        }
        let outcomes = JoinOutcomes::default();
        outcomes.never_connected(Role::Home);
        outcomes.never_connected(Role::Home);
        outcomes.never_connected(Role::Specialist);
        let counts = outcomes.never_connected_counts();
        assert_eq!(counts[0], (Role::Home, 2));
        assert_eq!(counts[3], (Role::Specialist, 1));
        assert_eq!(counts[1], (Role::Operator, 0));
    }
}
