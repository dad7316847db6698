//! The clinical record's API for the hub console and the dashboard:
//! attaching residents to the call a clinician is in, listing them (each
//! look audited), and the audit trail for admins.

use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Actor};
use super::completion;
use super::outcome::Outcome;
use super::residents::{self, Resident};

use crate::accounts::{AccountRole, AdminSession};
use crate::api_error::ApiError;
use crate::auth::ClientIp;
use crate::clock::now_ms;
use crate::hub::unavailable;
use crate::state::AdminState;
pub(crate) use completion::plans_for_home;

/// What the console posts to attach a resident.
#[derive(Deserialize)]
pub(crate) struct NewResident {
    nhs_number: String,
    name: String,
    birth_date: String,
}

/// How long an attach looks again for a join when other nodes share the
/// call log: the join may have reached another node, whose writer this
/// node cannot wait for as it waits for its own.
const OTHER_NODES_GRACE: Duration = Duration::from_secs(3);

/// Between two looks: a join lands within a few hundred milliseconds, and
/// this keeps one attach to about a dozen reads of the database.
const LOOK_AGAIN_EVERY: Duration = Duration::from_millis(250);

/// Why an attach found nothing to attach to.
enum NotAttached {
    NoSuchCall,
    /// Nobody is in the call. `look_again`: the call is in progress and
    /// other nodes write the call log, so a join may yet land.
    Empty {
        look_again: bool,
    },
}

impl NotAttached {
    fn error(self) -> ApiError {
        ApiError::not_found(match self {
            NotAttached::NoSuchCall => "no such call",
            NotAttached::Empty { .. } => "nobody is in this call now",
        })
    }
}

fn actor(me: &AdminSession, from: ClientIp) -> Actor {
    Actor {
        account: me.name.clone(),
        from: from.0,
    }
}

/// Only clinicians and specialists write residents' records: anyone else
/// is refused what they were `doing`.
fn clinical(me: &AdminSession, doing: &str) -> Result<(), ApiError> {
    match me.role {
        AccountRole::Clinician | AccountRole::Specialist => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "only clinicians and specialists {doing}"
        ))),
    }
}

/// `POST /admin/api/hub/calls/{id}/residents`: a clinician or specialist
/// attaches a resident to the hub call they are in: one encounter.
pub(crate) async fn attach(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    from: ClientIp,
    Path(hub_call): Path<i64>,
    Json(req): Json<NewResident>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    clinical(&me, "attach residents to a call")?;
    let today = jiff::Timestamp::now().to_zoned(state.zone.clone()).date();
    let resident = Resident::new(&req.nhs_number, &req.name, &req.birth_date, today)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (key, who) = (state.record_key.clone(), actor(&me, from));
    // A clinician may attach the moment the call is joined: the join is
    // written to the call log behind a queue, so wait for it to land.
    if !state.calls.call_log_caught_up().await {
        tracing::warn!(
            hub_call,
            "call log behind by more than 5 s: attaching on what it holds"
        );
    }
    let started = Instant::now();
    let encounter = loop {
        let (key, who, resident) = (key.clone(), who.clone(), resident.clone());
        let done = crate::blocking_locked(&state.call_log, move |log| {
            let Some(call) = log.queued_call(hub_call)? else {
                return Ok(Err(NotAttached::NoSuchCall));
            };
            // A read first: the attach's write (and the wake of hook
            // delivery) only once someone is in the call.
            if log
                .read(|c| crate::call_log::open_call(c, &call.room))?
                .is_none()
            {
                let look_again = log.shared() && call.in_progress();
                return Ok(Err(NotAttached::Empty { look_again }));
            }
            log.change(|c| {
                residents::attach(
                    c,
                    &key,
                    &call.room,
                    Some(hub_call),
                    &resident,
                    &who,
                    now_ms(),
                )
            })
            .map(|id| id.ok_or(NotAttached::Empty { look_again: false }))
        })
        .await;
        match done.map_err(unavailable)? {
            Err(NotAttached::Empty { look_again: true })
                if started.elapsed() < OTHER_NODES_GRACE =>
            {
                tokio::time::sleep(LOOK_AGAIN_EVERY).await;
            }
            done => break done.map_err(NotAttached::error)?,
        }
    };
    tracing::info!(account = %me.name, hub_call, encounter, "resident attached");
    Ok((StatusCode::CREATED, Json(json!({ "encounter": encounter }))))
}

/// `GET /admin/api/hub/calls/{id}/residents`: the residents attached to a
/// hub call, with their identifiers (hub staff only; audited).
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    from: ClientIp,
    Path(hub_call): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let (key, who) = (state.record_key.clone(), actor(&me, from));
    let encounters = crate::blocking_locked(&state.call_log, move |log| {
        log.change(|c| residents::of_hub_call(c, &key, hub_call, &who, now_ms()))
    })
    .await
    .map_err(unavailable)?;
    Ok(Json(json!({ "encounters": encounters })))
}

/// `POST /admin/api/encounters/{id}/outcome`: the clinician records (or
/// amends) an encounter's outcome and care plan; `encounter.completed`
/// goes to the record hooks.
pub(crate) async fn outcome(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    from: ClientIp,
    Path(id): Path<i64>,
    Json(outcome): Json<Outcome>,
) -> Result<Json<Value>, ApiError> {
    clinical(&me, "record an outcome")?;
    outcome
        .check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (key, who) = (state.record_key.clone(), actor(&me, from));
    let done = crate::blocking_locked(&state.call_log, move |log| {
        log.change(|c| completion::record(c, &key, log.hooks(), id, &outcome, &who, now_ms()))
    })
    .await;
    let Some(amended) = done.map_err(unavailable)? else {
        return Err(ApiError::not_found(format!("no encounter {id}")));
    };
    tracing::info!(account = %me.name, encounter = id, amended, "outcome recorded");
    Ok(Json(json!({ "encounter": id, "amended": amended })))
}

/// How much of the audit trail to show.
#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    200
}

/// `GET /admin/api/outcomes/missing`: consultations with a clinician that
/// ended past the due time without an outcome (admins).
pub(crate) async fn missing(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let due = state.queue.outcome_due.as_millis() as i64;
    let calls = crate::blocking_locked(&state.call_log, move |log| {
        log.read(|c| completion::missing_outcomes(c, now_ms(), due))
    })
    .await
    .map_err(unavailable)?;
    Ok(Json(
        json!({ "missing": calls, "due_hours": due / 3_600_000 }),
    ))
}

/// `GET /admin/api/audit.csv`: the whole audit trail as CSV (admins).
pub(crate) async fn trail_csv(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let zone = state.zone.clone();
    let entries = crate::blocking_locked(&state.call_log, move |log| {
        log.read(|c| audit::latest(c, u32::MAX))
    })
    .await
    .map_err(unavailable)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"carecall-audit.csv\"",
            ),
        ],
        audit::csv(&entries, &zone),
    )
        .into_response())
}

/// `GET /admin/api/audit`: the latest entries of the audit trail (admins).
pub(crate) async fn trail(
    State(state): State<AdminState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.clamp(1, 10_000);
    let entries = crate::blocking_locked(&state.call_log, move |log| {
        log.read(|c| audit::latest(c, limit))
    })
    .await
    .map_err(unavailable)?;
    Ok(Json(json!({ "entries": entries })))
}
