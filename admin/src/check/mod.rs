//! The helpdesk connectivity check: a public page (`/check`) that a care
//! home opens on the tablet it will call from. The page tests the camera
//! and microphone, connects media to the SFU over UDP, over TCP and through
//! TURN over TLS (each alone), measures throughput to the hub and loss both
//! ways (the SFU counts the upload's arrivals and sends a paced download
//! test), and sends what it found here; the server words the verdict and stores the
//! result under a short code the helpdesk types into the dashboard.

mod guard;
mod pace;
mod store;
mod verdict;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use carecall_sfu::{MediaSignal, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(crate) use guard::CheckGuard;
pub use guard::CheckLimits;
pub use store::{normalise_code, Checks, StoredCheck, CHECK_RETENTION};
pub use verdict::{verdict, CheckResult, DeviceResult, LossPattern, Outcome, PathResult, Verdict};

use crate::api_error::ApiError;
use crate::auth::ClientIp;
use crate::clock::local_time;
use crate::state::AdminState;

const PAGE: &str = include_str!("../../client/check.html");
const SCRIPT: &str = include_str!("../../client/check.js");

/// Checks connected to the SFU at once, at most; more wait their turn.
pub const MAX_CHECK_SESSIONS: usize = 16;
/// A check's media session is closed after this, whatever the page does:
/// connecting (up to 10 s), 15 s sending, the 10 s download test, and
/// the throughput tests' delay readings (10 s each way), with room to spare.
const CHECK_SESSION_LIMIT: Duration = Duration::from_secs(90);
/// How long the SFU may take to answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// The most a throughput test moves each way.
pub const MAX_TRANSFER_BYTES: usize = 8 << 20;
/// A result is a few hundred bytes; this leaves room, not abuse.
pub const MAX_RESULT_BYTES: usize = 16 << 10;
/// The page's offer: a few kilobytes of SDP.
pub const MAX_OFFER_BYTES: usize = 64 << 10;
/// The page's offer has audio, video and data sections; a few more is
/// a different browser, thousands is an attack on the media worker.
const CHECK_SDP: carecall_sfu::SdpLimits = carecall_sfu::SdpLimits {
    max_bytes: MAX_OFFER_BYTES,
    max_media_sections: 8,
    max_candidates: 32,
};
/// Bytes per piece of the download test, made as it is sent.
const DOWNLOAD_CHUNK: usize = 64 << 10;

/// The 429 for a request over a check limit, counted.
fn refused(state: &AdminState, client: &str, reason: guard::Refusal) -> ApiError {
    state
        .refusals
        .refuse(carecall_sfu::Surface::Check, reason, &client);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many checks from this network just now: try again in a few minutes",
    )
}

/// 503, telling the page to try again in a minute.
fn busy(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// Checks connected to the SFU now, and each one's media session by the
/// token its page was given (to ask for its upload's loss, and for its
/// download test).
#[derive(Default)]
pub(crate) struct CheckSessions {
    count: AtomicUsize,
    tokens: std::sync::Mutex<std::collections::HashMap<String, CheckSession>>,
}

/// One check's media session.
#[derive(Clone, Copy)]
struct CheckSession {
    participant: carecall_sfu::ParticipantId,
    /// Its download test has been asked for: one per session.
    downlink_asked: bool,
}

impl CheckSessions {
    fn participant(&self, token: &str) -> Option<carecall_sfu::ParticipantId> {
        Some(self.tokens.lock().ok()?.get(token)?.participant)
    }

    /// The session's participant, the first time its download test is
    /// asked for; `Err(true)` if it was asked for already, `Err(false)` if
    /// there is no such session.
    fn ask_downlink(&self, token: &str) -> Result<carecall_sfu::ParticipantId, bool> {
        let mut tokens = self.tokens.lock().map_err(|_| false)?;
        let session = tokens.get_mut(token).ok_or(false)?;
        if std::mem::replace(&mut session.downlink_asked, true) {
            return Err(true);
        }
        Ok(session.participant)
    }

    fn remember(&self, token: &str, participant: carecall_sfu::ParticipantId) {
        if let Ok(mut t) = self.tokens.lock() {
            let session = CheckSession {
                participant,
                downlink_asked: false,
            };
            t.insert(token.to_owned(), session);
        }
    }

    fn forget(&self, token: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(token);
        }
    }
}

