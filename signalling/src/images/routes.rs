//! The upload API a page sends an asked-for image through:
//! `GET /images/uploads/{ticket}` says how much arrived (to resume after a
//! drop); `PUT /images/uploads/{ticket}?offset=…&total=…&sha256=…` adds a
//! piece. The ticket is the permission: 128 random bits, handed only to
//! the page asked.

use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::uploads::{Complete, Piece, PieceError, Progress, MAX_PIECE_BYTES};
use super::{format, random_id, ImagePolicy};
use crate::events::CallEvent;
use crate::protocol::ServerMessage;
use crate::AppState;

/// The upload routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/uploads/{ticket}", get(status).put(piece))
        // Room for a piece and nothing more.
        .layer(DefaultBodyLimit::max(MAX_PIECE_BYTES))
}

fn error(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

/// `GET /images/uploads/{ticket}`: bytes received, and of how many.
async fn status(State(state): State<AppState>, Path(ticket): Path<String>) -> Response {
    let status = state.inner.images_book.uploads().status(&ticket);
    match status {
        Some((received, total)) => {
            Json(json!({ "received": received, "total": total })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, &PieceError::Unknown.to_string()),
    }
}

/// Where a piece goes.
#[derive(Deserialize)]
struct PieceQuery {
    offset: usize,
    total: usize,
    sha256: String,
}

/// `PUT /images/uploads/{ticket}?offset=…&total=…&sha256=…` with the piece.
async fn piece(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    Query(q): Query<PieceQuery>,
    body: Bytes,
) -> Response {
    let Some(policy) = state.inner.images.clone() else {
        return error(StatusCode::NOT_FOUND, "images are switched off on this hub");
    };
    let piece = Piece {
        offset: q.offset,
        total: q.total,
        sha256: &q.sha256,
        data: &body,
    };
    let progress = state
        .inner
        .images_book
        .uploads()
        .piece(&ticket, piece, Instant::now());
    let complete = match progress {
        Ok(Progress::More {
            received,
            total,
            asked,
        }) => {
            let progress = ServerMessage::ImageProgress {
                from: asked.from.to_string(),
                received,
                total,
            };
            state
                .inner
                .presence
                .send_to(&asked.room, asked.by, progress);
            return Json(json!({ "received": received, "total": total })).into_response();
        }
        Ok(Progress::Done(c)) => c,
        Err(e @ PieceError::Gap { received }) => {
            let body = json!({ "error": e.to_string(), "received": received });
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        Err(e @ PieceError::Unknown) => return error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ PieceError::Refused(_)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())
        }
        Err(e @ PieceError::Corrupted) => {
            tracing::warn!(ticket = %ticket.get(..8).unwrap_or(""), "image did not match its SHA-256; starting over");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": e.to_string(), "received": 0 })),
            )
                .into_response();
        }
        Err(e @ PieceError::Busy) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let total = complete.bytes.len();
    match store(&state, policy, complete).await {
        Ok(id) => Json(json!({ "received": total, "total": total, "image": id })).into_response(),
        Err(why) => {
            tracing::error!(error = %why, "an image could not be stored");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the hub could not store the image; ask for it again",
            )
        }
    }
}

/// Checks, seals and files a complete image, logs it and shows it to whoever
/// asked; returns its id.
async fn store(state: &AppState, policy: ImagePolicy, c: Complete) -> Result<String, String> {
    let image = format::read(&c.bytes).ok_or("not a JPEG or PNG image")?;
    let id = random_id().ok_or("no randomness for an id")?;
    let path = policy.dir.join(format!("{id}.img"));
    let (key, file) = (policy.key.clone(), path.clone());
    let bytes = c.bytes;
    let size = bytes.len();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        create_private_dir(file.parent().unwrap_or(std::path::Path::new(".")))?;
        match &key {
            Some(key) => carecall_sfu::recording::seal_bytes(&file, key, &bytes),
            None => std::fs::write(&file, &bytes),
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let asked = c.asked;
    tracing::info!(
        room = %asked.room, image = %id, from = %asked.from, by = %asked.by,
        width = image.width, height = image.height, size,
        upload_ms = c.upload_time.as_millis() as u64,
        "image stored"
    );
    state.emit(CallEvent::ImageStored {
        room: asked.room.clone(),
        image: id.clone(),
        from: asked.from.to_string(),
        asked_by: asked.by.to_string(),
        mime: image.mime,
        width: image.width,
        height: image.height,
        size: size as u64,
        sha256: c.sha256.clone(),
        path,
        encrypted: policy.key.is_some(),
        upload_ms: c.upload_time.as_millis() as u64,
        asked_at: asked.at,
        at: SystemTime::now(),
    });
    let (url, expires) = super::link(&policy, &id);
    let shown = ServerMessage::Image {
        image: id.clone(),
        from: asked.from.to_string(),
        mime: image.mime.into(),
        width: image.width,
        height: image.height,
        size: size as u64,
        sha256: c.sha256,
        url,
        expires,
    };
    state.inner.presence.send_to(&asked.room, asked.by, shown);
    Ok(id)
}

/// The images directory, readable by the hub's user only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
