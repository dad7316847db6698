//! The admin API for hook deliveries given up on: list them, and put one
//! back for delivery once the receiver is fixed.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::accounts::AdminSession;
use crate::api_error::ApiError;
use crate::state::AdminState;

/// `GET /admin/api/hooks/dead-letters`: newest first.
pub(crate) async fn dead_letters(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let list = crate::blocking_locked(&state.call_log, |log| log.dead_letters())
        .await
        .map_err(|e| {
            ApiError::unavailable("hook dead letters", e, "the hook outbox cannot be read")
        })?;
    Ok(Json(json!({ "dead_letters": list })))
}

/// `POST /admin/api/hooks/dead-letters/{seq}/retry`: back in the outbox,
/// in its place in its consultation's order.
pub(crate) async fn retry(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(seq): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let found = crate::blocking_locked(&state.call_log, move |log| log.retry_dead_letter(seq))
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "hook dead letter retry",
                e,
                "the hook outbox cannot be written",
            )
        })?;
    if !found {
        return Err(ApiError::not_found(format!("no dead letter {seq}")));
    }
    tracing::info!(admin = %admin.name, seq, "hook dead letter put back for delivery");
    Ok(Json(json!({ "retrying": seq })))
}
