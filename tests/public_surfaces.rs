//! The public surfaces under attack, against a real server on loopback:
//! each attack that once took the hub from everyone (docs/security.md) is
//! run while a call goes on, and the test shows the call keeps its media, a
//! fresh legitimate client is still served, the refusals are counted in
//! `/metrics`, and the server's memory stays within 256 MiB of its start.
//! Attackers and legitimate clients send from different loopback addresses
//! (127.0.0.0/8 is all this machine's).

mod support;

use std::io::Read;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{request, request_from};
use support::peer::{call_survives, rss_bytes};
use support::turn::{self as turn, Client};
use support::Server;

const MIB: u64 = 1 << 20;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The TURN username and password the public check page hands out, asked
/// for from `source`.
async fn check_credential(server: &Server, source: IpAddr) -> (String, String) {
    let reply = request_from(
        source,
        &server.base_url,
        "POST",
        "/check/api/session",
        &[],
        Some("{}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    let s = &body["ice_servers"][0];
    let user = s["username"].as_str().expect("a TURN username").to_owned();
    let pass = s["credential"].as_str().expect("a password").to_owned();
    (user, pass)
}

/// Refusals in `/metrics` for TURN's `reason`.
async fn turn_refusals(server: &Server, reason: &str) -> f64 {
    let text = support::metrics::scrape(&server.base_url).await;
    support::metrics::value(
        &text,
        &format!("carecall_limit_refusals_total{{reason=\"{reason}\",surface=\"turn\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_anonymous_credential_cannot_take_turn_from_everyone() {
    let server = Server::start();
    let rss_start = rss_bytes(server.pid());
    let (udp, tcp, tls) = (
        turn::turn_udp(&server),
        turn::turn_tcp(&server),
        turn::turn_tls(&server),
    );
    let attacker = ip("127.0.0.9");
    let (user, pass) = check_credential(&server, attacker).await;
    // The check page's credentials are short-lived.
    let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
    assert!(
        expiry <= turn::now() + 600,
        "check credentials last {} s",
        expiry - turn::now()
    );
    let mut more = Vec::new();
    for _ in 0..8 {
        more.push(check_credential(&server, attacker).await);
    }

    let attack = tokio::task::spawn_blocking(move || {
        // One credential, many allocations (each from a new port).
        let mut held = Vec::new();
        let mut granted = 0;
        for i in 0..200u32 {
            let c = Client::from_ip(attacker, udp);
            let r = c.allocate((i % 250) as u8, &user, &pass);
            match turn::error_code(&r) {
                None => granted += 1,
                Some(486) => {}
                other => panic!("allocation {i}: unexpected reply {other:?}"),
            }
            held.push(c);
        }
        // More credentials from the same address.
        let mut from_address = granted;
        for (u, p) in &more {
            for i in 0..12u8 {
                let c = Client::from_ip(attacker, udp);
                if turn::error_code(&c.allocate(i, u, p)).is_none() {
                    from_address += 1;
                }
                held.push(c);
            }
        }
        // Idle TCP and TLS connections from one address.
        let idle: Vec<_> = (0..100)
            .flat_map(|_| [tcp, tls])
            .map(|to| turn::connect_from(ip("127.0.0.10"), to))
            .collect();
        (granted, from_address, held, idle)
    });
    let (granted, from_address, _held, idle) = call_survives(&server, "ward-1", async {
        attack.await.expect("the attack ran")
    })
    .await;
    assert_eq!(granted, 10, "allocations granted to one credential");
    assert_eq!(from_address, 64, "allocations granted to one address");

    // A fresh client from elsewhere is served over UDP and TCP while the
    // attacker holds all it can.
    let (user, pass) = check_credential(&server, ip("127.0.0.11")).await;
    let fresh = tokio::task::spawn_blocking(move || {
        let c = Client::from_ip(ip("127.0.0.11"), udp);
        let udp_reply = turn::error_code(&c.allocate(1, &user, &pass));
        let (_conn, tcp_reply) = turn::allocate_over_tcp(ip("127.0.0.11"), tcp, &user, &pass);
        (udp_reply, tcp_reply)
    })
    .await
    .unwrap();
    assert_eq!(
        fresh,
        (None, None),
        "a legitimate client's allocations (UDP, TCP)"
    );

    // Past 32 connections from one address, each is closed at once; the
    // rest are closed once they have sat unauthenticated for 5 s.
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .filter(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                matches!(s.read(&mut [0u8; 16]), Ok(0) | Err(_))
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 200, "idle connections closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "idle connections held {:?}",
        started.elapsed()
    );

    for reason in [
        "allocations_per_credential",
        "allocations_per_address",
        "connections_per_address",
        "unauthenticated_timeout",
    ] {
        let n = turn_refusals(&server, reason).await;
        assert!(n >= 1.0, "no {reason} refusal counted");
    }
    let rss_end = rss_bytes(server.pid());
    println!(
        "server RSS {} MiB at start, {} MiB after the attack",
        rss_start / MIB,
        rss_end / MIB
    );
    assert!(rss_end < rss_start + 256 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_neither_exhausts_memory_nor_locks_staff_out() {
    let server = Server::start();
    let password = "the admin's own long password";
    assert!(server.add_admin("hub.admin", password).status.success());
    let rss_start = rss_bytes(server.pid());
    let wrong = serde_json::json!({ "name": "hub.admin", "password": "guess" }).to_string();
    let unknown = serde_json::json!({ "name": "nobody", "password": "guess" }).to_string();
    let attacker = ip("127.0.0.9");
    let statuses = call_survives(&server, "ward-2", async {
        let tries = (0..80).map(|i| {
            let body = if i % 2 == 0 { &wrong } else { &unknown };
            request_from(
                attacker,
                &server.base_url,
                "POST",
                "/admin/login",
                &[],
                Some(body),
            )
        });
        futures_util::future::join_all(tries).await
    })
    .await;
    let checked = statuses.iter().filter(|r| r.status == 401).count();
    let refused = statuses.iter().filter(|r| r.status == 429).count();
    println!("80 concurrent wrong sign-ins: {checked} checked, {refused} refused");
    assert_eq!(checked, 5, "tries checked past the limit of 5");
    assert_eq!(checked + refused, 80);
    let rss_end = rss_bytes(server.pid());
    println!(
        "server RSS {} MiB at start, {} MiB after the flood",
        rss_start / MIB,
        rss_end / MIB
    );
    assert!(rss_end < rss_start + 256 * MIB);

    // The admin, from another address, gets in: at once, or after the
    // account's short backoff (never a lock).
    let right = serde_json::json!({ "name": "hub.admin", "password": password }).to_string();
    let admin = ip("127.0.0.12");
    let started = Instant::now();
    let reply = loop {
        let reply = request_from(
            admin,
            &server.base_url,
            "POST",
            "/admin/login",
            &[],
            Some(&right),
        )
        .await;
        if reply.status != 429 {
            break reply;
        }
        let wait: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(wait <= 30, "the account waits {wait} s");
        assert!(started.elapsed() < Duration::from_secs(40));
        tokio::time::sleep(Duration::from_secs(wait)).await;
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    // The attacker's address stays refused.
    let again = request_from(
        attacker,
        &server.base_url,
        "POST",
        "/admin/login",
        &[],
        Some(&right),
    )
    .await;
    assert_eq!(again.status, 429);
    let text = support::metrics::scrape(&server.base_url).await;
    let counted = support::metrics::value(
        &text,
        "carecall_limit_refusals_total{reason=\"failures_per_address\",surface=\"sign_in\"}",
    );
    assert!(counted >= Some(75.0), "refusals counted: {counted:?}");
    // An address that is not the attacker's is not affected by it.
    let other = request(&server.base_url, "POST", "/admin/login", &[], Some(&right)).await;
    assert_eq!(other.status, 200, "{other:?}");
}
