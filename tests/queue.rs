//! The hub's call queue without browsers: homes call with their permanent
//! links, operators answer. Two operators answering the same call at the
//! same instant, 50 times: exactly one wins each time. Twenty homes calling
//! at once: the order (urgent first, then by waiting time) and each home's
//! position are right, and survive a restart. A withdrawn home link is
//! refused; a home link opens nothing but its own call.

use std::sync::Arc;

use crate::support::http::{get_with, request};
use crate::support::queue::{add_home, answer, home_cli, operator, place_call, queue, status};
use crate::support::{Server, ServerOptions};
use serde_json::json;
use tokio::sync::Barrier;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_answering_the_same_call_at_once_never_both_win() {
    let server = Arc::new(Server::start());
    let (_, token) = add_home(&server, "Rose Court");
    let one = Arc::new(operator(&server, "op.one").await);
    let two = Arc::new(operator(&server, "op.two").await);
    let mut wins = [0u32; 2];
    for round in 0..50 {
        let (code, placed) = place_call(&server, &token, false).await;
        assert_eq!(code, 201, "{placed}");
        let call = placed["call"].as_i64().unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let attempts: Vec<_> = [one.clone(), two.clone()]
            .into_iter()
            .map(|op| {
                let (server, barrier) = (server.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    answer(&server, &op, call).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for a in attempts {
            results.push(a.await.unwrap());
        }
        let won: Vec<usize> = (0..2).filter(|&i| results[i].0 == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let lost = &results[1 - won[0]];
        assert_eq!(lost.0, 409, "round {round}: {results:?}");
        assert!(
            lost.1["error"]
                .as_str()
                .unwrap()
                .starts_with("already answered by op."),
            "{lost:?}"
        );
        wins[won[0]] += 1;
        // The home learns who answered, and is given the way in.
        let (_, s) = status(&server, &token, call).await;
        assert_eq!(s["state"], "answered");
        assert!(
            s["join_url"]
                .as_str()
                .is_some_and(|u| u.contains("/join?t=")),
            "{s}"
        );
    }
    println!("50 rounds: op.one won {}, op.two won {}", wins[0], wins[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_homes_calling_at_once_keep_their_order_through_a_restart() {
    let mut server = Server::start();
    let homes: Vec<(String, String)> = (0..20)
        .map(|i| add_home(&server, &format!("Home {i:02}")))
        .collect();
    let server_ref = &server;
    // All at once; every fifth is urgent.
    let placed = futures_util::future::join_all(
        homes
            .iter()
            .enumerate()
            .map(|(i, (_, t))| async move { place_call(server_ref, t, i % 5 == 0).await }),
    )
    .await;
    let calls: Vec<i64> = placed
        .iter()
        .map(|(code, v)| {
            assert_eq!(*code, 201, "{v}");
            v["call"].as_i64().unwrap()
        })
        .collect();
    let op = operator(&server, "op.one").await;
    let order = queue(&server, &op).await;
    assert_eq!(order.len(), 20, "none lost");
    // Urgent first; within each, by arrival.
    let urgent: Vec<bool> = order
        .iter()
        .map(|c| c["urgent"].as_bool().unwrap())
        .collect();
    assert_eq!(urgent.iter().filter(|u| **u).count(), 4);
    assert!(
        urgent[..4].iter().all(|u| *u) && urgent[4..].iter().all(|u| !*u),
        "{urgent:?}"
    );
    let ids: Vec<i64> = order.iter().map(|c| c["call"].as_i64().unwrap()).collect();
    for group in [&ids[..4], &ids[4..]] {
        assert!(group.windows(2).all(|w| w[0] < w[1]), "by arrival: {ids:?}");
    }
    // Each home sees its own place.
    for (i, (_, token)) in homes.iter().enumerate() {
        let (_, s) = status(&server, token, calls[i]).await;
        let expected = ids.iter().position(|c| *c == calls[i]).unwrap() + 1;
        assert_eq!(s["position"], expected, "home {i}: {s}");
    }

    server.kill();
    let server = Server::start_with(ServerOptions {
        data_dir: Some(server.data_dir.clone()),
        ..ServerOptions::default()
    });
    let op = operator(&server, "op.two").await;
    let after: Vec<i64> = queue(&server, &op)
        .await
        .iter()
        .map(|c| c["call"].as_i64().unwrap())
        .collect();
    println!("queue before and after the restart: {ids:?} / {after:?}");
    assert_eq!(after, ids, "the queue survives a restart in the same order");
    let (_, s) = status(&server, &homes[7].1, calls[7]).await;
    assert_eq!(s["state"], "waiting");
}

#[tokio::test]
async fn a_withdrawn_home_link_is_refused_and_a_home_link_opens_nothing_else() {
    let server = Server::start();
    let (rose, rose_token) = add_home(&server, "Rose Court");
    let (_, ivy_token) = add_home(&server, "Ivy House");
    let (_, ivy_call) = place_call(&server, &ivy_token, false).await;
    let ivy_call = ivy_call["call"].as_i64().unwrap();

    // Rose's link cannot see Ivy's call, the queue, or join a call.
    let (code, _) = status(&server, &rose_token, ivy_call).await;
    assert_eq!(code, 404, "another home's call");
    let r = get_with(
        &server.base_url,
        &format!("/admin/api/queue?t={rose_token}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "the queue needs a hub sign-in");
    let (error, close) = crate::support::abuse::ws_refusal(
        &server.ws_url(),
        vec![tokio_tungstenite::tungstenite::Message::text(
            json!({"type":"join","v":1,"token":rose_token}).to_string(),
        )],
    )
    .await;
    assert_eq!(close, Some(4001), "a home link is not a join link: {error}");

    // Withdrawn: refused with a clear message. Reissued: the new link works, the old does not.
    assert!(home_cli(&server, &["revoke", &rose]).status.success());
    let (code, body) = place_call(&server, &rose_token, true).await;
    println!("withdrawn link: {code} {body}");
    assert_eq!(code, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("withdrawn by the hub"),
        "{body}"
    );
    let out = home_cli(&server, &["reissue", &rose]);
    assert!(out.status.success());
    let new_token = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .split_once("t=")
        .unwrap()
        .1
        .to_owned();
    assert_eq!(place_call(&server, &new_token, false).await.0, 201);
    assert_eq!(
        place_call(&server, &rose_token, false).await.0,
        403,
        "the old link stays withdrawn"
    );
    // Forged: refused as not this hub's.
    let (code, body) = place_call(&server, "aGVsbG8.d29ybGQ", false).await;
    assert_eq!(code, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not valid for this hub"),
        "{body}"
    );
    // No patient identifiers: initials only.
    let body = json!({ "token": new_token, "initials": "John Smith" }).to_string();
    let r = request(
        &server.base_url,
        "POST",
        "/home/api/calls",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn homes_are_managed_from_the_dashboard_by_admins_only() {
    use crate::support::queue::{account, get_as, post_as};
    let server = Server::start();
    let admin = account(&server, "hub.admin", "admin").await;
    let op = account(&server, "op.one", "operator").await;
    let (code, body) = post_as(
        &server,
        &op,
        "/admin/api/homes",
        json!({ "name": "Ash Grove" }),
    )
    .await;
    assert_eq!(code, 403, "an operator does not add homes: {body}");
    let (code, _) = post_as(&server, &admin, "/admin/api/homes", json!({ "name": " " })).await;
    assert_eq!(code, 400, "a home needs a name");

    let (code, home) = post_as(
        &server,
        &admin,
        "/admin/api/homes",
        json!({ "name": "Ash Grove" }),
    )
    .await;
    assert_eq!(code, 201, "{home}");
    let id = home["id"].as_str().unwrap().to_owned();
    let token = |h: &serde_json::Value| {
        h["link"]
            .as_str()
            .unwrap()
            .split_once("t=")
            .unwrap()
            .1
            .to_owned()
    };
    let first = token(&home);
    let (code, placed) = place_call(&server, &first, false).await;
    assert_eq!(code, 201, "the new link calls the hub: {placed}");
    let waiting = placed["call"].as_i64().expect("a call id");

    let (code, renamed) = post_as(
        &server,
        &admin,
        &format!("/admin/api/homes/{id}/rename"),
        json!({ "name": "Ash Grove Care" }),
    )
    .await;
    assert_eq!(
        (code, renamed["name"].as_str()),
        (200, Some("Ash Grove Care")),
        "{renamed}"
    );
    let queued = queue(&server, &admin).await;
    assert_eq!(
        queued[0]["home"], "Ash Grove Care",
        "the queue shows the new name"
    );

    let (code, revoked) = post_as(
        &server,
        &admin,
        &format!("/admin/api/homes/{id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(
        (code, revoked["active"].as_bool()),
        (200, Some(false)),
        "{revoked}"
    );
    assert!(revoked["link"].is_null(), "a withdrawn home shows no link");
    assert_eq!(
        place_call(&server, &first, false).await.0,
        403,
        "withdrawn at once"
    );
    // Its waiting call goes with it: no operator answers a page that is
    // refused from now on, and the page says why.
    assert!(
        queue(&server, &admin).await.is_empty(),
        "the withdrawn home's unanswered call left the queue"
    );
    let (code, refused) = status(&server, &first, waiting).await;
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused.to_string().contains("withdrawn by the hub"),
        "{refused}"
    );

    let (code, reissued) = post_as(
        &server,
        &admin,
        &format!("/admin/api/homes/{id}/reissue"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200, "{reissued}");
    let second = token(&reissued);
    assert_ne!(second, first);
    assert_eq!(
        place_call(&server, &second, false).await.0,
        201,
        "the new link works"
    );
    assert_eq!(
        place_call(&server, &first, false).await.0,
        403,
        "the old one does not"
    );
    // A link re-issued again cancels the call placed with the one before.
    assert_eq!(queue(&server, &admin).await.len(), 1);
    let (code, _) = post_as(
        &server,
        &admin,
        &format!("/admin/api/homes/{id}/reissue"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200);
    assert!(queue(&server, &admin).await.is_empty());

    let (code, list) = get_as(&server, &admin, "/admin/api/homes").await;
    assert_eq!(code, 200);
    assert_eq!(list["homes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        home_cli(&server, &["rename", &id, "Ash Grove House"])
            .status
            .code(),
        Some(0)
    );
    let (_, list) = get_as(&server, &admin, "/admin/api/homes").await;
    assert_eq!(
        list["homes"][0]["name"], "Ash Grove House",
        "renamed on the command line"
    );
    let (code, _) = post_as(&server, &admin, "/admin/api/homes/nope/revoke", json!({})).await;
    assert_eq!(code, 404);
}