/// A token naming one check's media session to its page.
fn session_token() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[derive(Deserialize)]
pub(crate) struct UplinkQuery {
    session: String,
}

/// `GET /check/api/uplink?session=…`: what the SFU has counted of the
/// check's upload so far: packets due and, of them, lost on the way in
/// before any repair (the network's own loss, which the page cannot see).
pub(crate) async fn uplink(
    State(state): State<AdminState>,
    Query(q): Query<UplinkQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = state.check_sessions.participant(&q.session) else {
        return Err(ApiError::not_found("no such check session (it lasts 90 s)"));
    };
    let stats = state.media.stats().await;
    let Some(s) = stats.iter().find(|s| s.participant == id) else {
        return Err(ApiError::not_found("the check's media has not started"));
    };
    Ok(Json(
        json!({ "expected": s.upload_expected, "lost": s.upload_lost, "runs": s.upload_loss_runs }),
    ))
}

/// `POST /check/api/downlink?session=…`: starts the session's download
/// test (see [`carecall_sfu::DownlinkPlan::CHECK`]): the SFU sends a paced
/// stream the page counts as it arrives. Once per session.
pub(crate) async fn downlink(
    State(state): State<AdminState>,
    Query(q): Query<UplinkQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = match state.check_sessions.ask_downlink(&q.session) {
        Ok(id) => id,
        Err(true) => {
            return Err(ApiError::conflict(
                "this check's download test has run already",
            ))
        }
        Err(false) => return Err(ApiError::not_found("no such check session (it lasts 90 s)")),
    };
    let plan = carecall_sfu::DownlinkPlan::CHECK;
    let room = RoomId(format!("check-{id}"));
    state
        .media
        .test_downlink(room, id, plan)
        .await
        .map_err(|e| ApiError::conflict(format!("the download test could not start: {e}")))?;
    Ok(Json(json!({
        "packets": plan.packets(),
        "seconds": plan.duration.as_secs(),
    })))
}

