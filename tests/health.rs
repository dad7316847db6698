//! `/healthz` says the process answers; `/readyz` says the hub can take
//! calls: the database took a write and every media worker runs.

use crate::support::http::request;
use crate::support::Server;

#[tokio::test]
async fn a_started_hub_is_healthy_and_ready() {
    let server = Server::start();
    let health = request(&server.base_url, "GET", "/healthz", &[], None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let ready = request(&server.base_url, "GET", "/readyz", &[], None).await;
    println!("{}", ready.body);
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["media"], "ok");
    assert_eq!(body["turn"], "running");
}
