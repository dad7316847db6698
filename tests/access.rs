//! Who may do what, once past the public surfaces' limits: join links a
//! hub withdraws stop working at join and on resume, an expired link cannot
//! resume, an observer's link only watches, a home has one place in the
//! queue however often its button is pressed, and production mode keeps
//! links, metrics and files private. Against a real server on loopback.

use std::time::Duration;

use crate::support::http::{get_with, request};
use crate::support::peer::TestPeer;
use crate::support::ws::{open, Socket};
use crate::support::{token_of, DataDir, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The first `joined`, `resumed` or `error` message within 5 s.
async fn outcome(ws: &mut Socket) -> Value {
    let wait = async {
        while let Some(Ok(m)) = ws.next().await {
            let Ok(v) = serde_json::from_str::<Value>(m.to_text().unwrap_or("")) else {
                continue;
            };
            if ["joined", "resumed", "error"].contains(&v["type"].as_str().unwrap_or("")) {
                return v;
            }
        }
        Value::Null
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("an answer within 5 s")
}

async fn join_with(server: &Server, link: &str) -> (Socket, Value) {
    let mut ws = open(
        server,
        json!({"type": "join", "v": 1, "token": token_of(link)}),
    )
    .await;
    let v = outcome(&mut ws).await;
    (ws, v)
}

async fn resume_with(server: &Server, resume: &Value) -> Value {
    let mut ws = open(server, json!({"type": "resume", "v": 1, "resume": resume})).await;
    outcome(&mut ws).await
}

#[tokio::test]
async fn withdrawn_links_stop_working_at_join_and_on_resume() {
    let server = Server::start();
    let (cookie, csrf) = crate::support::admin::session(&server).await;
    let old = server.link("ward-20", "home", "Rose Court", "1h");
    let (first, joined) = join_with(&server, &old).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    // The tablet's Wi-Fi drops: no close frame.
    drop(first);
    let headers = [("Cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = request(
        &server.base_url,
        "POST",
        "/admin/api/rooms/ward-20/revoke-links",
        &headers,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (_, refused) = join_with(&server, &old).await;
    assert_eq!(refused["code"], "revoked-token", "{refused}");
    let resumed = resume_with(&server, &joined["resume"]).await;
    assert_eq!(
        resumed["code"], "revoked-token",
        "a withdrawn link resumes: {resumed}"
    );
    // A link to another room, and one made after the withdrawal, work.
    let other = server.link("ward-21", "home", "Rose Court", "1h");
    assert_eq!(join_with(&server, &other).await.1["type"], "joined");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = server.link("ward-20", "home", "Rose Court", "1h");
    assert_eq!(join_with(&server, &new).await.1["type"], "joined");
}

#[tokio::test]
async fn an_expired_link_cannot_resume() {
    let server = Server::start();
    let short = server.link("ward-22", "home", "Rose Court", "2s");
    let (first, joined) = join_with(&server, &short).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resumed = resume_with(&server, &joined["resume"]).await;
    assert_eq!(resumed["code"], "expired-token", "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_link_watches_and_is_never_seen_or_heard() {
    let server = Server::start();
    let home = server.link("ward-23", "home", "Rose Court", "1h");
    let observer = server.link("ward-23", "observer", "Student", "1h");
    let mut a = TestPeer::join(&server.ws_url(), &token_of(&home), 1).await;
    let mut b = TestPeer::join(&server.ws_url(), &token_of(&observer), 2).await;
    a.wait_connected(Duration::from_secs(10)).await;
    b.wait_connected(Duration::from_secs(10)).await;
    let (awire, bwire) = (a.negotiated().await, b.negotiated().await);
    // Both send: the observer's browser offers a camera and microphone.
    for n in 0..150 {
        a.send_tick(n, &awire).await;
        b.send_tick(n, &bwire).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watched = b.counters(&a.participant, "audio").len();
    assert!(watched >= 140, "the observer heard {watched} of 150");
    for kind in ["audio", "video"] {
        let leaked = a.counters(&b.participant, kind).len();
        assert_eq!(leaked, 0, "the home got the observer's {kind}");
    }
}

#[tokio::test]
async fn a_home_has_one_place_in_the_queue() {
    use crate::support::queue::{add_home, place_call, queue};
    let server = Server::start();
    let (_, token) = add_home(&server, "Rose Court");
    let (code, first) = place_call(&server, &token, true).await;
    assert_eq!(code, 201, "{first}");
    for _ in 0..300 {
        let (code, again) = place_call(&server, &token, true).await;
        assert_eq!(code, 200, "{again}");
        assert_eq!(again["call"], first["call"], "the same call");
    }
    let op = crate::support::queue::operator(&server, "op").await;
    let waiting = queue(&server, &op).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
}

#[tokio::test]
async fn production_keeps_links_metrics_and_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // As a umask of 022 would leave a new directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = |c: char| std::iter::repeat_n(c, 40).collect::<String>();
    let token = "a-metrics-token-for-prometheus";
    let server = Server::start_with(crate::support::ServerOptions {
        data_dir: Some(DataDir::from(dir)),
        env: vec![
            ("CARECALL_MODE".into(), "production".into()),
            (
                "CARECALL_PUBLIC_URL".into(),
                "https://carecall.hub.example".into(),
            ),
            ("CARECALL_LINK_SECRET".into(), secret('l')),
            ("CARECALL_TURN_SECRET".into(), secret('t')),
            ("CARECALL_RECORDING_SECRET".into(), secret('r')),
            ("CARECALL_METRICS_TOKEN".into(), token.into()),
        ],
        ..crate::support::ServerOptions::default()
    });
    let banner = server.banner.join("\n");
    assert!(
        !banner.contains("/join?t="),
        "a join link in the journal:\n{banner}"
    );
    let open = request(&server.base_url, "GET", "/metrics", &[], None).await;
    assert_eq!(open.status, 401, "/metrics without the token");
    let bearer = format!("Bearer {token}");
    let with = get_with(&server.base_url, "/metrics", &[("Authorization", &bearer)]).await;
    assert_eq!(with.status, 200);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.data_dir.path()), 0o700, "data directory");
    assert_eq!(mode(&server.db_path()), 0o600, "database");
}

#[tokio::test]
async fn what_strangers_type_cannot_forge_a_log_line() {
    let server = Server::start_with(crate::support::ServerOptions {
        text_log: true,
        ..crate::support::ServerOptions::default()
    });
    let forged = "x\nforged line";
    // A sign-in name, and an unknown JSON field a socket sends.
    let body = json!({ "name": forged, "password": "guess" }).to_string();
    let r = request(&server.base_url, "POST", "/admin/login", &[], Some(&body)).await;
    assert_eq!(r.status, 401);
    let link = server.link("ward-24", "home", "Rose Court", "1h");
    let (mut ws, joined) = join_with(&server, &link).await;
    assert_eq!(joined["type"], "joined");
    let odd = format!(
        "{{\"type\":\"mute\",\"audio\":true,\"video\":true,{:?}:1}}",
        forged
    );
    ws.send(Message::text(odd)).await.unwrap();
    let refused = outcome(&mut ws).await;
    assert_eq!(refused["code"], "bad-message", "{refused}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.matches("x\\nforged line").count() >= 2,
        "the input was logged, escaped:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("forged line")),
        "a forged line in the log:\n{log}"
    );
}
