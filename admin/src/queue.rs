//! The call queue over HTTP. Care homes call with their permanent home link
//! (no session: the link is the permission, and it only ever shows the
//! home its own call); operators see the queue and answer from a signed-in
//! session (see [`crate::hub`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use carecall_signalling::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::call_log::{queue_label, CallAsk, CallLog, Home, QueuedCall};
use crate::clock::now_ms;
use crate::home_links::HomeLinkError;
use crate::hub::{join_link, unavailable};

/// How long a home's presses of Call while every service is closed count as
/// the one call: ten minutes.
const CLOSED_CALL_REPEATS_MS: i64 = 10 * 60 * 1000;
use crate::api_error::ApiError;
use crate::state::AdminState;
use crate::AdminError;

/// Longest free-text reason a home may give.
const MAX_REASON: usize = 500;

/// The home a token names, if it is valid and not withdrawn.
pub(crate) fn home_of(
    log: &CallLog,
    links: &crate::home_links::HomeLinks,
    token: &str,
) -> Result<Result<Home, HomeLinkError>, AdminError> {
    let (id, version) = match links.read(token) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(match log.home(&id)? {
        Some(h) if h.revoked_at_ms.is_none() && h.link_version == version => Ok(h),
        _ => Err(HomeLinkError::Withdrawn),
    })
}

fn refused(e: HomeLinkError) -> ApiError {
    ApiError::forbidden(e.to_string())
}

/// Where a call stands for its home: its place in its queue and the
/// estimated wait while it waits (and the hub's phone number once nobody
/// has answered for too long); who is with them and the way in once
/// answered.
fn status(
    state: &AdminState,
    call: &QueuedCall,
    queue: &[QueuedCall],
    mean_wait: Option<f64>,
) -> CallStatus {
    let position = queue
        .iter()
        .filter(|c| c.queue_name == call.queue_name)
        .position(|c| c.id == call.id)
        .map(|i| i + 1);
    let join = call
        .in_progress()
        .then(|| join_link(state, &call.room, Role::Home, &call.home_name))
        .flatten();
    let waited = now_ms() - call.waiting_since_ms;
    let no_answer = (call.state == "waiting"
        && waited >= state.queue.no_answer_after.as_millis() as i64)
        .then(|| NoAnswer {
            waited_seconds: waited / 1000,
            phone: state.queue.hub_phone.clone(),
        });
    // Every service was closed, or an operator declined: where else to turn.
    let closed = (call.state == "closed").then(|| state.hours.get().closed.clone());
    let declined = (call.state == "declined").then(|| Declined {
        reason: call.declined_reason.clone(),
        phone: state.queue.hub_phone.clone(),
    });
    CallStatus {
        call: call.id,
        state: call.state.clone(),
        closed,
        declined,
        queue: queue_label(&call.queue_name).to_owned(),
        position,
        estimated_wait_seconds: position.zip(mean_wait).map(|(p, w)| (p as f64 * w).round()),
        no_answer,
        answered_by: call.answered_by.clone(),
        with_you: call.held_by.clone(),
        join_url: join,
    }
}

/// A home's call as its page shows it (see [`status`]).
#[derive(Serialize)]
pub(crate) struct CallStatus {
    call: i64,
    state: String,
    closed: Option<crate::service_hours::ClosedNotice>,
    declined: Option<Declined>,
    queue: String,
    position: Option<usize>,
    estimated_wait_seconds: Option<f64>,
    no_answer: Option<NoAnswer>,
    answered_by: Option<String>,
    with_you: Option<String>,
    join_url: Option<String>,
}

/// Nobody has answered for too long: how long, and the hub's phone.
#[derive(Serialize)]
struct NoAnswer {
    waited_seconds: i64,
    phone: Option<String>,
}

/// An operator declined the call: why, and the hub's phone.
#[derive(Serialize)]
struct Declined {
    reason: Option<String>,
    phone: Option<String>,
}

/// What the "Call the hub" page posts.
#[derive(Deserialize)]
pub(crate) struct CallRequest {
    token: String,
    #[serde(default)]
    urgent: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    initials: String,
    /// One of the hub's categories; empty when not chosen.
    #[serde(default)]
    category: String,
}

