//! Finished recordings for the people who need them: the integration engine
//! downloads one with the signed link from `recording.ready` (no admin
//! session: the link is the permission, and it expires); admins list them;
//! retention deletes files past their time and says so in the log and in a
//! `recording.deleted` event.

use std::io::Write;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carecall_sfu::recording::{export, RecordingKey};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::call_log::CallLog;
use crate::state::AdminState;
use crate::AdminError;
use crate::{Download, DownloadLinks};

/// How the admin plane reaches recordings.
#[derive(Clone, Debug)]
pub struct RecordingAccess {
    /// Checks download links.
    pub links: DownloadLinks,
    /// Opens sealed files.
    pub key: Option<RecordingKey>,
}

/// The query of a download link.
#[derive(Deserialize)]
pub(crate) struct DownloadQuery {
    pub(crate) expires: u64,
    pub(crate) sig: String,
}

impl DownloadQuery {
    /// Whether this is the hub's live link to `what` `id`: the link is the
    /// permission, so a forged or expired one is refused (403).
    pub(crate) fn check(
        &self,
        links: &DownloadLinks,
        what: Download,
        id: &str,
    ) -> Result<(), ApiError> {
        let now = crate::clock::unix_now();
        links
            .verify_for(what, id, self.expires, &self.sig, now)
            .map_err(ApiError::forbidden)
    }
}

/// The file row a signed link names, if it can be sent: one no longer
/// ready (deleted, failed) is 410 Gone, none is 404, and a failed read is
/// logged and 500. `noun` names the kind of file in the reasons.
pub(crate) fn ready_to_send<R>(
    row: Result<Option<R>, AdminError>,
    state: impl Fn(&R) -> &str,
    noun: &str,
) -> Result<R, ApiError> {
    match row {
        Ok(Some(r)) if state(&r) == "ready" => Ok(r),
        Ok(Some(r)) => Err(ApiError::new(
            StatusCode::GONE,
            format!("the {noun} is {}", state(&r)),
        )),
        Ok(None) => Err(ApiError::not_found(format!("no such {noun}"))),
        Err(e) => Err(ApiError::internal(
            &format!("{noun} lookup"),
            e,
            &format!("the {noun} could not be read"),
        )),
    }
}

