//! The clinical record over HTTP: a clinician attaches a resident to the
//! call they answered (a wrong check digit is refused), the identifiers are
//! sealed in the database file and absent from the log and `/metrics`, and
//! the audit trail lists every look.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::metrics::scrape;
use crate::support::queue::{account, answered_call, get_as, post_as, AnsweredCall};
use crate::support::{ws, Server, ServerOptions};

const NHS_NUMBER: &str = "9434765919";
const NAME: &str = "Mabel Brown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_attached_to_a_call_is_sealed_at_rest_and_every_look_is_audited() {
    // The most talkative log the server writes (debug for the media and
    // signalling planes): no line of it may hold an identifier.
    // Outcomes are due at once, so the missing one shows without waiting.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("carecall.toml");
    std::fs::write(&config, "[queue]\noutcome_due_hours = 0\n").unwrap();
    let server = Server::start_with(ServerOptions {
        json_log: true,
        env: vec![("CARECALL_CONFIG".into(), config.display().to_string())],
        ..ServerOptions::default()
    });
    let AnsweredCall {
        call, dr, answered, ..
    } = answered_call(&server, true).await;
    let path = format!("/admin/api/hub/calls/{call}/residents");
    let mabel = |nhs: &str| json!({ "nhs_number": nhs, "name": NAME, "birth_date": "1938-04-21" });

    // Nobody in the call yet: no consultation to attach to.
    let (code, body) = post_as(&server, &dr, &path, mabel(NHS_NUMBER)).await;
    assert_eq!(
        (code, &body["error"]),
        (404, &json!("nobody is in this call now"))
    );
    let mut socket = ws::join_by_socket(&server, answered["join_url"].as_str().unwrap()).await;

    let (code, refused) = post_as(&server, &dr, &path, mabel("943 476 5918")).await;
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("check digit"),
        "{refused}"
    );
    let (code, added) = post_as(&server, &dr, &path, mabel("943 476 5919")).await;
    assert_eq!(code, 201, "{added}");
    let operator = account(&server, "op.one", "operator").await;
    let (code, _) = post_as(&server, &operator, &path, mabel(NHS_NUMBER)).await;
    assert_eq!(code, 403, "an operator does not attach residents");

    let (code, listed) = get_as(&server, &dr, &path).await;
    assert_eq!(code, 200, "{listed}");
    let resident = &listed["encounters"][0]["resident"];
    assert_eq!(
        (
            &resident["nhs_number"],
            &resident["name"],
            &resident["birth_date"]
        ),
        (&json!(NHS_NUMBER), &json!(NAME), &json!("1938-04-21"))
    );
    assert_eq!(listed["encounters"].as_array().unwrap().len(), 1);

    // Not in the database file (nor its write-ahead log), the log or
    // /metrics.
    let metrics = scrape(&server.base_url).await;
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let mut places = vec![
        ("/metrics".to_owned(), metrics.into_bytes()),
        ("the log".into(), log.into_bytes()),
    ];
    for path in server.data_dir.record_files() {
        if let Ok(bytes) = std::fs::read(&path) {
            places.push((path.display().to_string(), bytes));
        }
    }
    assert!(places.len() >= 3, "the database's files are there");
    for (place, bytes) in &places {
        for secret in [NHS_NUMBER, NAME, "1938-04-21"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} in {place} in plain text"
            );
        }
    }

    // The call ends with no outcome: the dashboard's list shows it, until
    // the clinician records one.
    socket
        .send(Message::text(json!({ "type": "leave" }).to_string()))
        .await
        .expect("leave");
    let admin = account(&server, "hub.admin", "admin").await;
    let consultation = listed["encounters"][0]["consultation"].clone();
    let missing = || async {
        let (code, body) = get_as(&server, &admin, "/admin/api/outcomes/missing").await;
        assert_eq!(code, 200, "{body}");
        body["missing"].as_array().unwrap().clone()
    };
    let start = std::time::Instant::now();
    let shown = loop {
        let now = missing().await;
        if let Some(m) = now.iter().find(|m| m["consultation"] == consultation) {
            break m.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never listed: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (&shown["residents"], &shown["without_outcome"]),
        (&json!(1), &json!(1))
    );
    let encounter = listed["encounters"][0]["id"].as_i64().unwrap();
    let outcome = json!({
        "disposition": "gp-follow-up", "conveyance_avoided": false, "medicines_prescribed": false,
        "restore2_used": false, "respect": "none", "treatment_plan": false,
        "note": "Seen; GP to review.", "care_plan": { "text": "Observe.", "actions": [] }
    });
    let done = format!("/admin/api/encounters/{encounter}/outcome");
    let (code, body) = post_as(&server, &dr, &done, outcome.clone()).await;
    assert_eq!((code, &body["amended"]), (200, &json!(false)), "{body}");
    let (code, body) = post_as(&server, &dr, &done, outcome).await;
    assert_eq!((code, &body["amended"]), (200, &json!(true)), "{body}");
    assert!(
        missing()
            .await
            .iter()
            .all(|m| m["consultation"] != consultation),
        "still listed after the outcome"
    );

    // The audit trail: each look, by whom and from where; admins only.
    let (code, _) = get_as(&server, &dr, "/admin/api/audit").await;
    assert_eq!(code, 403, "a clinician does not read the audit trail");
    let (code, trail) = get_as(&server, &admin, "/admin/api/audit").await;
    assert_eq!(code, 200, "{trail}");
    let seen: Vec<(String, String, String)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("account"), s("from"))
        })
        .collect();
    let by_dr = |action: &str| {
        (
            action.to_owned(),
            "dr.one".to_owned(),
            "127.0.0.1".to_owned(),
        )
    };
    assert_eq!(
        seen,
        vec![
            by_dr("outcome.edited"),
            by_dr("outcome.recorded"),
            by_dr("residents.viewed"),
            by_dr("resident.attached")
        ]
    );
    let csv = crate::support::http::get_with(
        &server.base_url,
        "/admin/api/audit.csv",
        &[("Cookie", admin.0.as_str())],
    )
    .await;
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines[0], "time,account,from,action,subject");
    assert_eq!(lines.len(), 5, "{}", csv.body);
    assert!(
        lines[1].contains(",dr.one,127.0.0.1,outcome.edited,"),
        "{}",
        lines[1]
    );
}