/// `POST /home/api/calls`: a home calls the hub.
pub(crate) async fn call(
    State(state): State<AdminState>,
    Json(req): Json<CallRequest>,
) -> Result<(StatusCode, Json<CallStatus>), ApiError> {
    let reason = req.reason.trim().to_owned();
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "the reason is at most {MAX_REASON} characters"
        )));
    }
    let initials = req.initials.trim().to_uppercase();
    if initials.chars().count() > 4 || !initials.chars().all(|c| c.is_alphabetic()) {
        return Err(ApiError::bad_request(
            "initials only: up to 4 letters, no names or numbers",
        ));
    }
    let category = req.category.trim().to_owned();
    if !(category.is_empty() || state.queue.reason_categories.contains(&category)) {
        return Err(ApiError::bad_request(format!(
            "choose what the call is about from the list: {}",
            state.queue.reason_categories.join(", ")
        )));
    }
    let links = state.home_links.clone();
    let st = state.clone();
    let ask = CallAsk {
        urgent: req.urgent,
        reason,
        initials,
        reason_category: category,
    };
    let result = crate::blocking_locked(&state.call_log, move |log| {
        let home = match home_of(log, &links, &req.token)? {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let now = now_ms();
        // Pressed again while waiting: the same place in the queue. Pressed
        // again while closed: the same closed call, for a while.
        let (call, again) = match (log.waiting_call_of(&home.id)?, st.hours.get().service_at(now)) {
            (Some(waiting), _) => (waiting, Some("already_waiting")),
            (None, Some(service)) => (log.queue_call(&home, &ask, service, now)?, None),
            (None, None) => match log.closed_call_of(&home.id, now - CLOSED_CALL_REPEATS_MS)? {
                Some(closed) => (closed, Some("already_closed")),
                None => (log.closed_call(&home, &ask, now)?, None),
            },
        };
        tracing::info!(home = ?home.name, call = call.id, urgent = req.urgent, again, state = %call.state, "home called the hub");
        let queue = log.queue()?;
        Ok(Ok((status(&st, &call, &queue, log.mean_wait_seconds()?), again)))
    })
    .await;
    match result.map_err(unavailable)?.map_err(refused)? {
        (body, None) => {
            state.hub_changed();
            Ok((StatusCode::CREATED, Json(body)))
        }
        (body, Some(why)) => {
            state
                .refusals
                .refuse(carecall_sfu::Surface::HomeCall, why, &body.call);
            Ok((StatusCode::OK, Json(body)))
        }
    }
}

/// The home's token on its status and cancel requests.
#[derive(Deserialize)]
pub(crate) struct HomeToken {
    t: String,
}

/// `GET /home/api/calls/{id}?t=…`: the home's own call, and only its own.
pub(crate) async fn call_status(
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    Query(q): Query<HomeToken>,
) -> Result<Json<CallStatus>, ApiError> {
    let links = state.home_links.clone();
    let st = state.clone();
    let result = crate::blocking_locked(&state.call_log, move |log| {
        let home = match home_of(log, &links, &q.t)? {
            Ok(h) => h,
            Err(e) => return Ok(Err(Some(e))),
        };
        match log.queued_call(id)? {
            Some(call) if call.home_id == home.id => {
                let queue = log.queue()?;
                Ok(Ok(status(&st, &call, &queue, log.mean_wait_seconds()?)))
            }
            _ => Ok(Err(None)),
        }
    })
    .await;
    match result.map_err(unavailable)? {
        Ok(body) => Ok(Json(body)),
        Err(Some(e)) => Err(refused(e)),
        Err(None) => Err(ApiError::not_found("this home has no such call")),
    }
}

/// The home's name and the hub's call categories, for its call form.
#[derive(Serialize)]
pub(crate) struct HomeForm {
    home: String,
    categories: Vec<String>,
}

/// `GET /home/api/form?t=…`: what the home's call form offers (the hub's
/// categories), once the link is known to be good.
pub(crate) async fn form(
    State(state): State<AdminState>,
    Query(q): Query<HomeToken>,
) -> Result<Json<HomeForm>, ApiError> {
    let links = state.home_links.clone();
    let home = crate::blocking_locked(&state.call_log, move |log| home_of(log, &links, &q.t))
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    Ok(Json(HomeForm {
        home: home.name,
        categories: state.queue.reason_categories.clone(),
    }))
}

/// `GET /home/api/plans?t=…`: the care plans written for this home's
/// calls in the last 72 hours.
pub(crate) async fn plans(
    State(state): State<AdminState>,
    Query(q): Query<HomeToken>,
) -> Result<Json<Value>, ApiError> {
    let (links, key) = (state.home_links.clone(), state.record_key.clone());
    let result = crate::blocking_locked(&state.call_log, move |log| {
        let home = match home_of(log, &links, &q.t)? {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        log.read(|c| crate::records::api::plans_for_home(c, &key, &home.id, now_ms()))
            .map(Ok)
    })
    .await;
    let plans = result.map_err(unavailable)?.map_err(refused)?;
    Ok(Json(json!({ "plans": plans })))
}

/// `POST /home/api/calls/{id}/cancel?t=…`
pub(crate) async fn cancel(
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    Query(q): Query<HomeToken>,
) -> Result<Json<Value>, ApiError> {
    let links = state.home_links.clone();
    let result = crate::blocking_locked(&state.call_log, move |log| {
        let home = match home_of(log, &links, &q.t)? {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(log.cancel_call(id, &home.id, now_ms())?))
    })
    .await;
    if !result.map_err(unavailable)?.map_err(refused)? {
        return Err(ApiError::conflict("the call is no longer waiting"));
    }
    state.hub_changed();
    Ok(Json(json!({ "cancelled": id })))
}

/// `GET /admin/api/queue`: waiting calls, urgent first, then by waiting time.
pub(crate) async fn queue(
    State(state): State<AdminState>,
    axum::Extension(me): axum::Extension<crate::AdminSession>,
) -> Result<Json<Value>, ApiError> {
    if !me.role.answers_calls() {
        return Err(ApiError::forbidden(
            "specialists are shown the calls they are invited to, not the queue",
        ));
    }
    let calls = crate::blocking_locked(&state.call_log, |log| log.queue())
        .await
        .map_err(unavailable)?;
    let now = now_ms();
    let list: Vec<_> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| crate::hub::listed(c, i + 1, now, &state.queue))
        .collect();
    Ok(Json(json!({ "queue": list })))
}
