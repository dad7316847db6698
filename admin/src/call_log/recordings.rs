//! Recordings in the call log: one row per recording, from start to
//! deletion, each change with its record-hook event in the same transaction.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::sql::{values, Db, OptionalRow, Row, SqlResult};
use carecall_sfu::recording::RecordingSummary;
use serde_json::json;

use super::{open_call, CallLog};
use crate::clock::ms;
use crate::hooks::rfc3339;
use crate::AdminError;

/// One recording as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRow {
    /// The recording's id (also its file name).
    pub id: String,
    /// Room name.
    pub room: String,
    /// The call it belongs to.
    pub consultation: i64,
    /// Who started it (`p<n>`).
    pub started_by: String,
    /// Start, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// `recording`, `ready`, `failed` or `deleted`.
    pub state: String,
    /// The file.
    pub path: PathBuf,
    /// Sealed with the hub's key.
    pub encrypted: bool,
    /// Size of the WebM, once ready.
    pub webm_bytes: Option<i64>,
    /// SHA-256 of the WebM, once ready.
    pub sha256: Option<String>,
    /// Length, once ready.
    pub duration_ms: Option<i64>,
}

const COLUMNS: &str = "id, room, call_id, started_by, started_at_ms, state, path, encrypted, webm_bytes, sha256, duration_ms";

fn row(r: &Row) -> SqlResult<RecordingRow> {
    Ok(RecordingRow {
        id: r.get(0)?,
        room: r.get(1)?,
        consultation: r.get(2)?,
        started_by: r.get(3)?,
        started_at_ms: r.get(4)?,
        state: r.get(5)?,
        path: PathBuf::from(r.get::<String>(6)?),
        encrypted: r.get(7)?,
        webm_bytes: r.get(8)?,
        sha256: r.get(9)?,
        duration_ms: r.get(10)?,
    })
}

/// The finished recordings of consultation `call`, as `consultation.ended`
/// lists them: id, size, SHA-256, duration (a recording still being
/// finished arrives in its own `recording.ready`).
pub(crate) fn ready_recordings(c: &mut Db, call: i64) -> SqlResult<Vec<serde_json::Value>> {
    let rows = c.query_map("SELECT id, webm_bytes, sha256, duration_ms FROM recordings WHERE call_id = ?1 AND state = 'ready' ORDER BY started_at_ms", values![call], |r| {
        Ok(json!({
            "recording": r.get::<String>(0)?,
            "size": r.get::<Option<i64>>(1)?,
            "sha256": r.get::<Option<String>>(2)?,
            "duration_seconds": r.get::<Option<i64>>(3)?.map(|ms| ms as f64 / 1000.0),
        }))
    })?;
    Ok(rows)
}

/// One recording by id.
fn find(c: &mut Db, id: &str) -> SqlResult<Option<RecordingRow>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"),
        values![id],
        row,
    )
    .optional()
}

pub(super) fn role_of(c: &mut Db, participant: &str) -> SqlResult<Option<String>> {
    c.query_row(
        "SELECT role FROM participant_sessions WHERE participant = ?1 ORDER BY id DESC LIMIT 1",
        values![participant],
        |r| r.get(0),
    )
    .optional()
}

/// The last consent entry of consultation `call`, as `recording.started`
/// carries it.
fn consent_of(c: &mut Db, call: i64) -> SqlResult<Option<serde_json::Value>> {
    c.query_row(
        "SELECT given, decided_by, manner, recorded_by, at_ms FROM recording_consents
         WHERE call_id = ?1 ORDER BY id DESC LIMIT 1",
        values![call],
        |r| {
            let recorded_by: String = r.get(3)?;
            Ok((
                r.get::<bool>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                recorded_by,
                r.get::<i64>(4)?,
            ))
        },
    )
    .optional()?
    .map(|(given, by, how, recorded_by, at)| {
        Ok(json!({
            "given": given,
            "by": by,
            "how": how,
            "recorded_by": { "participant": recorded_by, "role": role_of(c, &recorded_by)? },
            "recorded_at": rfc3339(at),
        }))
    })
    .transpose()
}

impl CallLog {
    /// Keeps a clinician's consent entry (or refusal) for the consultation
    /// open in `room`.
    pub fn consent_recorded(
        &self,
        room: &str,
        consent: &carecall_signalling::Consent,
        at: SystemTime,
    ) -> Result<(), AdminError> {
        let at = ms(at);
        let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let by = name(json!(consent.by));
        let how = name(json!(consent.how));
        self.change(|c| {
            let call = open_call(c, room)?.unwrap_or(0);
            c.execute(
                "INSERT INTO recording_consents (call_id, room, given, decided_by, manner, recorded_by, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                values![call, room, consent.given, by, how, consent.recorded_by, at],
            )?;
            Ok(())
        })
    }

    /// Records that recording `id` of `room` started; emits `recording.started`.
    pub fn recording_started(
        &self,
        id: &str,
        room: &str,
        by: &str,
        path: &Path,
        encrypted: bool,
        at: SystemTime,
    ) -> Result<(), AdminError> {
        let at = ms(at);
        let (hooks, node) = (&self.hooks, self.node_id());
        self.change(|c| {
            let call = open_call(c, room)?.unwrap_or(0);
            c.execute(
                "INSERT INTO recordings (id, room, call_id, started_by, started_at_ms, state, path, encrypted, node)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'recording', ?6, ?7, ?8)",
                values![id, room, call, by, at, path.to_string_lossy(), encrypted, node],
            )?;
            let data = json!({
                "recording": id,
                "room": room,
                "started_by": { "participant": by, "role": role_of(c, by)? },
                "started_at": rfc3339(at),
                "encrypted_at_rest": encrypted,
                "consent": consent_of(c, call)?,
            });
            hooks.emit(c, call, "recording.started", data, at)
        })
    }