/// On a hub of several nodes the clinician's join may reach another node,
/// whose call log lands it after this node looked: an attach then looks
/// again for a few seconds before it says nobody is in the call. Two nodes
/// on one PostgreSQL: the attach asked on A, the join made on B a second
/// later. (On SQLite one process writes the log, and its writer is waited
/// for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_hub_of_two_nodes_an_attach_waits_for_a_join_the_other_node_takes() {
    let dir_a = crate::support::DataDir::on_postgres();
    let a = Server::start_with(ServerOptions {
        data_dir: Some(dir_a.clone()),
        ..ServerOptions::default()
    });
    let AnsweredCall {
        call, dr, answered, ..
    } = answered_call(&a, true).await;
    let b = Server::start_with(ServerOptions {
        data_dir: Some(crate::support::DataDir::beside(&dir_a)),
        ..ServerOptions::default()
    });
    let path = format!("/admin/api/hub/calls/{call}/residents");
    let mabel = json!({ "nhs_number": NHS_NUMBER, "name": NAME, "birth_date": "1938-04-21" });
    let join_url = answered["join_url"].as_str().unwrap();

    let asked = std::time::Instant::now();
    let attach = async {
        let (code, added) = post_as(&a, &dr, &path, mabel).await;
        (code, added, asked.elapsed())
    };
    let join_on_b = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ws::join_by_socket(&b, join_url).await
    };
    let ((code, added, took), _socket) = tokio::join!(attach, join_on_b);
    assert_eq!(code, 201, "{added}");
    assert!(added["encounter"].is_i64(), "{added}");
    assert!(
        took >= Duration::from_secs(1),
        "attached {took:?} after asking, before anyone joined"
    );
}
