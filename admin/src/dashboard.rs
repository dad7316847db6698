//! The dashboard's API: live calls with each participant's media, the call
//! history with activity, one past call in detail, and ending a call.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;

use crate::activity::Activity;

use crate::accounts::AdminSession;
use crate::activity::activity;
use crate::api_error::ApiError;
use crate::clock::local_time;
use crate::history::HistoryRow;
use crate::state::AdminState;

/// Calls listed on the dashboard, newest first; the CSV has them all.
const RECENT_CALLS: usize = 50;

/// What the ended participants' screens say.
const ENDED_MESSAGE: &str = "The hub has ended this call. Thank you.";

fn unavailable(what: &str, e: crate::AdminError) -> ApiError {
    ApiError::unavailable(what, e, &format!("{what} unavailable"))
}

/// A live call on the dashboard.
#[derive(Serialize)]
pub(crate) struct LiveRoom {
    room: String,
    participants: Vec<LiveParticipant>,
}

/// One participant of a live call and their media now (`None` before the
/// media flows).
#[derive(Serialize)]
pub(crate) struct LiveParticipant {
    badge: Option<crate::quality::Badge>,
    reasons: Option<Vec<String>>,
    participant: String,
    role: String,
    receive_kbps: Option<u64>,
    send_kbps: Option<u64>,
    rtt_ms: Option<u64>,
    receive_loss: Option<f32>,
    packets_lost_to_it: Option<u64>,
    transport: Option<&'static str>,
    reconnects: Option<u32>,
}

/// `GET /admin/api/rooms`: the live calls, with each participant's media.
pub(crate) async fn rooms(State(state): State<AdminState>) -> Json<Vec<LiveRoom>> {
    let snapshot = state.snapshot().await;
    let body: Vec<_> = snapshot
        .rooms()
        .into_iter()
        .map(|room| {
            let people: Vec<_> = snapshot
                .members
                .iter()
                .filter(|m| m.0 == room)
                .map(|(_, id, role)| {
                    let media = snapshot.media_of(room, *id);
                    let (badge, reasons) = media.map(crate::quality::badge).unzip();
                    LiveParticipant {
                        badge,
                        reasons,
                        participant: id.to_string(),
                        role: role.to_string(),
                        receive_kbps: media.map(|s| s.receive_bps / 1000),
                        send_kbps: media.map(|s| s.send_bps / 1000),
                        rtt_ms: media.and_then(|s| s.rtt).map(|r| r.as_millis() as u64),
                        receive_loss: media.map(|s| s.receive_loss),
                        packets_lost_to_it: media.map(|s| s.sent_packets_lost),
                        transport: media.and_then(|s| s.transport),
                        reconnects: media.map(|s| s.reconnects),
                    }
                })
                .collect();
            LiveRoom {
                room: room.to_owned(),
                participants: people,
            }
        })
        .collect();
    Json(body)
}

/// The dashboard's history: the latest calls and the activity charts.
#[derive(Serialize)]
pub(crate) struct History {
    calls: Vec<HistoryRow>,
    activity: Activity,
}

/// `GET /admin/api/history`: the latest calls and the activity charts.
pub(crate) async fn history(State(state): State<AdminState>) -> Result<Json<History>, ApiError> {
    let calls = crate::blocking_locked(&state.call_log, |log| log.calls())
        .await
        .map_err(|e| unavailable("call history", e))?;
    let today = jiff::Timestamp::now().to_zoned(state.zone.clone()).date();
    let recent: Vec<HistoryRow> = calls
        .iter()
        .rev()
        .take(RECENT_CALLS)
        .map(|c| HistoryRow::of(c, &state.hours.get()))
        .collect();
    Ok(Json(History {
        calls: recent,
        activity: activity(&calls, &state.hours.get(), today),
    }))
}

/// One past call: the history's row, each participant's session with its
/// local times, and the care home's way through the queue, if it came that
/// way.
#[derive(Serialize)]
pub(crate) struct CallShown {
    call: HistoryRow,
    sessions: Vec<SessionShown>,
    hub_call: Option<HubCallShown>,
}

