//! Managing care homes from the dashboard: add, rename, withdraw a link,
//! issue a new one. The same as `carecall home …` on the command line.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::accounts::AdminSession;
use crate::api_error::ApiError;
use crate::call_log::Home;
use crate::clock::now_ms;
use crate::hub::unavailable;
use crate::state::AdminState;
use crate::AdminError;

/// A home as the dashboard shows it, with its link while it has one.
#[derive(Serialize)]
pub(crate) struct HomeShown {
    id: String,
    name: String,
    active: bool,
    link: Option<String>,
}

/// A home's latest checks beside its latest calls, for the helpdesk.
#[derive(Serialize)]
pub(crate) struct Helpdesk {
    home: String,
    checks: Vec<crate::check::CheckShown>,
    calls: Vec<crate::reports::rows::CallRow>,
}

/// Home `h` as the dashboard shows it.
fn shown(state: &AdminState, h: &Home) -> HomeShown {
    let link = h.revoked_at_ms.is_none().then(|| {
        format!(
            "{}/home?t={}",
            state.base_url,
            state.home_links.token(&h.id, h.link_version)
        )
    });
    HomeShown {
        id: h.id.clone(),
        name: h.name.clone(),
        active: h.revoked_at_ms.is_none(),
        link,
    }
}

/// `GET /admin/api/homes`
pub(crate) async fn list(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let homes = crate::blocking_locked(&state.call_log, |log| log.homes())
        .await
        .map_err(unavailable)?;
    let homes: Vec<_> = homes.iter().map(|h| shown(&state, h)).collect();
    Ok(Json(json!({ "homes": homes })))
}

/// How many of a home's checks and calls the helpdesk view shows.
const HELPDESK_ROWS: u32 = 10;

/// `GET /admin/api/homes/{id}/helpdesk`: the home's latest checks (run from
/// its page) beside its latest calls and how they went, for the helpdesk.
pub(crate) async fn helpdesk(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Helpdesk>, ApiError> {
    let (hours, settings, key) = (state.hours.get(), state.queue.clone(), id.clone());
    let calls = crate::blocking_locked(&state.call_log, move |log| {
        let Some(home) = log.home(&key)? else {
            return Ok(None);
        };
        let calls = log.read(|c| {
            crate::reports::rows::Reading {
                hours: &hours,
                settings: &settings,
            }
            .of_home(c, &key, HELPDESK_ROWS)
        })?;
        Ok(Some((home, calls)))
    })
    .await;
    let Some((home, calls)) = calls.map_err(unavailable)? else {
        return Err(ApiError::not_found(format!("no home {id}")));
    };
    let checks = crate::blocking_locked(&state.checks, move |c| c.of_home(&id, HELPDESK_ROWS))
        .await
        .map_err(unavailable)?;
    let checks: Vec<_> = checks
        .iter()
        .map(|c| crate::check::shown(c, &state.zone))
        .collect();
    Ok(Json(Helpdesk {
        home: home.name,
        checks,
        calls,
    }))
}

/// A home's name, as the dashboard posts it.
#[derive(Deserialize)]
pub(crate) struct Named {
    name: String,
}

fn refused_or_unavailable(e: AdminError) -> ApiError {
    match e {
        AdminError::BadAccount(why) => ApiError::bad_request(why),
        e => unavailable(e),
    }
}

/// `POST /admin/api/homes`: a new home and its link.
pub(crate) async fn add(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Json(req): Json<Named>,
) -> Result<(StatusCode, Json<HomeShown>), ApiError> {
    let home = crate::blocking_locked(&state.call_log, move |log| {
        log.add_home(&req.name, now_ms())
    })
    .await
    .map_err(refused_or_unavailable)?;
    tracing::info!(admin = %admin.name, home = ?home.name, id = %home.id, "home added");
    Ok((StatusCode::CREATED, Json(shown(&state, &home))))
}

/// What changes a home: its new name, a withdrawal or a new link.
enum Change {
    Rename(String),
    Revoke,
    Reissue,
}

async fn change(
    state: AdminState,
    admin: AdminSession,
    id: String,
    change: Change,
) -> Result<Json<HomeShown>, ApiError> {
    let key = id.clone();
    let done = crate::blocking_locked(&state.call_log, move |log| {
        let found = match &change {
            Change::Rename(name) => log.rename_home(&key, name)?,
            Change::Revoke => log.revoke_home(&key, now_ms())?,
            Change::Reissue => log.reissue_home(&key, now_ms())?.is_some(),
        };
        Ok(if found { log.home(&key)? } else { None })
    })
    .await;
    let Some(home) = done.map_err(refused_or_unavailable)? else {
        return Err(ApiError::not_found(format!("no active home {id}")));
    };
    tracing::info!(admin = %admin.name, home = ?home.name, id = %home.id, "home changed");
    // Consoles show homes' names, and a withdrawn or re-issued link cancels
    // the home's waiting call.
    state.hub_changed();
    Ok(Json(shown(&state, &home)))
}

/// `POST /admin/api/homes/{id}/rename`
pub(crate) async fn rename(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(id): Path<String>,
    Json(req): Json<Named>,
) -> Result<Json<HomeShown>, ApiError> {
    change(state, admin, id, Change::Rename(req.name)).await
}

/// `POST /admin/api/homes/{id}/revoke`: the home's link stops working now.
pub(crate) async fn revoke(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(id): Path<String>,
) -> Result<Json<HomeShown>, ApiError> {
    change(state, admin, id, Change::Revoke).await
}

/// `POST /admin/api/homes/{id}/reissue`: a new link; the old one stops.
pub(crate) async fn reissue(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(id): Path<String>,
) -> Result<Json<HomeShown>, ApiError> {
    change(state, admin, id, Change::Reissue).await
}
