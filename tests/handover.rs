//! A care home's call after it is answered, without browsers: accounts with
//! roles, the call passed to a clinician and to a named queue, a specialist
//! invited, each step refused to whoever may not take it, told to the home,
//! and sent as a record-hook event in order. The hub console's WebSocket
//! pushes a new call at once and opens from the hub's own pages only; a home
//! nobody answers is shown the hub's phone number.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::hooks::{Receiver, SECRET};
use crate::support::queue::{account, add_home, answer, get_as, place_call, post_as, status};
use crate::support::{Server, ServerOptions};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PHONE: &str = "01632 960000";

fn env(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// The console's snapshot for a signed-in account.
async fn console(server: &Server, who: &(String, String)) -> Value {
    let (code, body) = get_as(server, who, "/admin/api/hub").await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_passed_on_and_escalated_keeps_every_step_in_order() {
    let hook_addr = SocketAddr::from(([127, 0, 0, 1], crate::support::free_port()));
    let receiver = Receiver::default();
    receiver.listen(hook_addr).await;
    let server = Server::start_with(ServerOptions {
        env: vec![
            env("CARECALL_HOOK_URL", &format!("http://{hook_addr}/hooks")),
            env("CARECALL_HOOK_SECRET", SECRET),
            env("CARECALL_QUEUE_NO_ANSWER_SECS", "1"),
            env("CARECALL_HUB_PHONE", PHONE),
        ],
        ..ServerOptions::default()
    });
    let (_, token) = add_home(&server, "Rose Court");
    let op = account(&server, "op.one", "operator").await;
    let dr = account(&server, "dr.one", "clinician").await;
    let dr2 = account(&server, "dr.two", "clinician").await;
    let spec = account(&server, "spec.one", "specialist").await;

    let (code, placed) = place_call(&server, &token, true).await;
    assert_eq!(code, 201, "{placed}");
    let call = placed["call"].as_i64().unwrap();
    assert!(placed["no_answer"].is_null(), "{placed}");
    // Unanswered past the configured time: the hub's number, place kept.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, s) = status(&server, &token, call).await;
    assert_eq!(s["no_answer"]["phone"], PHONE, "{s}");
    assert_eq!(s["position"], 1, "{s}");
    assert_eq!(console(&server, &op).await["queue"][0]["overdue"], true);

    // A specialist does not answer the queue, nor see it.
    let (code, body) = answer(&server, &spec, call).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(console(&server, &spec).await["queue"], json!([]));
    let (code, body) = get_as(&server, &spec, "/admin/api/queue").await;
    assert_eq!(code, 403, "{body}");

    let (code, body) = answer(&server, &op, call).await;
    assert_eq!(code, 200, "{body}");
    let path = format!("/admin/api/hub/calls/{call}");
    // Passed on only to a clinician's account or a queue that exists, and
    // only by the one who holds it.
    let refused = [
        (
            &op,
            json!({ "clinician": "spec.one" }),
            400,
            "not a clinician",
        ),
        (&op, json!({ "queue": "nowhere" }), 400, "no queue called"),
        (
            &dr,
            json!({ "clinician": "dr.two" }),
            409,
            "only pass on a call you are in",
        ),
    ];
    for (who, body, code, why) in refused {
        let (c, b) = post_as(&server, who, &format!("{path}/transfer"), body).await;
        assert_eq!(c, code, "{b}");
        assert!(b["error"].as_str().unwrap().contains(why), "{b}");
    }
    // Passed to dr.two, who does not take it: the operator passes it again.
    let (code, body) = post_as(
        &server,
        &op,
        &format!("{path}/transfer"),
        json!({ "clinician": "dr.two" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        console(&server, &op).await["holding"][0]["call"],
        call,
        "passed, not yet taken"
    );
    let (code, body) = post_as(
        &server,
        &op,
        &format!("{path}/transfer"),
        json!({ "clinician": "dr.one" }),
    )
    .await;
    assert_eq!(code, 200, "the one who passed it may pass it again: {body}");
    let (_, s) = status(&server, &token, call).await;
    assert_eq!(
        (s["state"].as_str(), s["with_you"].as_str()),
        (Some("transferring"), Some("dr.one")),
        "{s}"
    );
    let mine = console(&server, &dr).await;
    assert_eq!(mine["for_you"][0]["kind"], "transfer", "{mine}");
    assert_eq!(mine["for_you"][0]["call"], call);
    assert_eq!(
        console(&server, &dr2).await["for_you"],
        json!([]),
        "not passed to dr.two"
    );

    let (code, body) = post_as(&server, &dr2, &format!("{path}/accept"), json!({})).await;
    assert_eq!(
        code, 409,
        "dr.two takes what was passed on to dr.one: {body}"
    );
    let (code, body) = post_as(&server, &dr, &format!("{path}/accept"), json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["join_url"].as_str().unwrap().contains("/join?t="),
        "{body}"
    );
    assert_eq!(console(&server, &dr).await["holding"][0]["call"], call);

    // Only a clinician invites; the specialist is told in the console.
    let (code, body) = post_as(
        &server,
        &op,
        &format!("{path}/invite"),
        json!({ "specialist": "spec.one" }),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = post_as(
        &server,
        &dr,
        &format!("{path}/invite"),
        json!({ "specialist": "spec.one" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["join_url"].as_str().unwrap().contains("/join?t="),
        "a link to send by other means: {body}"
    );
    let theirs = console(&server, &spec).await;
    assert_eq!(theirs["for_you"][0]["kind"], "invitation", "{theirs}");
    // A guest (no account) gets the link only, even under an account's name.
    let (code, body) = post_as(
        &server,
        &dr,
        &format!("{path}/invite"),
        json!({ "guest": "op.one" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        console(&server, &op).await["for_you"],
        json!([]),
        "not the operator's invitation"
    );
    let (code, body) = post_as(&server, &op, &format!("{path}/accept"), json!({})).await;
    assert_eq!(code, 409, "{body}");
    let (code, body) = post_as(&server, &spec, &format!("{path}/accept"), json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        console(&server, &spec).await["for_you"],
        json!([]),
        "taken up"
    );

    // Passed to a named queue: it waits there, and is answered from it.
    let (code, body) = post_as(
        &server,
        &dr,
        &format!("{path}/transfer"),
        json!({ "queue": "frailty" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (_, s) = status(&server, &token, call).await;
    assert_eq!(
        (
            s["state"].as_str(),
            s["queue"].as_str(),
            s["position"].as_i64()
        ),
        (Some("waiting"), Some("frailty"), Some(1)),
        "{s}"
    );
    // The home is in the call already: it can be answered from the queue,
    // never declined (the home would not see the reason).
    let queue = console(&server, &dr2).await["queue"].clone();
    assert_eq!(queue[0]["call"], call, "{queue}");
    assert_eq!(queue[0]["answered"], true, "{queue}");
    let (code, body) = post_as(
        &server,
        &dr2,
        &format!("/admin/api/queue/{call}/decline"),
        json!({ "reason": "Not for this service" }),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body.to_string().contains("answered already"), "{body}");
    let (code, body) = answer(&server, &dr2, call).await;
    assert_eq!(code, 200, "{body}");

    // Every step, in order, as record-hook events about the one hub call.
    let wanted = [
        (
            "call.queued",
            json!({ "home": "Rose Court", "urgent": true, "initials": "JS" }),
        ),
        (
            "call.answered",
            json!({ "answered_by": "op.one", "queue": "hub" }),
        ),
        (
            "call.transferred",
            json!({ "by": "op.one", "to": "dr.two" }),
        ),
        (
            "call.transferred",
            json!({ "by": "op.one", "to": "dr.one" }),
        ),
        (
            "specialist.invited",
            json!({ "by": "dr.one", "specialist": "spec.one", "guest": false }),
        ),
        (
            "specialist.invited",
            json!({ "by": "dr.one", "specialist": "op.one", "guest": true }),
        ),
        (
            "call.transferred",
            json!({ "by": "dr.one", "to_queue": "frailty" }),
        ),
        (
            "call.answered",
            json!({ "answered_by": "dr.two", "queue": "frailty" }),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events: Vec<Value> = receiver
            .events()
            .into_iter()
            .filter(|e| e["data"]["hub_call"] == call)
            .collect();
        if events.len() >= wanted.len() || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        wanted.iter().map(|w| w.0).collect::<Vec<_>>(),
        "{events:#?}"
    );
    for (event, (_, fields)) in events.iter().zip(&wanted) {
        for (k, v) in fields.as_object().unwrap() {
            assert_eq!(&event["data"][k], v, "{k} in {event}");
        }
        assert_eq!(event["data"]["room"], format!("hub-call-{call}"));
    }
    assert!(
        receiver.accepted().iter().all(|d| d.verified.is_ok()),
        "every event signed"
    );
    println!("{} hub-call events in order: {kinds:?}", events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_pushed_a_new_call_and_opens_from_the_hubs_pages_only() {
    let server = Server::start();
    let (_, token) = add_home(&server, "Elm Lodge");
    let op = account(&server, "op.one", "operator").await;
    let ws_url = format!(
        "{}/admin/api/hub/ws",
        server.ws_url().split("/ws").next().unwrap()
    );
    let open = |origin: Option<String>| {
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", op.0.parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    for origin in [None, Some("http://evil.example".to_owned())] {
        let refused = open(origin.clone()).await;
        assert!(refused.is_err(), "opened with origin {origin:?}");
    }
    let (mut ws, _) = open(Some(server.base_url.clone()))
        .await
        .expect("console socket");
    let mut next = async || -> Value {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a push within 10 s")
            .expect("socket open")
            .expect("message");
        serde_json::from_str(m.to_text().unwrap()).unwrap()
    };
    let first = next().await;
    assert_eq!(first["me"], json!({ "name": "op.one", "role": "operator" }));
    // Someone is watching the queue: what the nobody-to-answer alert reads.
    let consoles = |text: &str, role: &str| {
        let series = format!(r#"carecall_consoles_open{{role="{role}"}}"#);
        crate::support::metrics::value(text, &series).unwrap_or_else(|| panic!("{series} missing"))
    };
    let text = crate::support::metrics::scrape(&server.base_url).await;
    assert_eq!(consoles(&text, "operator"), 1.0);
    assert_eq!(consoles(&text, "admin"), 0.0);
    assert_eq!(first["queue"], json!([]));
    assert_eq!(first["queues"], json!(["GP", "frailty", "mental health"]));
    let placed_at = Instant::now();
    let (code, placed) = place_call(&server, &token, false).await;
    assert_eq!(code, 201, "{placed}");
    let pushed = next().await;
    let took = placed_at.elapsed();
    assert_eq!(pushed["queue"][0]["home"], "Elm Lodge", "{pushed}");
    assert_eq!(pushed["queue"][0]["call"], placed["call"]);
    // Far sooner than the 5 s refresh: pushed by the change itself.
    assert!(took < Duration::from_secs(2), "pushed after {took:?}");
    println!(
        "a new call reached the console {} ms after it was placed",
        took.as_millis()
    );

    // Signed out: the console is closed, not left pushing the queue.
    let (code, _) = post_as(&server, &op, "/admin/logout", json!({})).await;
    assert!(code < 400, "sign out: {code}");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    break frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                _ => break None,
            }
        }
    })
    .await
    .expect("closed within 10 s of signing out");
    assert_eq!(closed, Some(4001));
    // Still signed in elsewhere or not, a closed console watches nothing.
    let text = crate::support::metrics::scrape(&server.base_url).await;
    assert_eq!(consoles(&text, "operator"), 0.0);
}
