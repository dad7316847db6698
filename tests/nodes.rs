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