/// `GET /recordings/{id}/download?expires=…&sig=…`: the WebM, decrypted.
pub(crate) async fn download(
    State(state): State<AdminState>,
    from: crate::auth::ClientIp,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let Some(access) = state.recordings.clone() else {
        return Err(ApiError::not_found("recording is switched off on this hub"));
    };
    q.check(&access.links, Download::Recording, &id)?;
    let lookup = id.clone();
    // Each download is noted in the audit trail before the file goes out.
    let row = crate::blocking_locked(&state.call_log, move |log| {
        let row = log.recording(&lookup)?;
        if let Some(r) = row.as_ref().filter(|r| r.state == "ready") {
            let subject = format!("consultation {}, recording {}", r.consultation, r.id);
            log.audit(
                "signed link",
                &from.0,
                "recording.downloaded",
                &subject,
                SystemTime::now(),
            )?;
        }
        Ok(row)
    })
    .await;
    let row = ready_to_send(row, |r| &r.state, "recording")?;
    // The file is decrypted on a blocking thread and streamed in chunks.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender(tx.clone());
        if let Err(e) = export(&row.path, access.key.as_ref(), &mut out) {
            tracing::error!(recording = %row.id, error = %e, "recording download failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        } else {
            tracing::info!(recording = %row.id, "recording downloaded");
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((
        [
            (header::CONTENT_TYPE, "video/webm".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.webm\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

struct ChunkSender(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the downloader went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /admin/api/recordings`: every recording, newest first.
pub(crate) async fn list(State(state): State<AdminState>) -> Result<Json<Vec<Value>>, ApiError> {
    let now = crate::clock::unix_now();
    let links = state.recordings.as_ref().map(|a| a.links.clone());
    let rows = crate::blocking_locked(&state.call_log, |log| log.recordings())
        .await
        .map_err(|e| ApiError::internal("recordings list", e, "recordings could not be read"))?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                // A fresh link for each finished one, for the admin to fetch.
                let download = links
                    .as_ref()
                    .filter(|_| r.state == "ready")
                    .map(|l| l.link(&r.id, now).0);
                json!({
                    "download_url": download,
                    "id": r.id, "room": r.room, "consultation": r.consultation,
                    "started_by": r.started_by, "started_at_ms": r.started_at_ms,
                    "state": r.state, "encrypted": r.encrypted, "size": r.webm_bytes,
                    "sha256": r.sha256, "duration_ms": r.duration_ms,
                })
            })
            .collect::<Vec<_>>(),
    ))
}

/// Deletes the files of recordings that started more than `retention` before
/// `now`, logging each and recording a `recording.deleted` event. A file that
/// is already gone counts as deleted; one that cannot be removed is left,
/// logged, and tried again next time. Returns how many were deleted.
pub fn delete_expired(
    log: &CallLog,
    retention: Duration,
    now: SystemTime,
) -> Result<usize, AdminError> {
    let before = crate::clock::ms(now - retention);
    let files = log
        .recordings_older_than(before)?
        .into_iter()
        .map(|r| (r.id, r.path));
    delete_files("recording", files, retention, |id, reason| {
        log.recording_deleted(id, reason, now)
    })
}

/// Deletes each `(id, path)` of `kind` (a recording, an image) past
/// `retention`, and marks it with `deleted` (id, reason). A file already
/// gone counts as deleted; one that cannot be removed is left, logged, and
/// tried again next time. Returns how many were deleted.
pub(crate) fn delete_files(
    kind: &str,
    files: impl Iterator<Item = (String, std::path::PathBuf)>,
    retention: Duration,
    mut deleted: impl FnMut(&str, &str) -> Result<(), AdminError>,
) -> Result<usize, AdminError> {
    let reason = format!("retention of {} days passed", retention.as_secs() / 86_400);
    let mut count = 0;
    for (id, path) in files {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(kind, id, path = %path.display(), error = %e, "file past retention could not be deleted");
                continue;
            }
        }
        tracing::info!(kind, id, path = %path.display(), %reason, "deleted past retention");
        deleted(&id, &reason)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::HookTargets;
    use carecall_sfu::recording::{RecordingSummary, TrackInfo};
    use carecall_sfu::ParticipantId;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_recording_runs_from_start_to_deletion_with_an_event_at_each_step() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("carecall.db");
        let links = DownloadLinks::new(
            "https://hub.example",
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(3600),
        );
        let hooks = HookTargets {
            endpoints: vec!["https://records.example/hooks".to_owned()].into(),
            hours: None,
            downloads: Some(links.clone()),
            seal: None,
        };
        let log = CallLog::open(&db).unwrap().with_hooks(hooks, None);
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
        log.joined("ward-7", "p1", "home", t(0)).unwrap();
        log.joined("ward-7", "p2", "clinician", t(5)).unwrap();
        let file = dir.path().join("r1.webm.sealed");
        std::fs::write(&file, b"sealed bytes").unwrap();
        log.recording_started("r1", "ward-7", "p2", &file, true, t(10))
            .unwrap();
        let summary = RecordingSummary {
            path: file.clone(),
            bytes_on_disk: 12,
            webm_bytes: 10,
            sha256: "ab".repeat(32),
            duration_ms: 20_000,
            tracks: vec![TrackInfo {
                participant: Some(ParticipantId(1)),
                kind: "video",
            }],
            packets_dropped: 0,
        };
        log.recording_finished("r1", Ok(&summary), t(30), false)
            .unwrap();
        let row = log.recording("r1").unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.consultation, row.duration_ms),
            ("ready", 1, Some(20_000))
        );
        assert_eq!(log.store_counts().unwrap().recording_bytes, 12);

        // Not yet past retention: kept. Past it: the file goes, with an event.
        let retention = Duration::from_secs(7 * 86_400);
        assert_eq!(delete_expired(&log, retention, t(6 * 86_400)).unwrap(), 0);
        assert!(file.exists());
        assert_eq!(delete_expired(&log, retention, t(8 * 86_400)).unwrap(), 1);
        assert!(!file.exists());
        assert_eq!(log.recording("r1").unwrap().unwrap().state, "deleted");
        assert_eq!(log.store_counts().unwrap().recording_bytes, 0);
        assert_eq!(
            delete_expired(&log, retention, t(9 * 86_400)).unwrap(),
            0,
            "deleted once"
        );

        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT kind, body FROM hook_events ORDER BY rowid")
            .unwrap();
        let events: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "consultation.started",
                "participant.joined",
                "participant.joined",
                "recording.started",
                "recording.ready",
                "recording.deleted"
            ]
        );
        let ready: serde_json::Value = serde_json::from_str(&events[4].1).unwrap();
        let url = ready["data"]["download_url"].as_str().unwrap();
        assert!(
            url.starts_with("https://hub.example/recordings/r1/download?expires="),
            "{url}"
        );
        assert_eq!(ready["data"]["tracks"][0]["role"], "home");
        let started: serde_json::Value = serde_json::from_str(&events[3].1).unwrap();
        assert_eq!(started["data"]["started_by"]["role"], "clinician");
    }
}
