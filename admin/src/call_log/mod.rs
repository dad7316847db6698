//! The call log: one row per participant session (join to leave), calls
//! made of them, and the quality samples taken during them.

mod carry_over;
mod detail;
mod handover;
mod images;
pub(crate) mod nodes;
pub(crate) mod placement;
mod quality;
mod queue;
mod recordings;
mod revocations;

pub use detail::{CallDetail, SessionDetail, StoredSample};
pub use handover::{queue_label, Handover, QueueEvent, TransferTarget};
pub(crate) use images::ready_images;
pub use images::{ImageRow, NewImage};
pub use quality::{samples, QualitySample};
pub(crate) use queue::WITHDRAWN;
pub use queue::{Answer, CallAsk, Home, QueuedCall};
pub(crate) use recordings::ready_recordings;
pub use recordings::RecordingRow;

use std::cell::RefCell;
use std::path::Path;
use std::time::SystemTime;

use crate::clock::ms;
use crate::sql::{values, Database, Db, SqlError};

use crate::hooks::HookTargets;
use crate::quality::Badge;
use crate::AdminError;

/// One participant's time in a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSession {
    /// Room name.
    pub room: String,
    /// Participant id.
    pub participant: String,
    /// Role from the link.
    pub role: String,
    /// Join time, ms since the Unix epoch.
    pub joined_at_ms: i64,
    /// Leave time, if they have left.
    pub left_at_ms: Option<i64>,
}

/// One call: a room from its first join to its last leave. Counts are of
/// participant sessions: someone who rejoins counts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The call's number.
    pub id: i64,
    /// Room name.
    pub room: String,
    /// First join, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Last leave; `None` while the call runs.
    pub ended_at_ms: Option<i64>,
    /// Sessions by role.
    pub homes: u32,
    /// See `homes`.
    pub operators: u32,
    /// See `homes`.
    pub clinicians: u32,
    /// See `homes`.
    pub specialists: u32,
    /// See `homes`.
    pub observers: u32,
    /// The worst badge any participant had; `None` if no media was sampled.
    pub worst_badge: Option<Badge>,
    /// Reconnects of all its participants together.
    pub reconnects: u32,
}

/// The call log, on either engine (see [`crate::sql`]). Each change also
/// writes the record-hook events it causes, in the same transaction (see
/// [`crate::hooks`]).
pub struct CallLog {
    /// One connection; a `RefCell` so that reads and changes take `&self`,
    /// as they did on SQLite's connection, which is not `Sync` either.
    db: RefCell<Db>,
    /// Where it is, for errors: the SQLite file, or "PostgreSQL".
    at: String,
    hooks: HookTargets,
    /// Wakes hook delivery after an event is written.
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The node whose sessions and recordings this log writes (empty for
    /// one machine's hub): what it closes when it starts again is its own.
    node: String,
}

/// The consultation open in `room`, if anyone is in it.
pub(crate) fn open_call(c: &mut Db, room: &str) -> Result<Option<i64>, SqlError> {
    c.query_row_opt(
        "SELECT id FROM calls WHERE room = ?1 AND ended_at_ms IS NULL",
        values![room],
        |r| r.get(0),
    )
}

impl CallLog {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<CallLog, AdminError> {
        CallLog::connect(&Database::Sqlite(path.to_owned()))
    }

    /// A new connection to `database` (created and migrated as needed).
    pub fn connect(database: &Database) -> Result<CallLog, AdminError> {
        let mut log = CallLog::on(database.open()?);
        log.at = database.to_string();
        Ok(log)
    }

    /// The call log in `db`, already migrated.
    pub fn on(db: Db) -> CallLog {
        CallLog {
            at: db.engine().into(),
            db: RefCell::new(db),
            hooks: HookTargets::default(),
            wake: None,
            node: String::new(),
        }
    }

    /// Writes sessions and recordings as `node`'s, and closes only its own
    /// left open by its last run.
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// The node this log writes for (empty for one machine's hub).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Writes record-hook events for `hooks` with every change, and wakes
    /// `wake` (hook delivery) after each.
    pub fn with_hooks(
        mut self,
        hooks: HookTargets,
        wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    ) -> Self {
        self.hooks = hooks;
        self.wake = wake;
        self
    }

