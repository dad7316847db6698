//! The hub console's API: the live queue (over a WebSocket, pushed on every
//! change), answering, passing a call to a clinician or a named queue, and
//! inviting a specialist. Each step is stored (the call's history and its
//! record-hook event) before anyone is told, and the people in the call
//! hear of it as a notice.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use carecall_signalling::protocol::ServerMessage;
use carecall_signalling::{JoinClaims, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{AccountRole, AdminSession};
use crate::api_error::ApiError;
use crate::call_log::{queue_label, Answer, Handover, QueuedCall, TransferTarget};
use crate::clock::now_ms;
use crate::state::{AdminState, QueueSettings};
use crate::AdminError;

/// How long the join links handed out in the console last.
const CALL_LINK_HOURS: u64 = 4;

/// How often the console is sent the queue even when nothing changed (the
/// waiting times move on).
const REFRESH: Duration = Duration::from_secs(5);

/// The call queue's database failed: logged, and the client told to try
/// again.
pub(crate) fn unavailable(e: AdminError) -> ApiError {
    ApiError::unavailable(
        "call queue",
        e,
        "the call queue cannot be reached; try again",
    )
}

/// A signed join link into `room` for `role`, named `name`.
pub(crate) fn join_link(state: &AdminState, room: &str, role: Role, name: &str) -> Option<String> {
    let claims = JoinClaims::lasting(
        room,
        role,
        name,
        Duration::from_secs(CALL_LINK_HOURS * 3600),
    );
    state.signer.join_url(&state.base_url, &claims).ok()
}

/// The role an account has in a call it joins from the console.
fn call_role(role: AccountRole) -> Role {
    match role {
        AccountRole::Admin | AccountRole::Operator => Role::Operator,
        AccountRole::Clinician => Role::Clinician,
        AccountRole::Specialist => Role::Specialist,
    }
}

/// Tells everyone in the call's room, and every console.
fn announce(state: &AdminState, call: &QueuedCall, message: String) {
    state.calls.presence().broadcast(
        &call.room,
        &ServerMessage::Notice {
            message: message.clone(),
        },
    );
    state.hub_changed();
}

/// A waiting call as the console lists it.
#[derive(Serialize)]
pub(crate) struct Listed {
    position: usize,
    call: i64,
    home: String,
    urgent: bool,
    reason: String,
    category: String,
    initials: String,
    queue: String,
    waiting_since_ms: i64,
    waiting_seconds: i64,
    overdue: bool,
    /// Answered before and passed to this queue: the home is in the call,
    /// so it can be answered but not declined.
    answered: bool,
}

/// Call `c`, at `position` in its queue at `now`.
pub(crate) fn listed(
    c: &QueuedCall,
    position: usize,
    now: i64,
    settings: &QueueSettings,
) -> Listed {
    // Waiting in this queue: a call passed on starts its wait again.
    let waited = (now - c.waiting_since_ms).max(0);
    Listed {
        position,
        call: c.id,
        home: c.home_name.clone(),
        urgent: c.urgent,
        reason: c.reason.clone(),
        category: c.reason_category.clone(),
        initials: c.initials.clone(),
        queue: queue_label(&c.queue_name).to_string(),
        waiting_since_ms: c.waiting_since_ms,
        waiting_seconds: waited / 1000,
        overdue: waited >= settings.no_answer_after.as_millis() as i64,
        answered: c.answered_at_ms.is_some(),
    }
}

/// What one account's console shows (sent as the `hub` message).
#[derive(Serialize)]
pub(crate) struct Console {
    #[serde(rename = "type")]
    kind: &'static str,
    me: Me,
    queue: Vec<Listed>,
    for_you: Vec<ForYou>,
    holding: Vec<Held>,
    clinicians: Vec<String>,
    specialists: Vec<String>,
    queues: Vec<String>,
    decline_reasons: Vec<String>,
}

/// Whose console it is.
#[derive(Serialize)]
struct Me {
    name: String,
    role: AccountRole,
}

/// A call waiting for this account: passed to them, or an invitation.
#[derive(Serialize)]
struct ForYou {
    kind: String,
    call: i64,
    home: String,
    reason: String,
    initials: String,
    urgent: bool,
}

/// A call this account holds.
#[derive(Serialize)]
struct Held {
    call: i64,
    home: String,
    reason: String,
    initials: String,
}

/// The way into a call just answered or accepted: the account's own link.
#[derive(Serialize)]
pub(crate) struct WayIn {
    call: i64,
    room: String,
    join_url: Option<String>,
    home: String,
}

/// A call's state after a step (declined, passed on).
#[derive(Serialize)]
pub(crate) struct CallState {
    call: i64,
    state: String,
}

/// A specialist invited, and the link to send them.
#[derive(Serialize)]
pub(crate) struct Invited {
    call: i64,
    specialist: String,
    join_url: Option<String>,
}

/// What one account's console shows: the queue (if they answer calls),
/// what waits for them, the calls they hold, and whom to pass calls to.
pub(crate) async fn console(state: &AdminState, me: &AdminSession) -> Result<Console, AdminError> {
    let who = me.name.clone();
    let (queue, for_you, holding) = crate::blocking_locked(&state.call_log, move |log| {
        Ok((log.queue()?, log.for_you(&who)?, log.held_by(&who)?))
    })
    .await?;
    let accounts = state.accounts.clone();
    let (clinicians, specialists) = crate::blocking(move || {
        Ok((
            accounts.named(AccountRole::Clinician)?,
            accounts.named(AccountRole::Specialist)?,
        ))
    })
    .await?;
    let now = now_ms();
    let settings = &state.queue;
    let queue: Vec<_> = if me.role.answers_calls() {
        queue
            .iter()
            .enumerate()
            .map(|(i, c)| listed(c, i + 1, now, settings))
            .collect()
    } else {
        Vec::new()
    };
    let for_you = for_you
        .into_iter()
        .map(|(kind, c)| ForYou {
            kind,
            call: c.id,
            home: c.home_name,
            reason: c.reason,
            initials: c.initials,
            urgent: c.urgent,
        })
        .collect();
    let holding = holding
        .into_iter()
        .map(|c| Held {
            call: c.id,
            home: c.home_name,
            reason: c.reason,
            initials: c.initials,
        })
        .collect();
    Ok(Console {
        kind: "hub",
        me: Me {
            name: me.name.clone(),
            role: me.role,
        },
        queue,
        for_you,
        holding,
        clinicians,
        specialists,
        queues: settings.named_queues.clone(),
        decline_reasons: settings.decline_reasons.clone(),
    })
}

/// `GET /admin/api/hub`: the console's contents, once.
pub(crate) async fn snapshot(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
) -> Result<Json<Console>, ApiError> {
    Ok(Json(console(&state, &me).await.map_err(unavailable)?))
}

/// Whether a WebSocket upgrade comes from a page of this hub: a page of
/// another site must not open a console with the admin's cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

/// `GET /admin/api/hub/ws`: the console's contents, pushed at once on every
/// change and every few seconds.
pub(crate) async fn live(
    State(state): State<AdminState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::forbidden(
            "the console opens from this hub's own pages only",
        ));
    }
    let Some(token) = crate::auth::cookie_token(&headers) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first"));
    };
    Ok(upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| push(socket, state, token)))
}

