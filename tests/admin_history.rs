//! Call history on a real server: participants join and leave two rooms over
//! the signalling WebSocket, and the admin's CSV export has one row per call
//! with the columns `docs/admin.md` documents.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::admin::session;
use support::http::request;
use support::{token_of, Server};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Joins `room` as `role` over the signalling socket (no media).
async fn join(server: &Server, room: &str, role: &str) -> Socket {
    let token = token_of(&server.link(room, role, "Test", "1h"));
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("signalling socket");
    let hello = json!({"type": "join", "v": 1, "token": token}).to_string();
    ws.send(Message::text(hello)).await.expect("send join");
    while let Some(Ok(m)) = ws.next().await {
        if m.to_text().is_ok_and(|t| t.contains(r#""type":"joined""#)) {
            return ws;
        }
    }
    panic!("{role} could not join {room}");
}

#[tokio::test]
async fn the_csv_export_has_one_row_per_call() {
    let server = Server::start();
    let (cookie, _) = session(&server).await;

    let home = join(&server, "ward-1", "home").await;
    let clinician = join(&server, "ward-1", "clinician").await;
    let other = join(&server, "ward-2", "home").await;
    for mut ws in [home, clinician, other] {
        ws.close(None).await.expect("leave");
    }

    let headers = [("Cookie", cookie.as_str())];
    let start = Instant::now();
    let csv = loop {
        let reply = request(
            &server.base_url,
            "GET",
            "/admin/api/calls.csv",
            &headers,
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")));
        let ended = reply
            .body
            .lines()
            .skip(1)
            .filter(|l| !l.contains(",,"))
            .count();
        if ended == 2 {
            break reply.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "calls not ended:\n{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    let header = carecall_admin::history::CSV_COLUMNS.join(",");
    assert_eq!(lines[0], header);
    let docs = std::fs::read_to_string("docs/admin.md").expect("docs/admin.md");
    assert!(
        docs.contains(&header),
        "docs/admin.md lists the columns: {header}"
    );
    assert_eq!(lines.len(), 3, "one row per call");
    let row = |room: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.split(',').nth(1) == Some(room))
            .expect(room);
        line.split(',').map(str::to_owned).collect()
    };
    let ward1 = row("ward-1");
    assert_eq!(&ward1[5..10], ["2", "1", "1", "0", "0"], "{ward1:?}");
    let ward2 = row("ward-2");
    assert_eq!(&ward2[5..10], ["1", "1", "0", "0", "0"], "{ward2:?}");
    for r in [&ward1, &ward2] {
        assert!(r[4].parse::<u64>().is_ok(), "duration: {r:?}");
        assert!(
            ["yes", "no"].contains(&r[10].as_str()),
            "out of hours: {r:?}"
        );
    }
    // Without a session: refused like every admin route.
    let reply = request(&server.base_url, "GET", "/admin/api/calls.csv", &[], None).await;
    assert_eq!(reply.status, 401);
}
