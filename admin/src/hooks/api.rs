//! The admin API for hook deliveries given up on: list them, and put one
//! back for delivery once the receiver is fixed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::accounts::AdminSession;
use crate::routes::AdminState;

/// `GET /admin/api/hooks/dead-letters`: newest first.
pub(crate) async fn dead_letters(State(state): State<AdminState>) -> Response {
    match crate::blocking_locked(&state.history, |log| log.dead_letters()).await {
        Ok(list) => Json(json!({ "dead_letters": list })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "hook dead letters unreadable");
            crate::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hook outbox cannot be read",
            )
        }
    }
}

/// `POST /admin/api/hooks/dead-letters/{seq}/retry`: back in the outbox,
/// in its place in its consultation's order.
pub(crate) async fn retry(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(seq): Path<i64>,
) -> Response {
    match crate::blocking_locked(&state.history, move |log| log.retry_dead_letter(seq)).await {
        Ok(true) => {
            tracing::info!(admin = %admin.name, seq, "hook dead letter put back for delivery");
            Json(json!({ "retrying": seq })).into_response()
        }
        Ok(false) => crate::json_error(StatusCode::NOT_FOUND, format!("no dead letter {seq}")),
        Err(e) => {
            tracing::error!(error = %e, "hook dead letter retry failed");
            crate::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hook outbox cannot be written",
            )
        }
    }
}