/// Close code for a console whose sign-in ended: the page goes to sign-in.
const SIGNED_OUT: u16 = 4001;

async fn push(mut socket: WebSocket, state: AdminState, token: String) {
    let mut changed = state.hub_changes.subscribe();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
    // Counted as open, under its account's role, from its first push.
    let mut open: Option<(
        crate::accounts::AccountRole,
        crate::queue_metrics::ConsoleOpen,
    )> = None;
    loop {
        // The session is read again before every push: a sign-out, an expiry
        // or a changed role takes effect at once, not when the socket closes.
        let accounts = state.accounts.clone();
        let t = token.clone();
        let me = match crate::blocking(move || accounts.session(&t)).await {
            Ok(Some(me)) => me,
            Ok(None) => {
                let bye = axum::extract::ws::CloseFrame {
                    code: SIGNED_OUT,
                    reason: "signed out".into(),
                };
                let _ = socket.send(Message::Close(Some(bye))).await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "console session check failed");
                return;
            }
        };
        if open.as_ref().map(|(role, _)| *role) != Some(me.role) {
            open = Some((me.role, state.consoles.opened(me.role)));
        }
        let text = match console(&state, &me).await {
            Ok(c) => serde_json::to_string(&c).unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "console contents unavailable");
                json!({ "type": "error", "message": "the call queue cannot be reached; still trying" })
                    .to_string()
            }
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `POST /admin/api/queue/{id}/answer`: take a waiting call (from any
/// queue) and get the way into it.
pub(crate) async fn answer(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    Path(id): Path<i64>,
) -> Result<Json<WayIn>, ApiError> {
    if !me.role.answers_calls() {
        return Err(ApiError::forbidden(
            "specialists join calls they are invited to; they do not answer the queue",
        ));
    }
    let (who, now) = (me.name.clone(), now_ms());
    let answer = crate::blocking_locked(&state.call_log, move |log| log.answer(id, &who, now));
    match answer.await.map_err(unavailable)? {
        Answer::Answered(call) => {
            // The first answer only: a call passed to a named queue and
            // answered there was answered before.
            if call.answered_at_ms == Some(now) {
                let waited = (now - call.queued_at_ms) as f64 / 1000.0;
                state.queue_metrics.answered(call.urgent, waited);
            }
            tracing::info!(account = %me.name, call = id, home = ?call.home_name, waited_ms = now_ms() - call.waiting_since_ms, "call answered");
            announce(
                &state,
                &call,
                format!("{} ({}) is joining you.", me.name, call_role(me.role)),
            );
            let link = join_link(&state, &call.room, call_role(me.role), &me.name);
            Ok(Json(WayIn {
                call: id,
                room: call.room,
                join_url: link,
                home: call.home_name,
            }))
        }
        Answer::AlreadyTaken(call) => {
            let by = match call.state.as_str() {
                "cancelled" => "the home (cancelled)".to_owned(),
                _ => call.held_by.or(call.answered_by).unwrap_or_default(),
            };
            Err(ApiError::conflict(format!("already answered by {by}")))
        }
        Answer::NoSuchCall => Err(ApiError::not_found(format!("no call {id}"))),
    }
}

/// What the console posts to decline a call: one of the listed reasons.
#[derive(Deserialize)]
pub(crate) struct DeclineRequest {
    reason: String,
}

/// `POST /admin/api/queue/{id}/decline`: turn a waiting call away, with one
/// of the hub's reasons; the home is told the reason and the hub's number.
pub(crate) async fn decline(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    Path(id): Path<i64>,
    Json(req): Json<DeclineRequest>,
) -> Result<Json<CallState>, ApiError> {
    if !me.role.answers_calls() {
        return Err(ApiError::forbidden(
            "only those who answer the queue may decline a call",
        ));
    }
    if !state.queue.decline_reasons.contains(&req.reason) {
        return Err(ApiError::bad_request(format!(
            "choose one of the hub's reasons: {}",
            state.queue.decline_reasons.join("; ")
        )));
    }
    let who = me.name.clone();
    let result = crate::blocking_locked(&state.call_log, move |log| {
        log.decline(id, &who, &req.reason, now_ms())
    })
    .await;
    match result.map_err(unavailable)? {
        Answer::Answered(call) => {
            tracing::info!(account = %me.name, call = id, home = ?call.home_name, "call declined");
            state.hub_changed();
            Ok(Json(CallState {
                call: id,
                state: call.state,
            }))
        }
        // Answered once and passed to a queue: the home is in the call
        // already, so it is answered from there, not turned away.
        Answer::AlreadyTaken(call) if call.answered_at_ms.is_some() => Err(ApiError::conflict(
            "the call was answered already and the home is in it: answer it, do not decline it",
        )),
        Answer::AlreadyTaken(call) => Err(ApiError::conflict(format!(
            "the call is no longer waiting ({})",
            call.state
        ))),
        Answer::NoSuchCall => Err(ApiError::not_found(format!("no call {id}"))),
    }
}

/// What the console posts to pass a call on: a clinician's name or a queue.
#[derive(Deserialize)]
pub(crate) struct TransferRequest {
    #[serde(default)]
    clinician: Option<String>,
    #[serde(default)]
    queue: Option<String>,
}

/// `POST /admin/api/hub/calls/{id}/transfer`: pass a call you hold to a
/// clinician (who takes it from their console) or a named queue.
pub(crate) async fn transfer(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    Path(id): Path<i64>,
    Json(req): Json<TransferRequest>,
) -> Result<Json<CallState>, ApiError> {
    let to = match (req.clinician, req.queue) {
        (Some(name), None) => TransferTarget::Clinician(
            account_with_role(&state, name, AccountRole::Clinician).await?,
        ),
        (None, Some(q)) if state.queue.named_queues.contains(&q) => TransferTarget::Queue(q),
        (None, Some(q)) => {
            return Err(ApiError::bad_request(format!(
                "there is no queue called {q:?}"
            )))
        }
        _ => return Err(ApiError::bad_request("give either a clinician or a queue")),
    };
    let (who, anyone, target) = (me.name.clone(), me.role.is_admin(), to.clone());
    let done = crate::blocking_locked(&state.call_log, move |log| {
        log.transfer(id, &who, anyone, &target, now_ms())
    })
    .await;
    let call = handover_result(done, id, "you can only pass on a call you are in")?;
    let message = match &to {
        TransferTarget::Clinician(name) => format!(
            "{} is passing you to {name} (clinician), who will join shortly.",
            me.name
        ),
        TransferTarget::Queue(q) => format!(
            "{} is passing you to the {q} team: the next one free will join you here.",
            me.name
        ),
    };
    tracing::info!(account = %me.name, call = id, to = ?to, "call passed on");
    announce(&state, &call, message);
    Ok(Json(CallState {
        call: id,
        state: call.state,
    }))
}

/// `POST /admin/api/hub/calls/{id}/accept`: take a call passed to you, or
/// join one you were invited to; answers with the way in.
pub(crate) async fn accept(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    Path(id): Path<i64>,
) -> Result<Json<WayIn>, ApiError> {
    let who = me.name.clone();
    let specialist = me.role == AccountRole::Specialist;
    let done = crate::blocking_locked(&state.call_log, move |log| {
        match log.accept_transfer(id, &who, now_ms())? {
            Handover::NotYours(_) if specialist => log.accept_invite(id, &who, now_ms()),
            other => Ok(other),
        }
    })
    .await;
    let call = handover_result(done, id, "this call was not passed to you, or it has ended")?;
    tracing::info!(account = %me.name, call = id, "joined from the console");
    announce(
        &state,
        &call,
        format!("{} ({}) is joining you.", me.name, call_role(me.role)),
    );
    let link = join_link(&state, &call.room, call_role(me.role), &me.name);
    Ok(Json(WayIn {
        call: id,
        room: call.room,
        join_url: link,
        home: call.home_name,
    }))
}

/// What the console posts to invite a specialist: an account's name, or
/// the name of someone without an account (who gets the link only).
#[derive(Deserialize)]
pub(crate) struct InviteRequest {
    #[serde(default)]
    specialist: Option<String>,
    #[serde(default)]
    guest: Option<String>,
}

/// `POST /admin/api/hub/calls/{id}/invite`: bring a specialist into a call
/// you hold. A specialist with an account is told in their console; the
/// answer carries a link to send by other means either way.
pub(crate) async fn invite(
    State(state): State<AdminState>,
    Extension(me): Extension<AdminSession>,
    Path(id): Path<i64>,
    Json(req): Json<InviteRequest>,
) -> Result<Json<Invited>, ApiError> {
    if !me.role.invites_specialists() {
        return Err(ApiError::forbidden(
            "only a clinician can invite a specialist",
        ));
    }
    let name = match (req.specialist, req.guest.map(|g| g.trim().to_owned())) {
        (Some(name), None) => account_with_role(&state, name, AccountRole::Specialist).await?,
        // A guest is stored as `guest:NAME`: never an account's invitation.
        (None, Some(g)) if (1..=64).contains(&g.chars().count()) => format!("guest:{g}"),
        _ => {
            return Err(ApiError::bad_request(
                "give a specialist's account, or a guest's name (up to 64 characters)",
            ))
        }
    };
    let (who, anyone, target) = (me.name.clone(), me.role.is_admin(), name.clone());
    let done = crate::blocking_locked(&state.call_log, move |log| {
        log.invite(id, &who, anyone, &target, now_ms())
    })
    .await;
    let call = handover_result(
        done,
        id,
        "you can only invite someone into a call you are in",
    )?;
    let name = name.strip_prefix("guest:").unwrap_or(&name).to_owned();
    tracing::info!(account = %me.name, call = id, specialist = ?name, "specialist invited");
    announce(
        &state,
        &call,
        format!("{} has asked {name} (specialist) to join.", me.name),
    );
    let link = join_link(&state, &call.room, Role::Specialist, &name);
    Ok(Json(Invited {
        call: id,
        specialist: name,
        join_url: link,
    }))
}

/// `name`, if it is an account with `role`; otherwise the reply that says
/// it is not (or that the accounts cannot be read).
async fn account_with_role(
    state: &AdminState,
    name: String,
    role: AccountRole,
) -> Result<String, ApiError> {
    let accounts = state.accounts.clone();
    let n = name.clone();
    match crate::blocking(move || accounts.role_of(&n)).await {
        Ok(Some(r)) if r == role => Ok(name),
        Ok(_) => Err(ApiError::bad_request(format!(
            "{name} is not a {role}'s account"
        ))),
        Err(e) => Err(unavailable(e)),
    }
}

/// The call after a handover, or the reply that says why not.
fn handover_result(
    done: Result<Handover, AdminError>,
    id: i64,
    not_yours: &str,
) -> Result<QueuedCall, ApiError> {
    match done.map_err(unavailable)? {
        Handover::Done(call) => Ok(call),
        Handover::NotYours(_) => Err(ApiError::conflict(not_yours)),
        Handover::NoSuchCall => Err(ApiError::not_found(format!("no call {id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_this_hubs_pages_open_the_console() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("hub.example:8443"));
        assert!(!same_origin(&h), "no Origin");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://hub.example:8443"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://hub.example:8443.evil"),
        );
        assert!(!same_origin(&h));
    }
}
