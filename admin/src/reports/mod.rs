//! Service levels and activity for the commissioner and the hub's
//! analysts: `GET /admin/api/reports/summary` (the figures for a period and
//! the one before it), and the rows behind them as CSV or JSON (one per call,
//! one per encounter). The definitions are in `docs/reports.md`.

pub mod figures;
pub mod rows;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::civil::Date;
use jiff::ToSpan;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::ApiError;
use crate::hub::unavailable;
use crate::state::AdminState;
use figures::Report;
use rows::{CallRow, EncounterRow};

/// The longest period one request may cover.
const MAX_DAYS: i64 = 366;

/// What a report asks for: the local days (both included) and, optionally,
/// one home and one service.
#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    from: Option<Date>,
    to: Option<Date>,
    home: Option<String>,
    service: Option<String>,
}

/// A checked period: its days and its bounds in ms since the epoch.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: Date,
    to: Date,
    from_ms: i64,
    to_ms: i64,
}

impl Span {
    fn new(from: Date, to: Date, zone: &jiff::tz::TimeZone) -> Result<Span, String> {
        let days = from.until(to).map(|s| s.get_days()).unwrap_or(-1);
        if days < 0 {
            return Err(format!("from ({from}) is after to ({to})"));
        }
        if i64::from(days) >= MAX_DAYS {
            return Err(format!("a report covers at most {MAX_DAYS} days"));
        }
        let start = |d: Date| {
            d.to_zoned(zone.clone())
                .map(|z| z.timestamp().as_millisecond())
                .map_err(|e| e.to_string())
        };
        let after = to.tomorrow().map_err(|e| e.to_string())?;
        Ok(Span {
            from,
            to,
            from_ms: start(from)?,
            to_ms: start(after)?,
        })
    }

    /// The same number of days just before.
    fn previous(&self, zone: &jiff::tz::TimeZone) -> Result<Span, String> {
        let days = self
            .from
            .until(self.to)
            .map_err(|e| e.to_string())?
            .get_days()
            + 1;
        let to = self.from.yesterday().map_err(|e| e.to_string())?;
        let from = self
            .from
            .checked_sub(i64::from(days).days())
            .map_err(|e| e.to_string())?;
        Span::new(from, to, zone)
    }
}

impl ReportQuery {
    /// The period asked for; by default the last 7 days, today included.
    fn span(&self, state: &AdminState) -> Result<Span, String> {
        let today = jiff::Timestamp::now().to_zoned(state.zone.clone()).date();
        let to = self.to.unwrap_or(today);
        let from = self
            .from
            .unwrap_or_else(|| to.checked_sub(6.days()).unwrap_or(to));
        Span::new(from, to, &state.zone)
    }

    fn keeps_call(&self, c: &CallRow) -> bool {
        self.home.as_ref().is_none_or(|h| *h == c.home_id)
            && self
                .service
                .as_ref()
                .is_none_or(|s| c.service.as_deref().unwrap_or(CLOSED) == s)
    }

    fn keeps_encounter(&self, e: &EncounterRow) -> bool {
        self.home
            .as_ref()
            .is_none_or(|h| e.home_id.as_ref() == Some(h))
            && self
                .service
                .as_ref()
                .is_none_or(|s| e.service.as_ref() == Some(s))
    }
}

/// How reports name calls made while every service was closed.
const CLOSED: &str = "(closed)";

/// The calls and encounters of `span`, filtered as `q` asks.
async fn rows_of(
    state: &AdminState,
    span: Span,
    q: &ReportQuery,
) -> Result<(Vec<CallRow>, Vec<EncounterRow>), crate::AdminError> {
    let (hours, settings) = (state.hours.get(), state.queue.clone());
    let (mut calls, mut encounters) = crate::blocking_locked(&state.call_log, move |log| {
        log.read(|c| {
            Ok((
                rows::Reading {
                    hours: &hours,
                    settings: &settings,
                }
                .between(c, span.from_ms, span.to_ms)?,
                rows::encounters(c, span.from_ms, span.to_ms, hours.zone())?,
            ))
        })
    })
    .await?;
    calls.retain(|c| q.keeps_call(c));
    encounters.retain(|e| q.keeps_encounter(e));
    Ok((calls, encounters))
}