    /// Runs `f` in one transaction (the change and its events commit
    /// together), then wakes hook delivery.
    pub(crate) fn change<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, SqlError>,
    ) -> Result<T, AdminError> {
        let out = self.write(f)?;
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
        Ok(out)
    }

    /// Runs `f` in one transaction that writes no record-hook events.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, SqlError>,
    ) -> Result<T, AdminError> {
        self.db.borrow_mut().transaction(f).map_err(|e| self.err(e))
    }

    /// Whether other nodes write to this log too (a shared PostgreSQL):
    /// then what they wrote may land after this node looked.
    pub(crate) fn shared(&self) -> bool {
        self.db.borrow().shared()
    }

    /// Where this log's changes send record-hook events.
    pub(crate) fn hooks(&self) -> &HookTargets {
        &self.hooks
    }

    /// Runs the read `f` on the database.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, SqlError>,
    ) -> Result<T, AdminError> {
        f(&mut self.db.borrow_mut()).map_err(|e| self.err(e))
    }

    /// Closes sessions left open by a crash or restart, but for those
    /// `carried` over it: they ended when the process did. Their calls end
    /// at their last known moment. The server calls this once at start-up,
    /// before any call.
    pub fn close_stale_sessions(
        &self,
        carried: &[carecall_signalling::CarriedSession],
    ) -> Result<usize, AdminError> {
        let mut stale: Vec<(String, String, i64)> = self.read(|c| {
            c.query_map(
                "SELECT room, participant, joined_at_ms FROM participant_sessions
                 WHERE left_at_ms IS NULL AND (node = ?1 OR node IS NULL) ORDER BY id",
                values![self.node],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        stale.retain(|(room, participant, _)| {
            !carried
                .iter()
                .any(|c| c.claims.room == *room && c.participant.to_string() == *participant)
        });
        // Each leaves at its last known moment, with the events a leave
        // brings; a call ends at its last session's.
        for (room, participant, joined) in &stale {
            let last: i64 = self.read(|c| {
                c.query_row(
                    "SELECT CASE WHEN COALESCE(MAX(q.at_ms), 0) > ?2 THEN MAX(q.at_ms) ELSE ?2 END
                     FROM participant_sessions s
                     LEFT JOIN quality_samples q ON q.session_id = s.id
                     WHERE s.participant = ?1 AND s.left_at_ms IS NULL
                     AND (s.node = ?3 OR s.node IS NULL)",
                    values![participant, *joined, self.node],
                    |r| r.get(0),
                )
            })?;
            self.left_at(room, participant, last)?;
        }
        Ok(stale.len())
    }

    fn err(&self, source: SqlError) -> AdminError {
        AdminError::sql(&self.at, source)
    }

    /// Records a join; the first join to an empty room starts a call.
    pub fn joined(
        &self,
        room: &str,
        participant: &str,
        role: &str,
        at: SystemTime,
    ) -> Result<(), AdminError> {
        let at = ms(at);
        let (hooks, node) = (&self.hooks, &self.node);
        self.change(|c| {
            let call = match open_call(c, room)? {
                Some(id) => id,
                None => {
                    let call: i64 = c.query_row(
                        "INSERT INTO calls (room, started_at_ms) VALUES (?1, ?2) RETURNING id",
                        values![room, at],
                        |r| r.get(0),
                    )?;
                    let data = serde_json::json!({
                        "room": room,
                        "started_at": crate::hooks::rfc3339(at),
                    });
                    hooks.emit(c, call, "consultation.started", data, at)?;
                    call
                }
            };
            c.execute(
                "INSERT INTO participant_sessions (room, participant, role, joined_at_ms, call_id, node)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                values![room, participant, role, at, call, node],
            )?;
            let data = serde_json::json!({
                "room": room,
                "participant": participant,
                "role": role,
                "joined_at": crate::hooks::rfc3339(at),
            });
            hooks.emit(c, call, "participant.joined", data, at)
        })
    }

    /// Records a leave; the last leave ends the call.
    pub fn left(&self, room: &str, participant: &str, at: SystemTime) -> Result<(), AdminError> {
        self.left_at(room, participant, ms(at))
    }

    fn left_at(&self, room: &str, participant: &str, at: i64) -> Result<(), AdminError> {
        let hooks = &self.hooks;
        self.change(|c| {
            let call: Option<i64> = c
                .query_row_opt(
                    "UPDATE participant_sessions SET left_at_ms = ?3
                     WHERE room = ?1 AND participant = ?2 AND left_at_ms IS NULL
                     RETURNING call_id",
                    values![room, participant, at],
                    |r| r.get(0),
                )?
                .flatten();
            c.execute(
                "DELETE FROM resumable_sessions WHERE room = ?1 AND participant = ?2",
                values![room, participant],
            )?;
            let Some(call) = call else {
                return Ok(());
            };
            hooks.session_left(c, call, participant, at)?;
            // The call ends with its last session (after a crash, sessions
            // are closed in any order).
            let ended = c.execute(
                "UPDATE calls SET ended_at_ms = (SELECT MAX(left_at_ms) FROM participant_sessions
                                                 WHERE call_id = calls.id)
                 WHERE id = ?1 AND ended_at_ms IS NULL
                 AND NOT EXISTS (SELECT 1 FROM participant_sessions
                                 WHERE call_id = calls.id AND left_at_ms IS NULL)",
                values![call],
            )?;
            if ended == 1 {
                hooks.call_ended(c, call, at)?;
                handover::end_hub_call(c, room, at)?;
            }
            Ok(())
        })
    }

    /// Writes (and commits) one row: fails when the database cannot take
    /// writes (disk full, read-only, locked past the busy timeout).
    pub fn check_writable(&self) -> Result<(), AdminError> {
        let now = ms(SystemTime::now());
        self.read(|c| {
            c.execute(
                "INSERT INTO health (id, checked_at_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_at_ms = excluded.checked_at_ms",
                values![now],
            )
        })
        .map(|_| ())
    }

    /// Record-hook deliveries waiting and given up on.
    pub fn store_counts(&self) -> Result<crate::metrics::StoreCounts, AdminError> {
        let waiting = self.read(crate::hooks::waiting)?;
        let dead_letters = self.read(crate::hooks::dead_letters)?.len() as u64;
        let recording_bytes: i64 = self.read(|c| {
            c.query_row(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM recordings
                 WHERE state = 'ready' AND deleted_at_ms IS NULL",
                &[],
                |r| r.get(0),
            )
        })?;
        Ok(crate::metrics::StoreCounts {
            waiting,
            dead_letters,
            recording_bytes: recording_bytes.max(0) as u64,
            nodes: self.nodes(std::time::SystemTime::now())?,
        })
    }

    /// Hook deliveries given up on, newest first.
    pub fn dead_letters(&self) -> Result<Vec<crate::hooks::DeadLetter>, AdminError> {
        self.read(crate::hooks::dead_letters)
    }

    /// Puts a dead letter back for delivery; false if there is none `seq`.
    pub fn retry_dead_letter(&self, seq: i64) -> Result<bool, AdminError> {
        let now = ms(SystemTime::now());
        let retried = self.change(|c| crate::hooks::retry_dead_letter(c, seq, now))?;
        Ok(retried)
    }

    /// Every call, oldest first, with who took part by role.
    pub fn calls(&self) -> Result<Vec<CallRecord>, AdminError> {
        self.calls_where(None)
    }

    /// Every call, or only the one numbered `only`.
    fn calls_where(&self, only: Option<i64>) -> Result<Vec<CallRecord>, AdminError> {
        self.read(|c| {
            c.query_map(
                "SELECT c.id, c.room, c.started_at_ms, c.ended_at_ms,
                        SUM(CASE WHEN s.role = 'home' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN s.role = 'clinician' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN s.role = 'specialist' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN s.role = 'observer' THEN 1 ELSE 0 END),
                        MAX(s.worst_badge), CAST(SUM(s.reconnects) AS BIGINT),
                        SUM(CASE WHEN s.role = 'operator' THEN 1 ELSE 0 END)
                 FROM calls c LEFT JOIN participant_sessions s ON s.call_id = c.id
                 WHERE CAST(?1 AS BIGINT) IS NULL OR c.id = ?1
                 GROUP BY c.id ORDER BY c.id",
                values![only],
                |r| {
                    let count = |i| r.get::<Option<u32>>(i).map(Option::unwrap_or_default);
                    Ok(CallRecord {
                        id: r.get(0)?,
                        room: r.get(1)?,
                        started_at_ms: r.get(2)?,
                        ended_at_ms: r.get(3)?,
                        homes: count(4)?,
                        clinicians: count(5)?,
                        specialists: count(6)?,
                        observers: count(7)?,
                        worst_badge: r.get::<Option<i64>>(8)?.map(Badge::from_level),
                        reconnects: count(9)?,
                        operators: count(10)?,
                    })
                },
            )
        })
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Result<Vec<ParticipantSession>, AdminError> {
        self.read(|c| {
            c.query_map(
                "SELECT room, participant, role, joined_at_ms, left_at_ms
                 FROM participant_sessions ORDER BY id",
                &[],
                |r| {
                    Ok(ParticipantSession {
                        room: r.get(0)?,
                        participant: r.get(1)?,
                        role: r.get(2)?,
                        joined_at_ms: r.get(3)?,
                        left_at_ms: r.get(4)?,
                    })
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::test_databases;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn join_and_leave_are_kept_across_reopen() {
        for db in test_databases() {
            let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            {
                let log = CallLog::on(db.open());
                log.joined("ward-7", "p1", "home", t0).unwrap();
                log.joined("ward-7", "p2", "clinician", t0).unwrap();
                log.left("ward-7", "p1", t0 + Duration::from_secs(600))
                    .unwrap();
            }
            let log = CallLog::on(db.open());
            assert_eq!(
                log.sessions().unwrap()[1].left_at_ms,
                None,
                "{}: opening must not change rows",
                db.engine
            );
            assert_eq!(log.close_stale_sessions(&[]).unwrap(), 1);
            let s = log.sessions().unwrap();
            assert_eq!(s.len(), 2);
            assert_eq!(s[0].left_at_ms, Some(1_700_000_600_000));
            // p2 was still in the call when the process stopped: closed at
            // reopen.
            assert_eq!(s[1].left_at_ms, Some(1_700_000_000_000), "{}", db.engine);
            assert_eq!(s[1].role, "clinician");
            // Both were one call, closed at its last known moment.
            let calls = log.calls().unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!((calls[0].homes, calls[0].clinicians), (1, 1));
            assert_eq!(calls[0].ended_at_ms, Some(1_700_000_600_000));
        }
    }

    #[test]
    fn a_call_runs_from_the_first_join_to_the_last_leave() {
        for (log, db) in crate::sql::each_engine(CallLog::on) {
            let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
            log.joined("ward-7", "p1", "home", t(0)).unwrap();
            log.joined("ward-7", "p2", "clinician", t(60)).unwrap();
            log.joined("ward-9", "p3", "home", t(90)).unwrap();
            log.left("ward-7", "p1", t(300)).unwrap();
            assert_eq!(log.calls().unwrap()[0].ended_at_ms, None, "p2 still in");
            log.left("ward-7", "p2", t(600)).unwrap();
            // The room again, later: a new call.
            log.joined("ward-7", "p4", "home", t(3600)).unwrap();
            let calls = log.calls().unwrap();
            assert_eq!(calls.len(), 3, "{}", db.engine);
            assert_eq!(calls[0].room, "ward-7");
            assert_eq!(calls[0].started_at_ms, 1_700_000_000_000);
            assert_eq!(calls[0].ended_at_ms, Some(1_700_000_600_000));
            assert_eq!((calls[0].homes, calls[0].clinicians), (1, 1));
            assert_eq!(
                (calls[1].room.as_str(), calls[1].ended_at_ms),
                ("ward-9", None)
            );
            assert_eq!(
                (calls[2].started_at_ms, calls[2].homes),
                (1_700_003_600_000, 1)
            );
            assert!(log.check_writable().is_ok(), "{}", db.engine);
            assert!(log.check_writable().is_ok(), "{}: written twice", db.engine);
            assert_eq!(log.highest_participant().unwrap(), 4, "{}", db.engine);
        }
    }
}