    /// Records how recording `id` ended; a finished file emits
    /// `recording.ready` with a download link, a failure `recording.failed`.
    /// `cut_by_restart`: a restart stopped it, and a next part follows.
    pub fn recording_finished(
        &self,
        id: &str,
        result: Result<&RecordingSummary, &str>,
        at: SystemTime,
        cut_by_restart: bool,
    ) -> Result<(), AdminError> {
        let at = ms(at);
        let hooks = &self.hooks;
        self.change(|c| {
            let Some(rec) = find(c, id)? else {
                return Ok(());
            };
            match result {
                Ok(s) => {
                    let tracks: Vec<_> = s
                        .tracks
                        .iter()
                        .map(|t| {
                            let participant = t.participant.map(|p| p.to_string());
                            let role = match &participant {
                                Some(p) => role_of(c, p)?,
                                None => None,
                            };
                            Ok(json!({ "kind": t.kind, "participant": participant, "role": role }))
                        })
                        .collect::<SqlResult<_>>()?;
                    c.execute(
                        "UPDATE recordings SET state = 'ready', ended_at_ms = ?2, bytes = ?3, webm_bytes = ?4,
                         sha256 = ?5, duration_ms = ?6, tracks_json = ?7, cut_by_restart = ?8 WHERE id = ?1",
                        values![id, at, s.bytes_on_disk as i64, s.webm_bytes as i64, s.sha256, s.duration_ms as i64,
                                serde_json::Value::from(tracks.clone()).to_string(), cut_by_restart],
                    )?;
                    let mut data = json!({
                        "recording": id,
                        "room": rec.room,
                        "format": "video/webm",
                        "size": s.webm_bytes,
                        "sha256": s.sha256,
                        "duration_seconds": s.duration_ms as f64 / 1000.0,
                        "tracks": tracks,
                        "packets_dropped": s.packets_dropped,
                        "cut_by_restart": cut_by_restart,
                    });
                    hooks.add_download(&mut data, crate::Download::Recording, id, at);
                    hooks.emit(c, rec.consultation, "recording.ready", data, at)
                }
                Err(reason) => {
                    c.execute(
                        "UPDATE recordings SET state = 'failed', ended_at_ms = ?2, error = ?3 WHERE id = ?1",
                        values![id, at, reason],
                    )?;
                    let data = json!({ "recording": id, "room": rec.room, "reason": reason });
                    hooks.emit(c, rec.consultation, "recording.failed", data, at)
                }
            }
        })
    }

    /// Records that recording `id`'s file was deleted (`reason`: why);
    /// emits `recording.deleted`.
    pub fn recording_deleted(
        &self,
        id: &str,
        reason: &str,
        at: SystemTime,
    ) -> Result<(), AdminError> {
        let at = ms(at);
        let hooks = &self.hooks;
        self.change(|c| {
            let Some(rec) = find(c, id)? else {
                return Ok(());
            };
            c.execute(
                "UPDATE recordings SET state = 'deleted', deleted_at_ms = ?2 WHERE id = ?1",
                values![id, at],
            )?;
            let data = json!({ "recording": id, "room": rec.room, "reason": reason, "deleted_at": rfc3339(at) });
            hooks.emit(c, rec.consultation, "recording.deleted", data, at)
        })
    }

    /// One recording.
    pub fn recording(&self, id: &str) -> Result<Option<RecordingRow>, AdminError> {
        self.read(|c| find(c, id))
    }

    /// Every recording, newest first.
    pub fn recordings(&self) -> Result<Vec<RecordingRow>, AdminError> {
        self.recordings_where("TRUE", values![])
    }

    /// Recordings with a file on disk that started before `before` (ms):
    /// what retention deletes.
    pub fn recordings_older_than(&self, before_ms: i64) -> Result<Vec<RecordingRow>, AdminError> {
        self.recordings_where(
            "state IN ('ready', 'failed') AND started_at_ms < ?1",
            values![before_ms],
        )
    }

    fn recordings_where(
        &self,
        condition: &str,
        args: &[crate::sql::Value],
    ) -> Result<Vec<RecordingRow>, AdminError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE {condition} ORDER BY started_at_ms DESC"
        );
        self.read(|c| c.query_map(&sql, args, row))
    }

    /// Recordings still marked as being written: a crash ended them. They
    /// are marked failed (a sealed file without its last chunk does not
    /// export; a plain one may still play up to where it stopped).
    pub fn close_stale_recordings(&self) -> Result<usize, AdminError> {
        let stale = self.recordings_where(
            "state = 'recording' AND (node = ?1 OR node IS NULL)",
            values![self.node_id()],
        )?;
        for r in &stale {
            self.recording_finished(
                &r.id,
                Err("the server stopped while recording"),
                SystemTime::now(),
                false,
            )?;
        }
        Ok(stale.len())
    }
}