/// The reports page's figures: the period asked for and the one before it,
/// with what the page's filters offer.
#[derive(Serialize)]
pub(crate) struct Summary {
    from: Date,
    to: Date,
    home: Option<String>,
    service: Option<String>,
    targets: Targets,
    report: Report,
    previous: Previous,
    homes: Vec<HomeName>,
    services: Vec<String>,
    decline_reasons: Vec<String>,
}

/// The answer-time targets the figures are read against.
#[derive(Serialize)]
struct Targets {
    urgent_seconds: u64,
    routine_seconds: u64,
}

/// The period before, and its figures.
#[derive(Serialize)]
struct Previous {
    from: Date,
    to: Date,
    report: Report,
}

/// A home the page can filter by.
#[derive(Serialize)]
struct HomeName {
    id: String,
    name: String,
}

/// `GET /admin/api/reports/summary?from=&to=&home=&service=`: the figures
/// for the period and for the same number of days before it.
pub(crate) async fn summary(
    State(state): State<AdminState>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Summary>, ApiError> {
    let span = q.span(&state).map_err(ApiError::bad_request)?;
    let previous = span.previous(&state.zone).map_err(ApiError::bad_request)?;
    let now = rows_of(&state, span, &q).await.map_err(unavailable)?;
    let before = rows_of(&state, previous, &q).await.map_err(unavailable)?;
    let homes = crate::blocking_locked(&state.call_log, |log| log.homes())
        .await
        .map_err(unavailable)?;
    let hours = state.hours.get();
    let mut services: Vec<&str> = hours.services().collect();
    services.push(CLOSED);
    Ok(Json(Summary {
        from: span.from,
        to: span.to,
        home: q.home,
        service: q.service,
        targets: Targets {
            urgent_seconds: state.queue.urgent_target.as_secs(),
            routine_seconds: state.queue.routine_target.as_secs(),
        },
        report: Report::of(&now.0, &now.1),
        previous: Previous {
            from: previous.from,
            to: previous.to,
            report: Report::of(&before.0, &before.1),
        },
        homes: homes
            .into_iter()
            .map(|h| HomeName {
                id: h.id,
                name: h.name,
            })
            .collect(),
        services: services.into_iter().map(str::to_owned).collect(),
        decline_reasons: state.queue.decline_reasons.clone(),
    }))
}

/// The rows of a period as a download: CSV or JSON.
async fn export(
    state: AdminState,
    q: ReportQuery,
    name: &str,
    csv: bool,
    render: impl FnOnce(Vec<CallRow>, Vec<EncounterRow>) -> (String, serde_json::Value),
) -> Result<Response, ApiError> {
    let span = q.span(&state).map_err(ApiError::bad_request)?;
    let (calls, encounters) = rows_of(&state, span, &q).await.map_err(unavailable)?;
    let (text, value) = render(calls, encounters);
    if !csv {
        return Ok(Json(value).into_response());
    }
    let disposition = format!(
        "attachment; filename=\"carecall-{name}-{}-to-{}.csv\"",
        span.from, span.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

/// The OpenAPI description of these routes, kept beside the code.
const OPENAPI: &str = include_str!("../../api/reports.openapi.json");

/// `GET /admin/api/reports/openapi.json`: the description of these routes
/// for the hub's analysts' tools.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /admin/api/reports/calls.csv`: one row per call from a home.
pub(crate) async fn calls_csv(
    State(state): State<AdminState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    export(state, q, "calls", true, |calls, _| {
        (rows::calls_csv(&calls), json!(null))
    })
    .await
}

/// `GET /admin/api/reports/calls.json`: the same rows as JSON.
pub(crate) async fn calls_json(
    State(state): State<AdminState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    export(state, q, "calls", false, |calls, _| {
        (String::new(), json!({ "calls": calls }))
    })
    .await
}

/// `GET /admin/api/reports/encounters.csv`: one row per encounter.
pub(crate) async fn encounters_csv(
    State(state): State<AdminState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    export(state, q, "encounters", true, |_, e| {
        (rows::encounters_csv(&e), json!(null))
    })
    .await
}

/// `GET /admin/api/reports/encounters.json`: the same rows as JSON.
pub(crate) async fn encounters_json(
    State(state): State<AdminState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    export(state, q, "encounters", false, |_, e| {
        (String::new(), json!({ "encounters": e }))
    })
    .await
}
