//! The hub's nodes: every carecall process on one database says who it is,
//! where browsers reach it and how busy it is, every [`HEARTBEAT_EVERY`].
//! The dashboard and `/metrics` list them; one not heard from for
//! [`LOST_AFTER`] is shown lost. Each start also reserves a block of
//! participant ids, so two nodes never give out the same one.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::CallLog;
use crate::clock::ms;
use crate::sql::{values, Db, SqlError};
use crate::AdminError;

/// How often a node writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A node silent this long is taken for gone: three heartbeats missed.
pub const LOST_AFTER: Duration = Duration::from_secs(6);
/// Participant ids one start of a node on a shared database may give
/// out: far more than a hub's calls bring in months.
pub const IDS_PER_START: u64 = 1_000_000;
/// Nodes stopped or lost longer ago than this are no longer listed.
const LISTED_FOR: Duration = Duration::from_secs(30 * 86_400);

/// How busy a node is, as its heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Calls with someone in them.
    pub rooms: u64,
    /// Participants in those calls.
    pub participants: u64,
    /// Those calls' rooms: the node's other placements are let go.
    pub present: Vec<String>,
}

/// Whether a node is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Heard from within [`LOST_AFTER`].
    Live,
    /// It said it was stopping.
    Stopped,
    /// Silent without a word: killed, crashed, or cut off from the database.
    Lost,
}

/// One node, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Its id, from its data directory's `node-id`.
    pub id: String,
    /// Where browsers reach it.
    pub url: String,
    /// Live, stopped or lost.
    pub state: NodeState,
    /// The node answering this request.
    pub this: bool,
    /// When it last started (ms since the Unix epoch).
    pub started_at_ms: i64,
    /// When it was last heard from (ms since the Unix epoch).
    pub heartbeat_at_ms: i64,
    /// Seconds since its last heartbeat.
    pub silent_s: u64,
    /// Its calls at its last heartbeat.
    pub rooms: u64,
    /// Their participants.
    pub participants: u64,
    /// Where its relay is reached, if it has one (rooms span to it there).
    pub relay: Option<String>,
}

impl CallLog {
    /// Records this node's start, reachable at `url`, and returns the first
    /// of the participant ids it may give out: above every id any node has
    /// reserved or used.
    pub fn node_started(&self, url: &str, at: SystemTime) -> Result<u64, AdminError> {
        let (node, at) = (self.node_id(), ms(at));
        self.change(|c| {
            // Two nodes starting at once take turns.
            c.lock_table("nodes")?;
            let reserved: i64 =
                c.query_row("SELECT COALESCE(MAX(ids_to), 0) FROM nodes", &[], |r| {
                    r.get(0)
                })?;
            let first = highest_used(c)?.max(reserved.max(0) as u64) + 1;
            // One process numbers a SQLite hub's participants: it just
            // goes on from the highest.
            let block = if c.shared() { IDS_PER_START } else { 1 };
            let last = first + block - 1;
            c.execute(
                "INSERT INTO nodes (id, url, started_at_ms, heartbeat_at_ms, ids_to)
                 VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url,
                     started_at_ms = excluded.started_at_ms,
                     heartbeat_at_ms = excluded.heartbeat_at_ms, ids_to = excluded.ids_to,
                     stopped_at_ms = NULL, rooms = 0, participants = 0,
                     relay_addr = NULL, relay_name = NULL",
                values![node, url, at, last],
            )?;
            Ok(first)
        })
    }

    /// Where this node's relay is reached (its QUIC address) and the name
    /// its certificate bears: other nodes span rooms to it there.
    pub fn node_relay(&self, addr: &str, name: &str) -> Result<(), AdminError> {
        self.write(|c| {
            c.execute(
                "UPDATE nodes SET relay_addr = ?2, relay_name = ?3 WHERE id = ?1",
                values![self.node_id(), addr, name],
            )
        })
        .map(drop)
    }

    /// This node's heartbeat, with its load now; its empty rooms' placements
    /// are let go.
    pub fn node_beat(&self, load: NodeLoad, at: SystemTime) -> Result<(), AdminError> {
        self.write(|c| {
            c.execute(
                "UPDATE nodes SET heartbeat_at_ms = ?2, rooms = ?3, participants = ?4,
                     stopped_at_ms = NULL
                 WHERE id = ?1",
                values![self.node_id(), ms(at), load.rooms, load.participants],
            )
        })?;
        self.release_empty_rooms(&load.present, at).map(drop)
    }

    /// This node is stopping: it is listed as stopped, not lost.
    pub fn node_stopped(&self, at: SystemTime) -> Result<(), AdminError> {
        self.write(|c| {
            c.execute(
                "UPDATE nodes SET stopped_at_ms = ?2, rooms = 0, participants = 0 WHERE id = ?1",
                values![self.node_id(), ms(at)],
            )
        })
        .map(drop)
    }

