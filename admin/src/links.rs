//! Join links made from the dashboard: the same signed, expiring links as
//! `carecall link`, for an admin who has no shell on the hub machine.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use carecall_signalling::{JoinClaims, Role};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::AdminSession;
use crate::routes::AdminState;

/// The longest a dashboard link lasts: a week.
pub const MAX_LINK_HOURS: u64 = 7 * 24;

/// What the dashboard's form posts.
#[derive(Deserialize)]
pub(crate) struct LinkRequest {
    room: String,
    role: Role,
    name: Option<String>,
    hours: u64,
}

/// `POST /admin/api/links`: a signed join link.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Json(req): Json<LinkRequest>,
) -> Response {
    let refuse = |why: String| crate::json_error(StatusCode::BAD_REQUEST, why);
    if !(1..=MAX_LINK_HOURS).contains(&req.hours) {
        return refuse(format!("a link lasts 1 to {MAX_LINK_HOURS} hours"));
    }
    let name = req
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| req.role.to_string());
    let claims = JoinClaims::lasting(
        &req.room,
        req.role,
        &name,
        std::time::Duration::from_secs(req.hours * 3600),
    );
    let expires = claims.exp;
    match state.signer.join_url(&state.base_url, &claims) {
        Ok(link) => {
            tracing::info!(admin = %admin.name, room = %req.room, role = %req.role, hours = req.hours, "join link made");
            Json(json!({ "link": link, "expires_unix": expires })).into_response()
        }
        Err(e) => refuse(format!("cannot make that link: {e}")),
    }
}

/// `POST /admin/api/rooms/{room}/revoke-links`: every join link to the room
/// made up to now stops working, at join and on resume; links made
/// afterwards work. For a link lost or forwarded where it should not be.
pub(crate) async fn revoke(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(room): Path<String>,
) -> Response {
    let until = carecall_signalling::token::unix_now();
    let kept = {
        let room = room.clone();
        crate::blocking_locked(&state.history, move |log| log.revoke_links(&room, until)).await
    };
    match kept {
        Ok(()) => {
            state.calls.revocations().revoke(&room, until);
            tracing::info!(room = ?room, by = %admin.name, "join links withdrawn");
            Json(json!({ "room": room, "revoked_before_unix": until })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "join links could not be withdrawn");
            crate::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "links could not be withdrawn",
            )
        }
    }
}
