//! `SIGHUP` reloads the configuration file: a changed hook receiver takes
//! every event after the reload and the old one keeps those before it
//! (none lost, none sent twice); changed service hours and log level are
//! in force at once, and so are new limits, for what comes after them; a
//! file with a mistake changes nothing and the log says why.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::hooks::consultation;
use crate::support::hooks::{Receiver, SECRET};
use crate::support::{token_of, Server, ServerOptions};

fn config(receiver: SocketAddr) -> String {
    format!(
        "[hooks]\nmax_backoff_secs = 1\n\n[[hooks.endpoints]]\nurl = \"http://{receiver}/hooks\"\nsecret = \"{SECRET}\"\n"
    )
}

/// Rewrites the server's configuration file, sends SIGHUP, and waits for
/// the log line `expect` (after the ones already there).
fn reload(server: &Server, text: &str, expect: &str) -> String {
    let file = server.data_dir.path().join("carecall.toml");
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let seen = log(server).matches(expect).count();
    let sent = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = log(server);
        if text.matches(expect).count() > seen {
            let line = text
                .lines()
                .rev()
                .find(|l| l.contains(expect))
                .unwrap_or("");
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {expect:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Service hours with the one service open only two hours from now: closed
/// now, whatever the time the test runs.
fn closed_now() -> String {
    let hour = (crate::support::hooks::unix_now() / 3600 + 2) % 24;
    let end = if hour == 23 { 24 } else { hour + 1 };
    format!(
        "log_level = \"info,carecall=debug\"\n\n[service_hours]\n\n[[service_hours.services]]\nname = \"Clinical hub\"\nopen = [\"Daily {hour:02}:00-{end:02}:00\"]\n\n"
    )
}

/// `carecall_service_open` now.
async fn open_now(server: &Server) -> Option<f64> {
    let text = crate::support::metrics::scrape(&server.base_url).await;
    crate::support::metrics::value(&text, "carecall_service_open")
}

fn log(server: &Server) -> String {
    std::fs::read_to_string(server.log_path()).unwrap_or_default()
}

/// Runs one two-person consultation in `room`.
async fn call(server: &Server, room: &str) {
    let links = (
        token_of(&server.link(room, "home", "Home", "1h")),
        token_of(&server.link(room, "clinician", "Clinician", "1h")),
    );
    consultation(server.ws_url(), links).await;
}

/// Waits until `receiver` has `n` events.
async fn wait_events(receiver: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.events().len() < n {
        assert!(
            Instant::now() < deadline,
            "{} events of {n}: {:?}",
            receiver.events().len(),
            receiver.events()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_moves_events_to_a_new_receiver_and_a_bad_file_changes_nothing() {
    let (a_addr, b_addr) = (
        SocketAddr::from(([127, 0, 0, 1], crate::support::free_port())),
        SocketAddr::from(([127, 0, 0, 1], crate::support::free_port())),
    );
    let (a, b) = (Receiver::default(), Receiver::default());
    a.listen(a_addr).await;
    b.listen(b_addr).await;
    let server = Server::start_with(ServerOptions {
        config: Some(config(a_addr)),
        text_log: true,
        ..ServerOptions::default()
    });
    // A consultation: started, two joins, two leaves, ended.
    call(&server, "reload-1").await;
    wait_events(&a, 6).await;

    let said = reload(&server, &config(b_addr), "configuration reloaded");
    println!("{said}");
    assert!(said.contains("hooks"), "{said}");
    call(&server, "reload-2").await;
    wait_events(&b, 6).await;

    // Service hours and the log level, live.
    assert_eq!(
        open_now(&server).await,
        Some(1.0),
        "open all day by default"
    );
    let closed = format!("{}{}", closed_now(), config(b_addr));
    let said = reload(&server, &closed, "configuration reloaded");
    println!("{said}");
    assert!(
        said.contains("service_hours") && said.contains("log_level"),
        "{said}"
    );
    assert_eq!(open_now(&server).await, Some(0.0), "closed by the reload");

    // A mistake: nothing changes, and the log says what.
    let bad = format!("{}\n[media]\nport = \"five thousand\"\n", config(a_addr));
    let said = reload(&server, &bad, "configuration not reloaded");
    println!("{said}");
    assert!(said.contains("media.port"), "{said}");
    assert_eq!(open_now(&server).await, Some(0.0), "still closed");
    call(&server, "reload-3").await;
    wait_events(&b, 12).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let consultations = |r: &Receiver| -> HashSet<i64> {
        r.events()
            .iter()
            .filter_map(|e| e["data"]["consultation"].as_i64())
            .collect()
    };
    let (on_a, on_b) = (consultations(&a), consultations(&b));
    println!("consultations on the old receiver {on_a:?}, on the new {on_b:?}");
    assert_eq!(on_a.len(), 1, "before the reload, all to the old");
    assert_eq!(on_b.len(), 2, "after it, all to the new");
    assert!(on_a.is_disjoint(&on_b), "none to both");
    assert_eq!(
        a.events().len(),
        6,
        "nothing more to the old: {:?}",
        a.events()
    );
    assert_eq!(b.events().len(), 12, "{:?}", b.events());
    let mut ids = HashSet::new();
    for d in a.accepted().iter().chain(b.accepted().iter()) {
        assert!(ids.insert(d.id.clone()), "{} sent twice", d.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_puts_new_limits_in_force_for_what_comes_next() {
    use crate::public_surfaces::{closed_by_server, slow_clients};
    let server = Server::start_with(ServerOptions {
        config: Some(String::new()),
        text_log: true,
        ..ServerOptions::default()
    });
    let addr = server.http_addr();
    let client: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    // Three connections that have sent nothing yet: under the default 64.
    let held = tokio::task::spawn_blocking(move || slow_clients(client, addr, 3, b""))
        .await
        .unwrap();

    let limited = "[limits]\nhttp_connections_per_address = 3\ntrusted_proxies = [\"127.0.0.2\"]\n";
    let said = reload(&server, limited, "configuration reloaded");
    println!("{said}");
    let applied = said.split("applied").nth(1).unwrap_or("");
    assert!(applied.contains("[\"limits\"]"), "{said}");
    assert!(
        said.contains("limits.trusted_proxies"),
        "a change that waits for a restart is named: {said}"
    );

    let (fourth, held) = tokio::task::spawn_blocking(move || {
        let fourth = slow_clients(client, addr, 1, b"");
        let fourth = closed_by_server(fourth, Duration::from_secs(2));
        (fourth, closed_by_server(held, Duration::from_millis(500)))
    })
    .await
    .unwrap();
    assert_eq!(
        fourth, 1,
        "a fourth connection is refused under the new limit"
    );
    assert_eq!(held, 0, "connections held before the reload stay open");
    let text = crate::support::metrics::scrape(&server.base_url).await;
    let refused = crate::support::metrics::value(
        &text,
        r#"carecall_limit_refusals_total{reason="connections_per_address",surface="http"}"#,
    );
    assert_eq!(refused, Some(1.0));
}
