//! Refusals at the public surfaces: each time a limit turns a stranger away
//! (TURN, sign-in, the check page, a signalling socket, HTTP), it is counted
//! here by surface and reason, and logged as one `warn` line at most every
//! ten seconds per pair. The admin plane renders the counts as
//! `carecall_limit_refusals_total{surface,reason}`, so an admin sees an
//! attack while it happens and the log is not flooded by it.
//!
//! Both labels are `&'static str` from the code, never from a client, so the
//! label set stays bounded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most one warn line per surface and reason in this time.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The public surfaces that have limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Surface {
    /// The embedded TURN server (UDP, TCP and TLS).
    Turn,
    /// Admin and hub-staff sign-in.
    SignIn,
    /// The helpdesk connectivity check (`/check`).
    Check,
    /// A signalling WebSocket.
    Socket,
    /// Plain HTTP and HTTPS connections and request bodies.
    Http,
    /// A care home's call API (its permanent link).
    HomeCall,
}

impl Surface {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Turn => "turn",
            Surface::SignIn => "sign_in",
            Surface::Check => "check",
            Surface::Socket => "socket",
            Surface::Http => "http",
            Surface::HomeCall => "home_call",
        }
    }
}

#[derive(Default)]
struct Tally {
    count: u64,
    /// When the last warn line was written, and refusals since then.
    warned: Option<Instant>,
    unlogged: u64,
}

/// Counts of refusals by surface and reason; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Refusals {
    tallies: Arc<Mutex<BTreeMap<(Surface, &'static str), Tally>>>,
}

impl std::fmt::Debug for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.counts()).finish()
    }
}

impl Refusals {
    /// Counts one refusal of `client` (an address or account, for the log
    /// only) at `surface` for `reason` (a short snake_case constant).
    pub fn refuse(&self, surface: Surface, reason: &'static str, client: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let t = tallies.entry((surface, reason)).or_default();
        t.count += 1;
        t.unlogged += 1;
        if t.warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            tracing::warn!(
                surface = surface.as_str(),
                reason,
                client = %client,
                refusals = t.unlogged,
                "limit hit: client refused"
            );
            t.warned = Some(now);
            t.unlogged = 0;
        }
    }

    /// Every (surface, reason, count) so far, in a stable order.
    pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies
            .iter()
            .map(|((s, r), t)| (s.as_str(), *r, t.count))
            .collect()
    }

    /// Refusals so far at `surface` for `reason`.
    pub fn count(&self, surface: Surface, reason: &'static str) -> u64 {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.get(&(surface, reason)).map_or(0, |t| t.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_surface_and_reason() {
        let r = Refusals::default();
        let shared = r.clone();
        for _ in 0..3 {
            shared.refuse(Surface::Turn, "per_credential", &"192.0.2.1");
        }
        r.refuse(Surface::SignIn, "backoff", &"192.0.2.2");
        assert_eq!(r.count(Surface::Turn, "per_credential"), 3);
        assert_eq!(r.count(Surface::Turn, "per_address"), 0);
        assert_eq!(
            r.counts(),
            vec![("turn", "per_credential", 3), ("sign_in", "backoff", 1)]
        );
    }
}