    /// Every node heard from in the last month, oldest start first.
    pub fn nodes(&self, now: SystemTime) -> Result<Vec<NodeStatus>, AdminError> {
        let now = ms(now);
        let since = now - LISTED_FOR.as_millis() as i64;
        let this = self.node_id();
        self.read(|c| {
            c.query_map(
                "SELECT id, url, started_at_ms, heartbeat_at_ms, stopped_at_ms, rooms, participants,
                     relay_addr
                 FROM nodes WHERE heartbeat_at_ms >= ?1 ORDER BY started_at_ms, id",
                values![since],
                |r| {
                    let (id, beat): (String, i64) = (r.get(0)?, r.get(3)?);
                    let stopped: Option<i64> = r.get(4)?;
                    let silent = (now - beat).max(0) as u64;
                    let state = if stopped.is_some() {
                        NodeState::Stopped
                    } else if silent <= LOST_AFTER.as_millis() as u64 {
                        NodeState::Live
                    } else {
                        NodeState::Lost
                    };
                    Ok(NodeStatus {
                        this: id == this,
                        id,
                        url: r.get(1)?,
                        state,
                        started_at_ms: r.get(2)?,
                        heartbeat_at_ms: beat,
                        silent_s: silent / 1000,
                        rooms: r.get(5)?,
                        participants: r.get(6)?,
                        relay: r.get(7)?,
                    })
                },
            )
        })
    }

    /// The highest participant id any session used: each process numbers
    /// above it.
    pub fn highest_participant(&self) -> Result<u64, AdminError> {
        self.read(highest_used)
    }
}

/// The highest participant id in the latest sessions. Numbers only grow
/// with the rows (each start numbers above every earlier one), so the
/// latest thousand hold the highest, also when some were written out of
/// order. Parsed here, not cast in SQL, which PostgreSQL refuses for text
/// that is not a number.
fn highest_used(c: &mut Db) -> Result<u64, SqlError> {
    let ids: Vec<String> = c.query_map(
        "SELECT participant FROM participant_sessions ORDER BY id DESC LIMIT 1000",
        &[],
        |r| r.get(0),
    )?;
    Ok(ids
        .iter()
        .filter_map(|id| id.strip_prefix('p')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn nodes_are_live_until_silent_and_each_start_numbers_above_every_other() {
        for db in crate::sql::test_databases() {
            let a = CallLog::on(db.open()).with_node("node-a");
            let b = CallLog::on(db.open()).with_node("node-b");
            let e = db.engine;
            let first_a = a.node_started("http://a.example:8080", t(0)).unwrap();
            assert_eq!(first_a, 1, "{e}");
            a.joined("ward-1", &format!("p{first_a}"), "home", t(1))
                .unwrap();
            // On a shared database each start reserves a block; on SQLite,
            // one process, numbers just go on.
            let block = if e == "PostgreSQL" { IDS_PER_START } else { 1 };
            let first_b = b.node_started("http://b.example:8080", t(1)).unwrap();
            assert_eq!(first_b, first_a + block, "{e}: past a's block");
            let load = NodeLoad {
                rooms: 1,
                participants: 3,
                present: vec!["ward-1".into()],
            };
            a.node_beat(load, t(4_000)).unwrap();
            b.node_beat(NodeLoad::default(), t(2_000)).unwrap();

            let seen = a.nodes(t(8_500)).unwrap();
            let summary: Vec<_> = seen
                .iter()
                .map(|n| (n.id.as_str(), n.state, n.this, n.participants, n.silent_s))
                .collect();
            assert_eq!(
                summary,
                [
                    ("node-a", NodeState::Live, true, 3, 4),
                    ("node-b", NodeState::Lost, false, 0, 6),
                ],
                "{e}"
            );
            assert_eq!(seen[1].url, "http://b.example:8080");

            // b comes back: a new block above a's, and live again.
            let again = b.node_started("http://b.example:8080", t(9_000)).unwrap();
            assert_eq!(again, first_b + block, "{e}");
            b.node_stopped(t(9_500)).unwrap();
            let states: Vec<_> = b.nodes(t(9_600)).unwrap().iter().map(|n| n.state).collect();
            assert_eq!(states, [NodeState::Live, NodeState::Stopped], "{e}");
        }
    }

    #[test]
    fn a_node_starting_again_closes_its_own_sessions_and_recordings_only() {
        for db in crate::sql::test_databases() {
            let a = CallLog::on(db.open()).with_node("node-a");
            let b = CallLog::on(db.open()).with_node("node-b");
            let e = db.engine;
            a.joined("ward-1", "p1", "home", t(0)).unwrap();
            a.keep_resumable("ward-1", "p1", "aa", &claims("ward-1", "p1"))
                .unwrap();
            a.recording_started("rec-a", "ward-1", "p1", "/r/a".as_ref(), true, t(1))
                .unwrap();
            b.joined("ward-2", "p1000001", "home", t(0)).unwrap();
            b.keep_resumable("ward-2", "p1000001", "bb", &claims("ward-2", "p1000001"))
                .unwrap();

            // b crashed and starts again: its own are closed and dropped.
            assert!(b
                .take_carried(t(2), Duration::from_secs(300))
                .unwrap()
                .is_empty());
            assert_eq!(b.close_stale_sessions(&[]).unwrap(), 1, "{e}");
            assert_eq!(b.close_stale_recordings().unwrap(), 0, "{e}");
            // a's call and recording go on, and a can still be carried.
            assert_eq!(a.park_resumable(t(3), &[]).unwrap(), 1, "{e}");
            let carried = a.take_carried(t(4), Duration::from_secs(300)).unwrap();
            assert_eq!(carried.len(), 1, "{e}");
            assert_eq!(a.close_stale_sessions(&carried).unwrap(), 0, "{e}");
            assert_eq!(a.close_stale_recordings().unwrap(), 1, "{e}");
        }
    }

    fn claims(room: &str, name: &str) -> carecall_signalling::JoinClaims {
        carecall_signalling::JoinClaims::lasting(
            room,
            carecall_signalling::Role::Home,
            name,
            Duration::from_secs(3600),
        )
    }
}
