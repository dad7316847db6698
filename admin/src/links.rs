//! Join links made from the dashboard: the same signed, expiring links as
//! `carecall link`, for an admin who has no shell on the hub machine.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use carecall_signalling::{JoinClaims, Role};
use serde::{Deserialize, Serialize};

use crate::accounts::AdminSession;
use crate::api_error::ApiError;
use crate::state::AdminState;

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
) -> Result<Json<MadeLink>, ApiError> {
    if !(1..=MAX_LINK_HOURS).contains(&req.hours) {
        return Err(ApiError::bad_request(format!(
            "a link lasts 1 to {MAX_LINK_HOURS} hours"
        )));
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
    let link = state
        .signer
        .join_url(&state.base_url, &claims)
        .map_err(|e| ApiError::bad_request(format!("cannot make that link: {e}")))?;
    tracing::info!(admin = %admin.name, room = %req.room, role = %req.role, hours = req.hours, "join link made");
    Ok(Json(MadeLink {
        link,
        expires_unix: claims.exp,
    }))
}

/// A link made: the link, and when it stops working (Unix seconds).
#[derive(Serialize)]
pub(crate) struct MadeLink {
    link: String,
    expires_unix: u64,
}

/// A room whose links were withdrawn, and from when (Unix seconds) links
/// work again.
#[derive(Serialize)]
pub(crate) struct Withdrawn {
    room: String,
    revoked_before_unix: u64,
}

/// `POST /admin/api/rooms/{room}/revoke-links`: every join link to the room
/// made up to now stops working, at join and on resume; links made
/// afterwards work. For a link lost or forwarded where it should not be.
pub(crate) async fn revoke(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(room): Path<String>,
) -> Result<Json<Withdrawn>, ApiError> {
    let until = carecall_signalling::token::unix_now();
    let kept = {
        let room = room.clone();
        crate::blocking_locked(&state.call_log, move |log| log.revoke_links(&room, until)).await
    };
    kept.map_err(|e| ApiError::unavailable("join links", e, "links could not be withdrawn"))?;
    state.calls.revocations().revoke(&room, until);
    tracing::info!(room = ?room, by = %admin.name, "join links withdrawn");
    Ok(Json(Withdrawn {
        room,
        revoked_before_unix: until,
    }))
}
