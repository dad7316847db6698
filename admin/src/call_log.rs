//! The call log: one row per participant session (join to leave).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

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

/// The SQLite-backed call log.
pub struct CallLog {
    conn: Connection,
    path: PathBuf,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl CallLog {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<CallLog, AdminError> {
        let conn = crate::db::open(path)?;
        Ok(CallLog {
            conn,
            path: path.to_owned(),
        })
    }

    /// Closes sessions left open by a crash or restart: they ended when the
    /// process did. The server calls this once at start-up, before any call.
    pub fn close_stale_sessions(&self) -> Result<usize, AdminError> {
        self.conn
            .execute(
                "UPDATE participant_sessions SET left_at_ms = joined_at_ms WHERE left_at_ms IS NULL",
                [],
            )
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> AdminError {
        AdminError::Database {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Records a join.
    pub fn joined(
        &self,
        room: &str,
        participant: &str,
        role: &str,
        at: SystemTime,
    ) -> Result<(), AdminError> {
        self.conn
            .execute(
                "INSERT INTO participant_sessions (room, participant, role, joined_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![room, participant, role, ms(at)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a leave.
    pub fn left(&self, room: &str, participant: &str, at: SystemTime) -> Result<(), AdminError> {
        self.conn
            .execute(
                "UPDATE participant_sessions SET left_at_ms = ?3 WHERE room = ?1 AND participant = ?2 AND left_at_ms IS NULL",
                params![room, participant, ms(at)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Result<Vec<ParticipantSession>, AdminError> {
        let mut stmt = self
            .conn
            .prepare("SELECT room, participant, role, joined_at_ms, left_at_ms FROM participant_sessions ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ParticipantSession {
                    room: r.get(0)?,
                    participant: r.get(1)?,
                    role: r.get(2)?,
                    joined_at_ms: r.get(3)?,
                    left_at_ms: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn join_and_leave_are_kept_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carecall.db");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        {
            let log = CallLog::open(&path).unwrap();
            log.joined("ward-7", "p1", "home", t0).unwrap();
            log.joined("ward-7", "p2", "clinician", t0).unwrap();
            log.left("ward-7", "p1", t0 + Duration::from_secs(600))
                .unwrap();
        }
        let log = CallLog::open(&path).unwrap();
        assert_eq!(
            log.sessions().unwrap()[1].left_at_ms,
            None,
            "opening must not change rows"
        );
        assert_eq!(log.close_stale_sessions().unwrap(), 1);
        let s = log.sessions().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].left_at_ms, Some(1_700_000_600_000));
        // p2 was still in the call when the process stopped: closed at reopen.
        assert_eq!(s[1].left_at_ms, Some(1_700_000_000_000));
        assert_eq!(s[1].role, "clinician");
    }
}
