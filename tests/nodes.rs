//! Two nodes of one hub on a shared PostgreSQL (docs/scaling.md), each its
//! own process with its own data directory: a link signed on one works on
//! the other, neither closes the other's calls when it starts, their
//! participant ids never meet, and each lists both, live, with their load,
//! on the dashboard's API and in `/metrics`, until one is killed and shows
//! lost.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::support::admin::session;
use crate::support::http::get_with;
use crate::support::{metrics, ws, DataDir, Server, ServerOptions};

fn node_on(dir: &std::sync::Arc<DataDir>) -> Server {
    Server::start_with(ServerOptions {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
}

/// `server`'s list of nodes, once `wanted` holds of it (within 12 s).
async fn nodes_when(
    server: &Server,
    cookie: &str,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let reply = get_with(&server.base_url, "/admin/api/nodes", &[("Cookie", cookie)]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let nodes: Vec<Value> = serde_json::from_str(&reply.body).expect("JSON");
        if wanted(&nodes) {
            return nodes;
        }
        assert!(
            start.elapsed() < Duration::from_secs(12),
            "the nodes never read as wanted: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node<'a>(nodes: &'a [Value], id: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["id"] == id)
        .expect("the node is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_database_and_a_killed_one_shows_lost() {
    let dir_a = DataDir::on_postgres();
    let mut a = node_on(&dir_a);
    let (_home_a, on_a) = ws::join_as(&a, "ward-a", "home").await;
    // B starts while A has a call: its start-up closes only what B left.
    let dir_b = DataDir::beside(&dir_a);
    let mut b = node_on(&dir_b);
    let (_home_b, on_b) = ws::join_as(&b, "ward-b", "home").await;
    // A link signed on A is good on B: the hub's secrets are shared.
    let _clinician_b = ws::join_by_socket(&b, &a.link("ward-b", "clinician", "Dr B", "1h")).await;

    let number = |id: &str| id.trim_start_matches('p').parse::<u64>().expect("pN");
    assert!(
        number(&on_b) > number(&on_a) + carecall_admin::nodes::IDS_PER_START - 1,
        "B numbers past A's block: A gave {on_a}, B {on_b}"
    );

    let (cookie, _) = session(&a).await;
    let both_busy = |n: &[Value]| {
        n.len() == 2
            && n.iter().all(|n| n["state"] == "live")
            && n.iter()
                .map(|n| n["participants"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 3
    };
    let seen = nodes_when(&a, &cookie, both_busy).await;
    let this = |n: &[Value]| {
        n.iter().find(|n| n["this"] == true).expect("this node")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let id_a = this(&seen);
    let id_b = this(&nodes_when(&b, &cookie, both_busy).await);
    assert_ne!(id_a, id_b);
    assert_eq!(node(&seen, &id_a)["participants"], 1, "{seen:?}");
    assert_eq!(node(&seen, &id_b)["participants"], 2, "{seen:?}");
    assert_eq!(node(&seen, &id_b)["url"], b.base_url.as_str(), "{seen:?}");

    // A's call is still open in the shared call log.
    let sessions = dir_a.call_log().sessions().expect("sessions");
    let a_session = sessions
        .iter()
        .find(|s| s.participant == on_a)
        .expect("A's session");
    assert_eq!(a_session.left_at_ms, None, "B's start closed A's session");

    // Each node's /metrics shows both.
    let up =
        |text: &str, id: &str| metrics::value(text, &format!("carecall_node_up{{node=\"{id}\"}}"));
    let scraped = metrics::scrape(&b.base_url).await;
    assert_eq!(
        (up(&scraped, &id_a), up(&scraped, &id_b)),
        (Some(1.0), Some(1.0)),
        "{scraped}"
    );

    // B is killed: A lists it lost once three heartbeats are missed.
    b.kill();
    let killed = Instant::now();
    let seen = nodes_when(&a, &cookie, |n| {
        n.iter().any(|n| n["id"] == id_b && n["state"] == "lost")
    })
    .await;
    let lost_after = killed.elapsed();
    println!(
        "B killed: shown lost on A after {:.1} s",
        lost_after.as_secs_f64()
    );
    assert!(
        lost_after >= Duration::from_secs(3),
        "lost too soon: {lost_after:?}"
    );
    assert_eq!(node(&seen, &id_a)["state"], "live");
    let scraped = metrics::scrape(&a.base_url).await;
    assert_eq!(up(&scraped, &id_b), Some(0.0), "{scraped}");
    let lost = metrics::value(&scraped, &format!("carecall_node_lost{{node=\"{id_b}\"}}"));
    assert_eq!(lost, Some(1.0), "{scraped}");

    // A stops cleanly: stopped, not lost.
    a.terminate();
    let after = dir_a.call_log().nodes(SystemTime::now()).expect("nodes");
    let states: Vec<_> = after.iter().map(|n| (n.id.clone(), n.state)).collect();
    use carecall_admin::nodes::NodeState;
    assert!(states.contains(&(id_a, NodeState::Stopped)), "{states:?}");
    assert!(states.contains(&(id_b, NodeState::Lost)), "{states:?}");
}

/// The record-hook receiver's settings for a node.
fn hooks_to(addr: std::net::SocketAddr) -> Vec<(String, String)> {
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    vec![
        env("CARECALL_HOOK_URL", &format!("http://{addr}/hooks")),
        env("CARECALL_HOOK_SECRET", crate::support::hooks::SECRET),
        env("CARECALL_HOOKS_MAX_BACKOFF_SECS", "1"),
    ]
}

/// Three browsers in a call on node A, which is killed (SIGKILL): each
/// tries to resume on A, then on B, the hub's other live node (from the
/// `nodes` message); once A is lost, B takes the call over and every
/// browser decodes the others again from B, with its participant id, on
/// a fresh media session, with no click. The queue's waiting call and the
/// record hooks lose nothing and double nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_on_a_killed_node_decode_again_from_the_other_within_10_s() {
    use crate::support::browser::{Browser, Driver};
    let hooks = std::net::SocketAddr::from(([127, 0, 0, 1], crate::support::free_port()));
    let receiver = crate::support::hooks::Receiver::default();
    receiver.listen(hooks).await;
    let dir_a = DataDir::on_postgres();
    let with_hooks = |dir: &std::sync::Arc<DataDir>| ServerOptions {
        data_dir: Some(dir.clone()),
        env: hooks_to(hooks),
        ..Default::default()
    };
    let mut a = Server::start_with(with_hooks(&dir_a));
    let b = Server::start_with(with_hooks(&DataDir::beside(&dir_a)));
    // A home's call waits in the queue, placed through A.
    let (_, home) = crate::support::queue::add_home(&a, "Rose Court");
    let (status, placed) = crate::support::queue::place_call(&a, &home, false).await;
    assert_eq!(status, 201, "{placed}");
    let queued = placed["call"].as_i64().expect("call id");

    let driver = Driver::start().await;
    let browsers = crate::support::calls::join_three(&driver, &a, "failover-1").await;
    let refs: Vec<&Browser> = browsers.iter().collect();
    crate::support::calls::wait_all_decoding(&refs, 2, Duration::from_secs(60)).await;
    let mut ids = Vec::new();
    for br in &browsers {
        ids.push(br.participant().await.expect("joined"));
        let hub = br.eval("return window.carecall.call.hub;").await;
        assert_eq!(
            hub,
            a.base_url.as_str(),
            "the room is on A, where it was first joined"
        );
        br.eval("window.carecall.call.pc.beforeRestart = true; return true;")
            .await;
    }

    a.kill();
    let killed = Instant::now();
    let back =
        crate::restart::all_decoding_afresh_within_10_s(&browsers, killed, " of the kill").await;
    println!("node A killed: decoding again from B after {back:?}");
    for (br, id) in browsers.iter().zip(&ids) {
        assert_eq!(
            br.participant().await.as_deref(),
            Some(id.as_str()),
            "same id"
        );
        let hub = br.eval("return window.carecall.call.hub;").await;
        assert_eq!(hub, b.base_url.as_str(), "the call is on B now");
    }

    // The queue's call is still waiting, read through B.
    let (status, now) = crate::support::queue::status(&b, &home, queued).await;
    assert_eq!(
        (status, now["state"].as_str()),
        (200, Some("waiting")),
        "{now}"
    );
    // One consultation in the history, its three sessions carried.
    let calls = crate::hooks::history(&b).await;
    let ours: Vec<_> = calls.iter().filter(|c| c.1 == 3).collect();
    assert_eq!(ours.len(), 1, "one consultation of three: {calls:?}");
    // Every hook event once (by webhook-id), the call's once each.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = receiver.events();
        let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
        if of("participant.joined") >= 3 {
            let mut delivered: Vec<String> =
                receiver.accepted().into_iter().map(|d| d.id).collect();
            let all = delivered.len();
            delivered.sort();
            delivered.dedup();
            assert_eq!(delivered.len(), all, "an event delivered twice: {events:?}");
            assert_eq!(of("participant.joined"), 3, "no second join: {events:?}");
            assert_eq!(of("participant.left"), 0, "nobody left: {events:?}");
            break;
        }
        assert!(Instant::now() < deadline, "hook events: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for br in browsers {
        br.close().await;
    }
}

/// PostgreSQL restarting under a running node (a crash of the database, a
/// failover of it) loses no call event: the call log waits for it and
/// writes what happened meanwhile; the node's heartbeat and readiness come
/// back by themselves, with no restart of carecall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_postgresql_loses_no_call_event() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = DataDir::on_postgres();
    let server = node_on(&dir);
    let (mut first, p_first) = ws::join_as(&server, "ward-pg", "home").await;
    dir.restart_database();
    // Written while the old connections are cut: a leave and a join.
    first
        .send(Message::text(
            serde_json::json!({"type": "leave"}).to_string(),
        ))
        .await
        .expect("leave");
    let (_second, p_second) = ws::join_as(&server, "ward-pg", "clinician").await;
    let start = Instant::now();
    loop {
        let sessions = dir.call_log().sessions().expect("sessions");
        let of = |p: &str| sessions.iter().find(|s| s.participant == p).cloned();
        let (left, joined) = (of(&p_first), of(&p_second));
        if left.as_ref().is_some_and(|s| s.left_at_ms.is_some()) && joined.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the call log lost an event: {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = Instant::now();
    loop {
        let ready = get_with(&server.base_url, "/readyz", &[]).await;
        if ready.status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{ready:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (cookie, _) = session(&server).await;
    nodes_when(&server, &cookie, |n| {
        n.len() == 1 && n[0]["state"] == "live"
    })
    .await;
}
