//! `[limits]`: how much of the hub one client may take at each public
//! surface (see `docs/security.md`). Every limit has a default that serves
//! a hub's care homes and stops one stranger from taking the hub from them.
//! Each key can be set from the environment as `CARECALL_LIMITS_` and the
//! key in capitals (`CARECALL_LIMITS_TURN_ALLOCATIONS_PER_ADDRESS=100`). A
//! reload (SIGHUP) puts changed limits in force: [`LiveLimits`].

use std::net::IpAddr;
use std::time::Duration;

use carecall_sfu::Live;
use serde::{Deserialize, Serialize};

/// `[limits]` in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// TURN allocations one credential may hold.
    pub turn_allocations_per_credential: usize,
    /// TURN allocations one client address may hold (a care home's
    /// tablets share its address).
    pub turn_allocations_per_address: usize,
    /// TURN TCP/TLS connections one address may hold open.
    pub turn_connections_per_address: usize,
    /// Seconds a TURN TCP/TLS connection may stay open without an
    /// allocation (the TLS handshake included).
    pub turn_unauthenticated_secs: u64,
    /// Seconds the TURN credentials handed to the public check page last.
    pub check_credential_secs: u64,
    /// Failed sign-ins from one address before it must wait out the window.
    pub sign_in_failures_per_address: usize,
    /// Seconds over which failed sign-ins count.
    pub sign_in_window_secs: u64,
    /// The longest an account waits between tries after failures from
    /// anywhere (the wait doubles per failure up to this; the account is
    /// never locked outright).
    pub sign_in_max_backoff_secs: u64,
    /// Password checks run at once (each takes about 19 MiB for a moment).
    pub sign_in_concurrent_checks: usize,
    /// Check requests (credentials, offers) per address per minute.
    pub check_starts_per_minute: u32,
    /// Check results stored per address per hour.
    pub check_results_per_hour: u32,
    /// Check results stored per hour from everyone together.
    pub check_results_per_hour_total: u32,
    /// Throughput-test transfers at once, from everyone.
    pub check_transfers_at_once: usize,
    /// Throughput-test transfers at once from one address.
    pub check_transfers_per_address: usize,
    /// Each throughput-test transfer's rate at most, kbit/s.
    pub check_transfer_kbps: u32,
    /// Every throughput-test transfer together at most, kbit/s: what checks
    /// may take of the hub's line while calls run.
    pub check_transfer_kbps_total: u32,
    /// Messages per second a signalling socket may send on average.
    pub socket_messages_per_sec: u32,
    /// Messages a signalling socket may send at once.
    pub socket_message_burst: u32,
    /// ICE candidates a participant may trickle per offer.
    pub socket_candidates_per_offer: usize,
    /// Messages queued for a browser that does not read before its socket
    /// is dropped.
    pub socket_send_queue: usize,
    /// Seconds an HTTP(S) client has to send a request's headers (and to
    /// finish its TLS handshake).
    pub http_header_read_secs: u64,
    /// HTTP(S) connections one address may hold open (a trusted proxy is
    /// exempt).
    pub http_connections_per_address: usize,
    /// HTTP(S) connections the server holds open at most.
    pub http_connections_total: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the real client.
    /// Empty: the connection's address is the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let turn = carecall_sfu::turn::TurnLimits::default();
        let sign_in = carecall_admin::SignInLimits::default();
        let check = carecall_admin::check::CheckLimits::default();
        let socket = carecall_signalling::SocketLimits::default();
        LimitsSection {
            turn_allocations_per_credential: turn.per_credential,
            turn_allocations_per_address: turn.per_address,
            turn_connections_per_address: turn.connections_per_address,
            turn_unauthenticated_secs: turn.unauthenticated.as_secs(),
            check_credential_secs: check.credential_lifetime.as_secs(),
            sign_in_failures_per_address: sign_in.failures_per_address,
            sign_in_window_secs: sign_in.window.as_secs(),
            sign_in_max_backoff_secs: sign_in.max_backoff.as_secs(),
            sign_in_concurrent_checks: sign_in.concurrent_checks,
            check_starts_per_minute: check.starts_per_minute,
            check_results_per_hour: check.results_per_hour,
            check_results_per_hour_total: check.results_per_hour_total,
            check_transfers_at_once: check.transfers_at_once,
            check_transfers_per_address: check.transfers_per_address,
            check_transfer_kbps: check.transfer_kbps,
            check_transfer_kbps_total: check.transfer_kbps_total,
            socket_messages_per_sec: socket.messages_per_sec,
            socket_message_burst: socket.message_burst,
            socket_candidates_per_offer: socket.candidates_per_offer,
            socket_send_queue: socket.send_queue,
            http_header_read_secs: 10,
            http_connections_per_address: 64,
            http_connections_total: 2_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitsSection {
    /// What is wrong with these limits: (key, why). A limit of zero would
    /// refuse everyone.
    pub fn problems(&self) -> Vec<(String, String)> {
        let counts = [
            (
                "turn_allocations_per_credential",
                self.turn_allocations_per_credential as u64,
            ),
            (
                "turn_allocations_per_address",
                self.turn_allocations_per_address as u64,
            ),
            (
                "turn_connections_per_address",
                self.turn_connections_per_address as u64,
            ),
            ("turn_unauthenticated_secs", self.turn_unauthenticated_secs),
            ("check_credential_secs", self.check_credential_secs),
            (
                "sign_in_failures_per_address",
                self.sign_in_failures_per_address as u64,
            ),
            ("sign_in_window_secs", self.sign_in_window_secs),
            ("sign_in_max_backoff_secs", self.sign_in_max_backoff_secs),
            (
                "sign_in_concurrent_checks",
                self.sign_in_concurrent_checks as u64,
            ),
            (
                "check_starts_per_minute",
                self.check_starts_per_minute.into(),
            ),
            ("check_results_per_hour", self.check_results_per_hour.into()),
            (
                "check_results_per_hour_total",
                self.check_results_per_hour_total.into(),
            ),
            (
                "check_transfers_at_once",
                self.check_transfers_at_once as u64,
            ),
            (
                "check_transfers_per_address",
                self.check_transfers_per_address as u64,
            ),
            ("check_transfer_kbps", self.check_transfer_kbps.into()),
            (
                "check_transfer_kbps_total",
                self.check_transfer_kbps_total.into(),
            ),
            (
                "socket_messages_per_sec",
                self.socket_messages_per_sec.into(),
            ),
            ("socket_message_burst", self.socket_message_burst.into()),
            (
                "socket_candidates_per_offer",
                self.socket_candidates_per_offer as u64,
            ),
            ("socket_send_queue", self.socket_send_queue as u64),
            ("http_header_read_secs", self.http_header_read_secs),
            (
                "http_connections_per_address",
                self.http_connections_per_address as u64,
            ),
            ("http_connections_total", self.http_connections_total as u64),
        ];
        let mut problems: Vec<(String, String)> = counts
            .iter()
            .filter(|(_, v)| *v == 0)
            .map(|(k, _)| {
                (
                    format!("limits.{k}"),
                    "0 would refuse everyone: give a number above zero".to_owned(),
                )
            })
            .collect();
        if self.check_credential_secs > 24 * 3600 {
            problems.push((
                "limits.check_credential_secs".into(),
                "the public check page's TURN credentials should last minutes, not days".into(),
            ));
        }
        if self.sign_in_concurrent_checks > 16 {
            problems.push((
                "limits.sign_in_concurrent_checks".into(),
                "each check takes about 19 MiB: more than 16 at once lets sign-in floods exhaust memory".into(),
            ));
        }
        problems
    }

    /// What the embedded TURN server enforces.
    pub fn turn(&self) -> carecall_sfu::turn::TurnLimits {
        carecall_sfu::turn::TurnLimits {
            per_credential: self.turn_allocations_per_credential,
            per_address: self.turn_allocations_per_address,
            connections_per_address: self.turn_connections_per_address,
            unauthenticated: Duration::from_secs(self.turn_unauthenticated_secs),
        }
    }

    /// What the public check page enforces.
    pub fn check(&self) -> carecall_admin::check::CheckLimits {
        carecall_admin::check::CheckLimits {
            starts_per_minute: self.check_starts_per_minute,
            results_per_hour: self.check_results_per_hour,
            results_per_hour_total: self.check_results_per_hour_total,
            transfers_at_once: self.check_transfers_at_once,
            transfers_per_address: self.check_transfers_per_address,
            transfer_kbps: self.check_transfer_kbps,
            transfer_kbps_total: self.check_transfer_kbps_total,
            credential_lifetime: Duration::from_secs(self.check_credential_secs),
        }
    }

    /// What each signalling socket is held to.
    pub fn socket(&self) -> carecall_signalling::SocketLimits {
        carecall_signalling::SocketLimits {
            messages_per_sec: self.socket_messages_per_sec,
            message_burst: self.socket_message_burst,
            candidates_per_offer: self.socket_candidates_per_offer,
            send_queue: self.socket_send_queue,
        }
    }

    /// What HTTP and HTTPS connections are held to.
    pub fn http(&self) -> crate::listen::HttpLimits {
        crate::listen::HttpLimits {
            header_read: Duration::from_secs(self.http_header_read_secs),
            per_address: self.http_connections_per_address,
            total: self.http_connections_total,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// What sign-in enforces.
    pub fn sign_in(&self) -> carecall_admin::SignInLimits {
        carecall_admin::SignInLimits {
            failures_per_address: self.sign_in_failures_per_address,
            window: Duration::from_secs(self.sign_in_window_secs),
            max_backoff: Duration::from_secs(self.sign_in_max_backoff_secs),
            concurrent_checks: self.sign_in_concurrent_checks,
        }
    }
}

/// The limits in force, shared with each surface that enforces them. A
/// reload puts new ones in force for what comes next (a connection, a
/// socket, an allocation, a sign-in, a check); what is held already stays.
#[derive(Clone)]
pub struct LiveLimits {
    /// The embedded TURN server's.
    pub turn: Live<carecall_sfu::turn::TurnLimits>,
    /// Each signalling socket's.
    pub socket: Live<carecall_signalling::SocketLimits>,
    /// Sign-in's.
    pub sign_in: Live<carecall_admin::SignInLimits>,
    /// The public check page's.
    pub check: Live<carecall_admin::check::CheckLimits>,
    /// HTTP and HTTPS connections'.
    pub http: Live<crate::listen::HttpLimits>,
}

impl LiveLimits {
    /// Starts with `limits`.
    pub fn new(limits: &LimitsSection) -> Self {
        LiveLimits {
            turn: Live::new(limits.turn()),
            socket: Live::new(limits.socket()),
            sign_in: Live::new(limits.sign_in()),
            check: Live::new(limits.check()),
            http: Live::new(limits.http()),
        }
    }

    /// Puts `new` in force, except what only a restart changes (the number
    /// of password-checking threads, and the proxies every part of the hub
    /// trusts to name clients), which keeps `running`'s values. Returns
    /// whether anything changed.
    pub fn replace(&self, running: &LimitsSection, new: &LimitsSection) -> bool {
        let live = LimitsSection {
            sign_in_concurrent_checks: running.sign_in_concurrent_checks,
            trusted_proxies: running.trusted_proxies.clone(),
            ..new.clone()
        };
        if live == *running {
            return false;
        }
        self.turn.replace(live.turn());
        self.socket.replace(live.socket());
        self.sign_in.replace(live.sign_in());
        self.check.replace(live.check());
        self.http.replace(live.http());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_unsafe_limits_are_problems() {
        assert!(LimitsSection::default().problems().is_empty());
        let l = LimitsSection {
            turn_allocations_per_credential: 0,
            sign_in_concurrent_checks: 100,
            ..LimitsSection::default()
        };
        let keys: Vec<String> = l.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "limits.turn_allocations_per_credential",
                "limits.sign_in_concurrent_checks"
            ]
        );
    }
}
