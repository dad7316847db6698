//! Resuming a signalling session: a browser whose socket dropped comes back
//! on a new one with the `resume` token from `joined`, keeps its participant
//! id, and the others never see it leave. Without a resume it leaves after
//! 30 s. Signalling only (no media), on a real server.

use std::time::{Duration, Instant};

use crate::support::abuse::ws_refusal;
use crate::support::ws::{open, Socket};
use crate::support::{token_of, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The next message of type `kind` within `within`, skipping others.
async fn next_of(ws: &mut Socket, kind: &str, within: Duration) -> Option<Value> {
    let wait = async {
        while let Some(Ok(m)) = ws.next().await {
            let Ok(text) = m.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if v["type"] == kind {
                return Some(v);
            }
        }
        None
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// Joins `room`; returns the socket and the `joined` message.
async fn join(server: &Server, room: &str, role: &str) -> (Socket, Value) {
    let token = token_of(&server.link(room, role, "Test", "1h"));
    let mut ws = open(server, json!({"type": "join", "v": 1, "token": token})).await;
    let joined = next_of(&mut ws, "joined", Duration::from_secs(5))
        .await
        .expect("joined");
    (ws, joined)
}

async fn resume(server: &Server, token: &str) -> (Socket, Value) {
    let mut ws = open(server, json!({"type": "resume", "v": 1, "resume": token})).await;
    let resumed = next_of(&mut ws, "resumed", Duration::from_secs(5))
        .await
        .expect("resumed");
    (ws, resumed)
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["participant"].as_str())
        .collect()
}

#[tokio::test]
async fn a_dropped_socket_resumes_the_same_session() {
    let server = Server::start();
    let (home, joined) = join(&server, "resume-1", "home").await;
    let (mut clinician, _) = join(&server, "resume-1", "clinician").await;
    let home_id = joined["participant"].as_str().expect("id").to_owned();
    let token = joined["resume"]
        .as_str()
        .expect("a resume token")
        .to_owned();
    assert!(token.len() >= 22, "a 128-bit token: {token:?}");

    // The home's socket drops: TCP closes without a WebSocket close frame,
    // as when a tablet's Wi-Fi goes.
    drop(home);
    // Someone joins meanwhile; the home must hear of it on resuming.
    let (_specialist, sj) = join(&server, "resume-1", "specialist").await;
    let left = next_of(&mut clinician, "participant-left", Duration::from_secs(3)).await;
    assert_eq!(left, None, "the others saw the home leave");

    let (mut home, resumed) = resume(&server, &token).await;
    assert_eq!(resumed["participant"], home_id.as_str(), "same participant");
    let mut present = ids(&resumed["participants"]);
    present.sort();
    // The clinician: the one in the specialist's list who is not the home.
    let clinician_id = ids(&sj["participants"])
        .into_iter()
        .find(|p| *p != home_id)
        .expect("clinician");
    let mut expected = vec![sj["participant"].as_str().expect("id"), clinician_id];
    expected.sort();
    assert_eq!(present, expected, "who is in the call on resuming");
    // The join held while the socket was down. The clinician's, if the
    // socket dropped before it went out, comes first: it was held too.
    let mut held = Vec::new();
    while held.last() != Some(&sj["participant"]) {
        let joined = next_of(&mut home, "participant-joined", Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("the specialist's join was not held: {held:?}"));
        held.push(joined["participant"].clone());
    }
    if held.len() > 1 {
        assert_eq!(held, [json!(clinician_id), sj["participant"].clone()]);
    }

    // A second socket takes the session over from one still open (a
    // half-open connection the server has not noticed): the old one closes.
    let (mut again, resumed) = resume(&server, &token).await;
    assert_eq!(resumed["participant"], home_id.as_str());
    let old_end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = home.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(old_end.is_ok(), "the replaced socket stayed open");
    let left = next_of(&mut clinician, "participant-left", Duration::from_secs(1)).await;
    assert_eq!(left, None, "a takeover is not a leave");

    // Leaving for real is seen at once.
    again
        .send(Message::text(json!({"type": "leave"}).to_string()))
        .await
        .expect("leave");
    let left = next_of(&mut clinician, "participant-left", Duration::from_secs(3))
        .await
        .expect("the home's leave");
    assert_eq!(left["participant"], home_id.as_str());
    // Its token died with it.
    let (error, close) = ws_refusal(
        &server.ws_url(),
        vec![Message::text(
            json!({"type": "resume", "v": 1, "resume": token}).to_string(),
        )],
    )
    .await;
    assert_eq!(error["code"], "resume-expired", "{error}");
    assert_eq!(close, Some(4005));
}

#[tokio::test]
async fn a_forged_resume_token_is_refused() {
    let server = Server::start();
    let (_home, _) = join(&server, "resume-2", "home").await;
    for forged in ["", "AAAAAAAAAAAAAAAAAAAAAA", "x\"; drop"] {
        let (error, close) = ws_refusal(
            &server.ws_url(),
            vec![Message::text(
                json!({"type": "resume", "v": 1, "resume": forged}).to_string(),
            )],
        )
        .await;
        assert_eq!(error["code"], "resume-expired", "{forged:?}: {error}");
        assert_eq!(close, Some(4005), "{forged:?}");
    }
}

#[tokio::test]
async fn a_browser_that_does_not_come_back_leaves_after_30_s() {
    let server = Server::start();
    let (home, joined) = join(&server, "resume-3", "home").await;
    let (mut clinician, _) = join(&server, "resume-3", "clinician").await;
    drop(home);
    let dropped = Instant::now();
    let left = next_of(&mut clinician, "participant-left", Duration::from_secs(40))
        .await
        .expect("the home never left");
    let after = dropped.elapsed();
    println!("left {} ms after the drop", after.as_millis());
    assert_eq!(left["participant"], joined["participant"]);
    assert!(
        after >= Duration::from_secs(29),
        "left after {after:?}, before the resume window"
    );
}

#[tokio::test]
async fn a_socket_closed_for_resuming_is_not_a_leave() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let server = Server::start();
    let (mut home, joined) = join(&server, "resume-4", "home").await;
    let (mut clinician, _) = join(&server, "resume-4", "clinician").await;
    home.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "resuming".into(),
    }))
    .await
    .expect("close");
    let left = next_of(&mut clinician, "participant-left", Duration::from_secs(2)).await;
    assert_eq!(left, None, "closing to resume is not leaving");
    let token = joined["resume"].as_str().expect("token");
    let (_home, resumed) = resume(&server, token).await;
    assert_eq!(resumed["participant"], joined["participant"]);
}