/// `GET /check`
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /check/check.js`
pub(crate) async fn script() -> Response {
    crate::pages::script(SCRIPT)
}

/// `POST /check/api/session`: TURN servers and credentials for the check's
/// relay test (empty when the hub offers no TURN), and the throughput
/// tests' cap.
pub(crate) async fn session(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
) -> Result<Json<Value>, ApiError> {
    if let Err(reason) = state.check_guard.start(&ip) {
        return Err(refused(&state, &ip, reason));
    }
    let id = state.calls.new_participant();
    let limits = state.check_guard.limits();
    let ice_servers = state
        .calls
        .turn()
        .map(|t| {
            t.ice_servers_lasting(
                &format!("check-{id}"),
                carecall_signalling::token::unix_now(),
                limits.credential_lifetime,
            )
        })
        .unwrap_or_default();
    // The cap, so the page can say "at least" a rate that reaches it.
    let transfer_kbps = limits.transfer_kbps;
    Ok(Json(
        json!({ "ice_servers": ice_servers, "transfer_kbps": transfer_kbps }),
    ))
}

/// Which path a check connection tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CheckPath {
    /// Only the SFU's UDP candidates.
    Udp,
    /// Only its TCP candidates.
    Tcp,
    /// Whatever TURN offers (the page forces relay).
    TurnTls,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckOffer {
    path: CheckPath,
    sdp: String,
}

/// The offer without retransmission: no RTX payload types or streams, no
/// NACK feedback (PLI stays). str0m asks for retransmissions only of a
/// stream with a repair stream, and can hand a repaired packet on in its
/// place, in order: with repair, a check on a link dropping 4% of its
/// upload counted 2.1% lost; without, 3.7%.
fn without_repair(sdp: &str) -> String {
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let field = |line: &str, prefix: &str| -> Option<String> {
        let rest = line.trim_end().strip_prefix(prefix)?;
        Some(rest.split([' ', ':']).next()?.to_owned())
    };
    let rtx_types: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" rtx/"))
        .filter_map(|l| field(l, "a=rtpmap:"))
        .collect();
    let rtx_ssrcs: Vec<String> = lines
        .iter()
        .filter_map(|l| l.trim_end().strip_prefix("a=ssrc-group:FID "))
        .filter_map(|ids| ids.split(' ').nth(1).map(str::to_owned))
        .collect();
    lines
        .into_iter()
        .filter_map(|line| {
            let bare = line.trim_end();
            let of_rtx = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                .iter()
                .any(|p| field(bare, p).is_some_and(|pt| rtx_types.contains(&pt)));
            let rtx_ssrc = field(bare, "a=ssrc:").is_some_and(|id| rtx_ssrcs.contains(&id));
            let nack = bare.starts_with("a=rtcp-fb:") && bare.ends_with(" nack");
            if of_rtx || rtx_ssrc || nack || bare.starts_with("a=ssrc-group:FID ") {
                return None;
            }
            if bare.starts_with("m=") {
                let kept: Vec<&str> = bare
                    .split(' ')
                    .enumerate()
                    .filter(|(i, t)| *i < 3 || !rtx_types.iter().any(|pt| pt == t))
                    .map(|(_, t)| t)
                    .collect();
                return Some(format!("{}{}", kept.join(" "), &line[bare.len()..]));
            }
            Some(line.to_owned())
        })
        .collect()
}

/// Keeps only the answer's candidates of one transport.
fn only_candidates(sdp: &str, path: CheckPath) -> String {
    let drop = match path {
        CheckPath::Udp => " tcp ",
        CheckPath::Tcp => " udp ",
        CheckPath::TurnTls => return sdp.to_owned(),
    };
    sdp.split_inclusive('\n')
        .filter(|line| {
            !(line.starts_with("a=candidate:") && line.to_ascii_lowercase().contains(drop))
        })
        .collect()
}

/// `POST /check/api/offer`: connects the page's offer to the SFU in a room
/// of its own and returns the answer, with only the candidates of the path
/// under test. The session is closed after 30 s.
pub(crate) async fn offer(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<CheckOffer>,
) -> Result<Json<Value>, ApiError> {
    if let Err(reason) = state.check_guard.start(&ip) {
        return Err(refused(&state, &ip, reason));
    }
    let id = state.calls.new_participant();
    if let Err(e) = CHECK_SDP.check(id, &req.sdp) {
        state
            .refusals
            .refuse(carecall_sfu::Surface::Check, "sdp_too_large", &ip);
        return Err(ApiError::bad_request(e.to_string()));
    }
    // Without the system's randomness there is no unguessable token to name
    // the session by: refuse rather than hand out a guessable one.
    let Some(token) = session_token() else {
        tracing::error!("no system randomness for a check's session token");
        return Err(busy(
            "the hub cannot start a check just now: try again in a minute",
        ));
    };
    let sessions = state.check_sessions.clone();
    if sessions.count.fetch_add(1, Ordering::SeqCst) >= MAX_CHECK_SESSIONS {
        sessions.count.fetch_sub(1, Ordering::SeqCst);
        state
            .refusals
            .refuse(carecall_sfu::Surface::Check, "sessions_total", &ip);
        return Err(busy(
            "the hub is running many checks: try again in a minute",
        ));
    }
    sessions.remember(&token, id);
    let room = RoomId(format!("check-{id}"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let media = state.media.clone();
    let close = {
        let (media, room, token) = (media.clone(), room.clone(), token.clone());
        move || {
            let _ = media.leave(room, id);
            sessions.forget(&token);
            sessions.count.fetch_sub(1, Ordering::SeqCst);
        }
    };
    if let Err(e) = media.connect(room.clone(), id, without_repair(&req.sdp), tx) {
        close();
        return Err(busy(format!("media unavailable: {e}")));
    }
    let answer = tokio::time::timeout(ANSWER_LIMIT, async {
        while let Some(signal) = rx.recv().await {
            match signal {
                MediaSignal::Answer(sdp) => return Ok(sdp),
                MediaSignal::Error(e) | MediaSignal::Closed(e) => return Err(e),
                _ => {}
            }
        }
        Err("the media session ended".to_owned())
    })
    .await;
    match answer {
        Ok(Ok(sdp)) => {
            tokio::spawn(async move {
                // Keep the session's signals flowing until it is closed.
                let _ = tokio::time::timeout(CHECK_SESSION_LIMIT, async {
                    while rx.recv().await.is_some() {}
                })
                .await;
                close();
            });
            Ok(Json(
                json!({ "sdp": only_candidates(&sdp, req.path), "session": token }),
            ))
        }
        Ok(Err(e)) => {
            close();
            Err(ApiError::bad_request(format!("the offer was refused: {e}")))
        }
        Err(_) => {
            close();
            Err(busy("the media server did not answer"))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Download {
    bytes: usize,
}

/// `GET /check/api/download?bytes=N`: N bytes (at most 8 MiB) that do not
/// compress, for the download test. Made piece by piece as the client
/// takes them, so a client that does not read holds one piece, not 8 MiB;
/// paced (see `pace.rs`), so a check never takes the line from calls.
pub(crate) async fn download(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<Download>,
) -> Result<Response, ApiError> {
    let held = state
        .check_guard
        .transfer(&ip)
        .map_err(|reason| refused(&state, &ip, reason))?;
    let n = q.bytes.min(MAX_TRANSFER_BYTES);
    // (bytes left, generator state, the transfer's place and pace)
    let pieces = futures_util::stream::unfold(
        (n, 0x9e37_79b9u32, held),
        move |(left, mut x, mut held)| async move {
            if left == 0 {
                return None;
            }
            if left < n {
                held.paced(DOWNLOAD_CHUNK).await;
            }
            let piece: Vec<u8> = (0..left.min(DOWNLOAD_CHUNK))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let left = left - piece.len();
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(piece)),
                (left, x, held),
            ))
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_LENGTH, &n.to_string()),
        ],
        axum::body::Body::from_stream(pieces),
    )
        .into_response())
}

/// `POST /check/api/upload`: takes up to 8 MiB and says how much arrived,
/// counted as it comes, never held; read at the transfers' pace, so a fast
/// client is slowed by its own connection's flow control.
pub(crate) async fn upload(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let mut held = state
        .check_guard
        .transfer(&ip)
        .map_err(|reason| refused(&state, &ip, reason))?;
    let mut pieces = body.into_data_stream();
    let mut bytes = 0usize;
    while let Some(piece) = futures_util::StreamExt::next(&mut pieces).await {
        match piece {
            Ok(p) => {
                bytes += p.len();
                held.paced(p.len()).await;
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the upload test sends at most 8 MiB",
                ))
            }
        }
    }
    Ok(Json(json!({ "bytes": bytes })))
}

/// The home a check was run for: its permanent link's token, when the
/// check was opened from the home's page.
#[derive(Deserialize)]
pub(crate) struct ForHome {
    t: Option<String>,
}

/// The home `token` names (its id and name), or why the check cannot be
/// filed under it.
async fn home_for(state: &AdminState, token: String) -> Result<(String, String), String> {
    let links = state.home_links.clone();
    let found = crate::blocking_locked(&state.call_log, move |log| {
        crate::queue::home_of(log, &links, &token)
    })
    .await;
    match found {
        Ok(Ok(home)) => Ok((home.id, home.name)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// `POST /check/api/result[?t=home token]`: stores what the page measured
/// (under the home, when opened from its page); returns the code and the
/// verdict. A home link that no longer works loses nothing: the check is
/// stored without the home, and the answer says why.
pub(crate) async fn result(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    Query(for_home): Query<ForHome>,
    headers: HeaderMap,
    Json(result): Json<CheckResult>,
) -> Result<Json<Value>, ApiError> {
    if let Err(reason) = state.check_guard.result(&ip) {
        return Err(refused(&state, &ip, reason));
    }
    let home = match for_home.t {
        Some(t) => Some(home_for(&state, t).await),
        None => None,
    };
    let home_id = home
        .as_ref()
        .and_then(|h| h.as_ref().ok())
        .map(|h| h.0.clone());
    let agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    let v = verdict(&result);
    let stored = crate::blocking_locked(&state.checks, move |checks| {
        checks.store(SystemTime::now(), &ip, &agent, &result, home_id.as_deref())
    })
    .await;
    let code = stored.map_err(|e| {
        ApiError::unavailable(
            "connectivity check store",
            e,
            "the result could not be saved",
        )
    })?;
    tracing::info!(%code, outcome = ?v.outcome, filed = home.as_ref().is_some_and(|h| h.is_ok()), "connectivity check stored");
    let (filed_under, not_filed) = match home {
        Some(Ok((_, name))) => (Some(name), None),
        Some(Err(why)) => (None, Some(why)),
        None => (None, None),
    };
    Ok(Json(
        json!({ "code": code, "verdict": v, "home": filed_under, "not_filed": not_filed }),
    ))
}

/// `GET /admin/api/checks/{code}`: a stored check with its verdict.
pub(crate) async fn lookup(
    State(state): State<AdminState>,
    Path(code): Path<String>,
) -> Result<Json<CheckShown>, ApiError> {
    let found = crate::blocking_locked(&state.checks, move |checks| checks.find(&code))
        .await
        .map_err(|e| ApiError::unavailable("connectivity check lookup", e, "checks unavailable"))?;
    let Some(c) = found else {
        return Err(ApiError::not_found(
            "no check with that code (codes are kept 90 days)",
        ));
    };
    Ok(Json(shown(&c, &state.zone)))
}

/// A stored check as the helpdesk sees it: when, from where, the verdict
/// and every reading.
#[derive(Serialize)]
pub(crate) struct CheckShown {
    code: String,
    at: String,
    remote_addr: String,
    user_agent: String,
    verdict: Verdict,
    result: CheckResult,
}

/// Check `c`, its time in the hub's `zone`.
pub(crate) fn shown(c: &StoredCheck, zone: &jiff::tz::TimeZone) -> CheckShown {
    CheckShown {
        code: c.code.clone(),
        at: local_time(c.created_at_ms, zone),
        remote_addr: c.remote_addr.clone(),
        user_agent: c.user_agent.clone(),
        verdict: verdict(&c.result),
        result: c.result.clone(),
    }
}

/// Shared state the check routes need.
pub(crate) type SharedChecks = Arc<std::sync::Mutex<Checks>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_loses_its_retransmission_and_keeps_pli() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\n\
                   a=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\n\
                   a=ssrc-group:FID 111 222\r\na=ssrc:111 cname:x\r\na=ssrc:222 cname:x\r\n";
        assert_eq!(
            without_repair(sdp),
            "m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=rtpmap:96 VP8/90000\r\n\
             a=rtcp-fb:96 nack pli\r\na=rtpmap:98 VP9/90000\r\na=ssrc:111 cname:x\r\n"
        );
    }

    #[test]
    fn an_answer_keeps_only_the_candidates_of_the_path_tested() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 40000 typ host\r\n\
                   a=candidate:2 1 tcp 1015021823 10.0.0.1 40001 typ host tcptype passive\r\na=end\r\n";
        let udp = only_candidates(sdp, CheckPath::Udp);
        assert!(udp.contains(" udp ") && !udp.contains(" tcp "), "{udp}");
        assert!(udp.ends_with("a=end\r\n"));
        let tcp = only_candidates(sdp, CheckPath::Tcp);
        assert!(tcp.contains(" tcp ") && !tcp.contains(" udp "), "{tcp}");
        assert_eq!(only_candidates(sdp, CheckPath::TurnTls), sdp);
    }
}
