//! Call history on a real server: participants join and leave two rooms over
//! the signalling WebSocket, and the admin's CSV export has one row per call
//! with the columns `docs/admin.md` documents.

use std::time::{Duration, Instant};

use crate::support::admin::session;
use crate::support::http::{get_with, request};
use crate::support::Server;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::ws::Socket;

/// Joins `room` as `role` over the signalling socket (no media).
async fn join(server: &Server, room: &str, role: &str) -> Socket {
    crate::support::ws::join_as(server, room, role).await.0
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
        let reply = get_with(&server.base_url, "/admin/api/calls.csv", &headers).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")));
        // Rooms here have no commas: splitting is enough.
        let ended = reply
            .body
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(3).is_some_and(|end| !end.is_empty()))
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
        // No media in this test: no quality sampled, no reconnects; no
        // operator answered.
        assert_eq!(&r[11..], ["", "0", "0"], "{r:?}");
    }
    // Without a session: refused like every admin route.
    let reply = request(&server.base_url, "GET", "/admin/api/calls.csv", &[], None).await;
    assert_eq!(reply.status, 401);
}

/// The next text message on `ws`, or its close frame's code.
async fn next_event(ws: &mut Socket) -> Result<serde_json::Value, u16> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("nothing from the server within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(frame))) => return Err(frame.map_or(0, |f| f.code.into())),
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_admin_ends_a_call_for_everyone_in_it() {
    let server = Server::start();
    let (cookie, csrf) = session(&server).await;
    let mut home = join(&server, "ward-3", "home").await;
    let mut clinician = join(&server, "ward-3", "clinician").await;
    let mut elsewhere = join(&server, "ward-4", "home").await;
    let end = |headers: Vec<(&'static str, String)>, room: &'static str| {
        let base = server.base_url.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let path = format!("/admin/api/rooms/{room}/end");
            request(&base, "POST", &path, &h, None).await
        }
    };
    let signed = vec![("Cookie", cookie.clone()), ("x-csrf-token", csrf.clone())];

    // Without the CSRF token: refused, nobody is disconnected.
    let refused = end(vec![("Cookie", cookie.clone())], "ward-3").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let nobody = end(signed.clone(), "ward-9").await;
    assert_eq!(nobody.status, 404, "{nobody:?}");

    let reply = end(signed, "ward-3").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(body["participants"], 2, "{body}");
    for ws in [&mut home, &mut clinician] {
        // Presence news may come first; then the end, then the close.
        let ended = loop {
            match next_event(ws).await {
                Ok(m) if m["type"] == "call-ended" => break m,
                Ok(_) => continue,
                Err(code) => panic!("closed ({code}) without call-ended"),
            }
        };
        assert!(ended["message"]
            .as_str()
            .is_some_and(|m| m.contains("ended")));
        let closed = loop {
            if let Err(code) = next_event(ws).await {
                break code;
            }
        };
        assert_eq!(closed, 4004, "close code after call-ended");
    }
    // The history shows ward-3 ended, ward-4 running, in the activity too.
    let headers = [("Cookie", cookie.as_str())];
    let start = Instant::now();
    let history = loop {
        let reply = get_with(&server.base_url, "/admin/api/history", &headers).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let h: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        let ward3 = h["calls"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["room"] == "ward-3").cloned());
        if ward3.is_some_and(|c| !c["ended_at"].is_null()) {
            break h;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{history:#}");
    let calls = history["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["room"], "ward-4", "newest first");
    assert!(calls[0]["ended_at"].is_null());
    assert_eq!(calls[1]["participants"], 2);
    let activity = &history["activity"];
    assert_eq!(activity["calls"], 2);
    let today = activity["per_day"][29][1].as_u64();
    assert_eq!(today, Some(2), "both calls today: {activity}");
    let by_hour: u64 = activity["per_hour"]
        .as_array()
        .expect("per_hour")
        .iter()
        .filter_map(|n| n.as_u64())
        .sum();
    assert_eq!(by_hour, 2);

    // The ended call opens in detail: both sessions, closed.
    let id = calls[1]["call_id"].as_i64().expect("call id");
    let reply = get_with(
        &server.base_url,
        &format!("/admin/api/calls/{id}"),
        &headers,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let detail: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    let sessions = detail["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{detail}");
    assert!(sessions.iter().all(|s| !s["left_at"].is_null()), "{detail}");
    let missing = get_with(&server.base_url, "/admin/api/calls/999", &headers).await;
    assert_eq!(missing.status, 404);

    // The other room's call went on: still live, and its socket still open.
    let rooms = request(&server.base_url, "GET", "/admin/api/rooms", &headers, None).await;
    let rooms: serde_json::Value = serde_json::from_str(&rooms.body).expect("JSON");
    assert_eq!(rooms[0]["room"], "ward-4", "{rooms}");
    assert_eq!(rooms.as_array().map(Vec::len), Some(1), "{rooms}");
    elsewhere
        .close(None)
        .await
        .expect("ward-4 socket still open");
}

/// A browser that is still sending (an answer, a tile size) when the hub ends
/// the call must still be told the call ended. A server that closed the TCP
/// connection with those messages unread would reset it, and the browser
/// could lose `call-ended` and the close frame and take it for a dropped
/// link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_still_sending_when_the_call_ends_is_told_it_ended() {
    let server = Server::start();
    let (cookie, csrf) = session(&server).await;
    for round in 0..20 {
        let room = format!("busy-{round}");
        let ws = join(&server, &room, "home").await;
        let (mut sink, mut stream) = ws.split();
        // Pings are read and answered by the server's socket like any frame.
        let talker = tokio::spawn(async move {
            for _ in 0..20_000 {
                if sink.send(Message::Ping(vec![7; 64].into())).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let headers = [("Cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
        let path = format!("/admin/api/rooms/{room}/end");
        let reply = request(&server.base_url, "POST", &path, &headers, None).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let mut told = false;
        let closed = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("nothing from the server within 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => told |= t.contains(r#""type":"call-ended""#),
                Some(Ok(Message::Close(frame))) => break frame.map_or(0, |f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("round {round}: the socket ended without a close frame: {other:?}"),
            }
        };
        assert!(told, "round {round}: closed without call-ended");
        assert_eq!(closed, 4004, "round {round}: close code after call-ended");
        talker.abort();
    }
}