/// A participant's session, with its times as the hub reads them.
#[derive(Serialize)]
pub(crate) struct SessionShown {
    session: crate::call_log::SessionDetail,
    joined_at: String,
    left_at: Option<String>,
}

/// A care home's call through the queue.
#[derive(Serialize)]
pub(crate) struct HubCallShown {
    id: i64,
    home: String,
    urgent: bool,
    reason: String,
    initials: String,
    answered_by: Option<String>,
    waited_seconds: Option<f64>,
    steps: Vec<HubCallStep>,
}

/// One step of a queued call, from queued to ended.
#[derive(Serialize)]
pub(crate) struct HubCallStep {
    kind: String,
    actor: String,
    target: String,
    at: String,
    at_ms: i64,
    after_seconds: f64,
}

/// `GET /admin/api/calls/{id}`: one call, each participant's link over time.
pub(crate) async fn call_detail(
    State(state): State<AdminState>,
    Path(id): Path<i64>,
) -> Result<Json<CallShown>, ApiError> {
    let found = crate::blocking_locked(&state.call_log, move |log| {
        let Some(d) = log.call_detail(id)? else {
            return Ok(None);
        };
        let hub_call = match log.hub_call_in(&d.call.room)? {
            Some(c) => Some((log.queue_events(c.id)?, c)),
            None => None,
        };
        Ok(Some((d, hub_call)))
    })
    .await;
    let Some((d, hub_call)) = found.map_err(|e| unavailable("call detail", e))? else {
        return Err(ApiError::not_found(format!("no call {id}")));
    };
    let zone = &state.zone;
    let sessions: Vec<_> = d
        .sessions
        .iter()
        .map(|s| SessionShown {
            joined_at: local_time(s.joined_at_ms, zone),
            left_at: s.left_at_ms.map(|t| local_time(t, zone)),
            session: s.clone(),
        })
        .collect();
    let hub_call = hub_call.map(|(events, c)| hub_call_shown(&c, &events, zone));
    Ok(Json(CallShown {
        call: HistoryRow::of(&d.call, &state.hours.get()),
        sessions,
        hub_call,
    }))
}

/// A care home's call through the queue: who called and why, and each step
/// from queued to ended with its local time and seconds since queued.
fn hub_call_shown(
    c: &crate::QueuedCall,
    events: &[crate::QueueEvent],
    zone: &jiff::tz::TimeZone,
) -> HubCallShown {
    let steps = events
        .iter()
        .map(|e| HubCallStep {
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            target: e.target.clone(),
            at: local_time(e.at_ms, zone),
            at_ms: e.at_ms,
            after_seconds: (e.at_ms - c.queued_at_ms) as f64 / 1000.0,
        })
        .collect();
    HubCallShown {
        id: c.id,
        home: c.home_name.clone(),
        urgent: c.urgent,
        reason: c.reason.clone(),
        initials: c.initials.clone(),
        answered_by: c.answered_by.clone(),
        waited_seconds: c
            .answered_at_ms
            .map(|a| (a - c.queued_at_ms) as f64 / 1000.0),
        steps,
    }
}

/// A call ended from the dashboard, and how many were in it.
#[derive(Serialize)]
pub(crate) struct Ended {
    room: String,
    participants: usize,
}

/// `POST /admin/api/rooms/{room}/end`: ends a live call. Everyone in it sees
/// that the hub ended it; their links still work if they need to rejoin.
pub(crate) async fn end_call(
    State(state): State<AdminState>,
    Extension(admin): Extension<AdminSession>,
    Path(room): Path<String>,
) -> Result<Json<Ended>, ApiError> {
    let ended = state.calls.presence().end_room(&room, ENDED_MESSAGE);
    if ended == 0 {
        return Err(ApiError::not_found(format!("no live call in room {room}")));
    }
    tracing::info!(admin = %admin.name, %room, participants = ended, "call ended from the dashboard");
    Ok(Json(Ended {
        room,
        participants: ended,
    }))
}
