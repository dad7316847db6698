//! The public surfaces under attack, against a real server on loopback:
//! each attack that once took the hub from everyone (docs/security.md) is
//! run while a call goes on, and the test shows the call keeps its media, a
//! fresh legitimate client is still served, the refusals are counted in
//! `/metrics`, and the server's memory stays within 256 MiB of its start.
//! Attackers and legitimate clients send from different loopback addresses
//! (127.0.0.0/8 is all this machine's).

use std::io::Read;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::http::{request, request_from};
use crate::support::peer::{call_survives, rss_bytes};
use crate::support::turn::{self as turn, Client};
use crate::support::Server;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Asserts the server's memory is within `bound_mib` of `rss_start` (bytes),
/// printing both.
fn assert_memory_held(server: &Server, rss_start: u64, bound_mib: u64, when: &str) {
    let rss_end = rss_bytes(server.pid());
    println!(
        "server RSS {} MiB at start, {} MiB {when}",
        rss_start / MIB,
        rss_end / MIB
    );
    assert!(
        rss_end < rss_start + bound_mib * MIB,
        "memory grew past {bound_mib} MiB {when}"
    );
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

/// Refusals in `/metrics` on `surface` for `reason`; none counted yet is 0.
async fn refusals(server: &Server, surface: &str, reason: &str) -> f64 {
    let text = crate::support::metrics::scrape(&server.base_url).await;
    crate::support::metrics::value(
        &text,
        &format!("carecall_limit_refusals_total{{reason=\"{reason}\",surface=\"{surface}\"}}"),
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
        let n = refusals(&server, "turn", reason).await;
        assert!(n >= 1.0, "no {reason} refusal counted");
    }
    assert_memory_held(&server, rss_start, 256, "after the attack");
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
    // Past 64 connections from one address, the rest are closed unanswered.
    let unanswered = statuses.iter().filter(|r| r.status == 0).count();
    println!(
        "80 concurrent wrong sign-ins: {checked} checked, {refused} refused, {unanswered} connections refused"
    );
    assert_eq!(checked, 5, "tries checked past the limit of 5");
    assert_eq!(checked + refused + unanswered, 80);
    assert_memory_held(&server, rss_start, 256, "after the flood");

    // The admin, from another address, gets in: at once, or after the
    // account's short backoff (never a lock).
    let right = serde_json::json!({ "name": "hub.admin", "password": password }).to_string();
    let admin = ip("127.0.0.12");
    let started = Instant::now();
    let mut admin_waits = 0;
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
        admin_waits += 1;
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
    // Every 429 is counted once, under the address's limit or, for a try
    // that reached the account first, the account's backoff (the admin's
    // waits included).
    let counted = refusals(&server, "sign_in", "failures_per_address").await
        + refusals(&server, "sign_in", "account_backoff").await;
    assert_eq!(
        counted,
        (refused + 1 + admin_waits) as f64,
        "refusals counted"
    );
    // An address that is not the attacker's is not affected by it.
    let other = request(&server.base_url, "POST", "/admin/login", &[], Some(&right)).await;
    assert_eq!(other.status, 200, "{other:?}");
}

/// The database and its write-ahead log, in bytes.
fn database_bytes(server: &Server) -> u64 {
    let wal = server.db_path().with_extension("db-wal");
    [server.db_path(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A check offer as the page makes it: audio, video and data, gathered.
async fn a_normal_check_offer() -> String {
    use carecall_load::peer::{gathered_sdp, Media, Publish};
    let m = Media::new("check", 7, Publish::OneLayer, None, ip("127.0.0.1")).await;
    let offer = m.pc.create_offer(None).await.expect("offer");
    m.pc.set_local_description(offer).await.expect("set offer");
    let sdp = gathered_sdp(&*m.pc).await;
    let _ = m.pc.close().await;
    sdp
}

/// Posts `sdp` as a check offer from `source`; the status and how long the
/// answer took.
async fn post_check_offer(server: &Server, source: IpAddr, sdp: &str) -> (u16, Duration) {
    let body = serde_json::json!({ "path": "udp", "sdp": sdp }).to_string();
    let started = Instant::now();
    let r = request_from(
        source,
        &server.base_url,
        "POST",
        "/check/api/offer",
        &[],
        Some(&body),
    )
    .await;
    (r.status, started.elapsed())
}

/// An SDP offer with `n` media sections.
fn offer_with_sections(n: usize) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..n {
        sdp.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\n"));
    }
    sdp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_offers_cannot_stall_the_media_worker() {
    let server = Server::start();
    let normal = a_normal_check_offer().await;
    let (status, took) = post_check_offer(&server, ip("127.0.0.11"), &normal).await;
    assert_eq!(status, 200, "a normal check offer");
    println!("a normal check offer answered in {took:?} before the attack");
    let huge = offer_with_sections(5_000);
    assert!(huge.len() > 100_000);
    let under_64k = offer_with_sections(1_000);
    assert!(under_64k.len() < 50_000);
    let link = server.link("ward-5", "home", "Rose Court", "1h");
    let join =
        serde_json::json!({"type": "join", "v": 1, "token": crate::support::token_of(&link)});
    let offer = serde_json::json!({"type": "offer", "sdp": under_64k});
    let ws_url = server.ws_url();
    let (statuses, socket, normal_took) = call_survives(&server, "ward-6", async {
        let attacker = ip("127.0.0.9");
        let posts = (0..9).map(|i| {
            let sdp = if i % 2 == 0 { &huge } else { &under_64k };
            post_check_offer(&server, attacker, sdp)
        });
        let socket = crate::support::abuse::ws_refusal(
            &ws_url,
            vec![join.to_string().into(), offer.to_string().into()],
        );
        let (statuses, socket) = tokio::join!(futures_util::future::join_all(posts), socket);
        let (status, took) = post_check_offer(&server, ip("127.0.0.11"), &normal).await;
        assert_eq!(status, 200, "a normal check offer during the attack");
        (statuses, socket, took)
    })
    .await;
    for (i, (status, _)) in statuses.iter().enumerate() {
        let expected = if i % 2 == 0 { 413 } else { 400 };
        assert_eq!(*status, expected, "oversized check offer {i}");
    }
    let (error, close) = socket;
    assert_eq!(error["code"], "sdp-too-large", "{error}");
    assert_eq!(close, Some(1008));
    println!("a normal check offer answered in {normal_took:?} during the attack");
    assert!(normal_took < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_flood_is_cut_off_at_the_socket() {
    let server = Server::start();
    let normal = a_normal_check_offer().await;
    let rss_start = rss_bytes(server.pid());
    let ws_url = server.ws_url();
    let join_msg = |room: &str| {
        let link = server.link(room, "home", "Rose Court", "1h");
        serde_json::json!({"type": "join", "v": 1, "token": crate::support::token_of(&link)})
            .to_string()
            .into()
    };
    let candidate = |i: usize| {
        serde_json::json!({"type": "candidate",
            "candidate": format!("candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host", 1024 + i % 60000)})
        .to_string()
        .into()
    };
    // 40,000 candidates at once: cut at the per-offer limit.
    let mut flood = vec![join_msg("ward-7")];
    flood.extend((0..40_000).map(candidate));
    // Slow enough, but past the limit for one offer.
    let mut many = vec![join_msg("ward-8")];
    many.extend((0..100).map(candidate));
    // 4,000 oversized messages whose error would echo them back.
    let mut echo = vec![join_msg("ward-9")];
    let big_name = "x".repeat(60_000);
    echo.extend((0..4_000).map(|_| {
        serde_json::json!({"type": "view", "participant": big_name, "height": 360})
            .to_string()
            .into()
    }));
    let (fast, slow, echoed, took) = call_survives(&server, "ward-10", async {
        let (fast, slow, echoed) = tokio::join!(
            crate::support::abuse::ws_refusal(&ws_url, flood),
            crate::support::abuse::ws_refusal(&ws_url, many),
            crate::support::abuse::ws_refusal(&ws_url, echo),
        );
        let (status, took) = post_check_offer(&server, ip("127.0.0.11"), &normal).await;
        assert_eq!(status, 200, "a normal check offer during the flood");
        (fast, slow, echoed, took)
    })
    .await;
    assert_eq!(fast.0["code"], "too-many-candidates", "{}", fast.0);
    assert_eq!(fast.1, Some(1008));
    assert_eq!(slow.0["code"], "too-many-candidates", "{}", slow.0);
    assert_eq!(echoed.0["code"], "too-fast", "{}", echoed.0);
    println!("a normal check offer answered in {took:?} during the flood");
    assert!(took < Duration::from_millis(500));
    assert_memory_held(&server, rss_start, 256, "after the flood");
    for reason in ["too_fast", "too_many_candidates"] {
        let counted = refusals(&server, "socket", reason).await;
        assert!(counted >= 1.0, "socket refusal {reason} not counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_page_cannot_fill_the_disk_or_pin_memory() {
    let server = Server::start();
    let rss_start = rss_bytes(server.pid());
    let db_start = database_bytes(&server);
    let result = serde_json::json!({
        "camera": {"ok": true}, "microphone": {"ok": true},
        "udp": {"ok": true, "rtt_ms": 12}, "tcp": {"ok": true}, "turn_tls": {"ok": true},
        "download_kbps": 9000, "upload_kbps": 4000, "loss": 0.0
    })
    .to_string();
    let attacker = ip("127.0.0.9");
    let (stored, held) = call_survives(&server, "ward-11", async {
        let mut stored = 0;
        for _ in 0..1_000 {
            let r = request_from(
                attacker,
                &server.base_url,
                "POST",
                "/check/api/result",
                &[],
                Some(&result),
            )
            .await;
            match r.status {
                200 => stored += 1,
                429 => {}
                other => panic!("result post: {other} {r:?}"),
            }
        }
        // Downloads that are never read.
        let mut held = Vec::new();
        for _ in 0..40 {
            let mut s = turn::connect_from(attacker, server.http_addr());
            std::io::Write::write_all(
                &mut s,
                b"GET /check/api/download?bytes=8388608 HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            held.push(s);
        }
        (stored, held)
    })
    .await;
    assert_eq!(stored, 10, "results stored from one address in an hour");
    // Another address is served: a result and a whole download.
    let r = request_from(
        ip("127.0.0.11"),
        &server.base_url,
        "POST",
        "/check/api/result",
        &[],
        Some(&result),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let addr = server.http_addr();
    let got = tokio::task::spawn_blocking(move || {
        let mut s = turn::connect_from(ip("127.0.0.11"), addr);
        std::io::Write::write_all(
            &mut s,
            b"GET /check/api/download?bytes=1000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let head = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a header") + 4;
        (String::from_utf8_lossy(&all[..12]).into_owned(), all.len() - head)
    })
    .await
    .unwrap();
    assert_eq!(
        got,
        ("HTTP/1.1 200".to_owned(), 1_000_000),
        "another address's download"
    );
    let db_end = database_bytes(&server);
    println!(
        "database {} KiB before, {} KiB after",
        db_start / 1024,
        db_end / 1024
    );
    assert!(
        db_end < db_start + (1 << 20),
        "the database grew {} bytes",
        db_end - db_start
    );
    assert_memory_held(&server, rss_start, 64, "with 40 downloads unread");
    drop(held);
}

/// Opens `n` connections from `source` to `to`, each sending `first` (maybe
/// nothing) and then nothing more; returns them.
pub(crate) fn slow_clients(
    source: IpAddr,
    to: std::net::SocketAddr,
    n: usize,
    first: &[u8],
) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = turn::connect_from(source, to);
            let _ = std::io::Write::write_all(&mut s, first);
            s
        })
        .collect()
}

/// How many of `clients` the server has closed, waiting up to `within`
/// for each.
pub(crate) fn closed_by_server(clients: Vec<std::net::TcpStream>, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    clients
        .into_iter()
        .filter(|mut s| {
            let left = deadline.saturating_duration_since(Instant::now());
            s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
                .unwrap();
            let mut buf = [0u8; 512];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) if Instant::now() < deadline => return true,
                    Ok(0) | Err(_) => return false,
                    // An answer (a 408, say) before the close.
                    Ok(_) => continue,
                }
            }
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_clients_are_cut_off_and_capped() {
    let server = Server::start();
    let addr = server.http_addr();
    let attacker = ip("127.0.0.9");
    let started = Instant::now();
    let closed = call_survives(&server, "ward-12", async {
        let clients = tokio::task::spawn_blocking(move || {
            let mut all = slow_clients(attacker, addr, 450, b"GET /check HTTP/1.1\r\nHost: x\r\n");
            all.extend(slow_clients(attacker, addr, 50, b""));
            all
        })
        .await
        .unwrap();
        // Another address is served while they hang.
        let page = request_from(
            ip("127.0.0.11"),
            &server.base_url,
            "GET",
            "/check",
            &[],
            None,
        )
        .await;
        assert_eq!(page.status, 200, "a page for another address");
        tokio::task::spawn_blocking(move || closed_by_server(clients, Duration::from_secs(15)))
            .await
            .unwrap()
    })
    .await;
    println!(
        "500 slow connections from one address: {closed} closed by the server within {:?}",
        started.elapsed()
    );
    assert_eq!(closed, 500, "slow connections left open");
    let capped = refusals(&server, "http", "connections_per_address").await;
    assert_eq!(capped, 436.0, "connections past 64 refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tls_handshakes_are_cut_off_and_capped() {
    let server = Server::start_with(crate::support::ServerOptions {
        env: vec![
            ("CARECALL_HTTPS_ENABLED".into(), "true".into()),
            ("CARECALL_HTTPS_ADDR".into(), "127.0.0.1:0".into()),
        ],
        ..crate::support::ServerOptions::default()
    });
    let addr = server.http_addr();
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        // A TLS record header and no more, and nothing at all.
        let mut all = slow_clients(ip("127.0.0.9"), addr, 100, &[0x16, 0x03, 0x01]);
        all.extend(slow_clients(ip("127.0.0.9"), addr, 50, b""));
        closed_by_server(all, Duration::from_secs(15))
    })
    .await
    .unwrap();
    println!(
        "150 stalled TLS handshakes: {closed} closed by the server within {:?}",
        started.elapsed()
    );
    assert_eq!(closed, 150);
    let redirect = server.http_redirect_port.expect("the plain HTTP port");
    let health = request_from(
        ip("127.0.0.11"),
        &format!("http://127.0.0.1:{redirect}"),
        "GET",
        "/healthz",
        &[],
        None,
    )
    .await;
    assert_eq!(health.status, 200);
}

/// The value of SDP attribute `name` (`a=name:value`).
fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> &'a str {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no a={name} in {sdp}"))
        .trim()
}

/// A check session's answer to `offer`, asked for from `source`.
async fn check_answer(server: &Server, source: IpAddr, offer: &str) -> Value {
    let body = serde_json::json!({ "path": "turn_tls", "sdp": offer }).to_string();
    let reply = request_from(
        source,
        &server.base_url,
        "POST",
        "/check/api/offer",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    serde_json::from_str(&reply.body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_turn_reaches_the_sfu_and_hears_back() {
    let server = Server::start();
    let home = ip("127.0.0.21");
    let (user, pass) = check_credential(&server, home).await;
    let offer = a_normal_check_offer().await;
    let answer = check_answer(&server, home, &offer).await;
    let answer = answer["sdp"].as_str().expect("an answer");
    let (sfu_ufrag, sfu_pwd) = (
        sdp_attribute(answer, "ice-ufrag"),
        sdp_attribute(answer, "ice-pwd"),
    );
    let local_ufrag = sdp_attribute(&offer, "ice-ufrag");

    // An allocation: the relayed address is the hub's, on a port of its own.
    let client = Client::from_ip(home, turn::turn_udp(&server));
    let granted = client.allocate(2, &user, &pass);
    assert_eq!(turn::error_code(&granted), None, "allocate refused");
    let relayed =
        turn::attribute(&granted, turn::XOR_RELAYED_ADDRESS).expect("XOR-RELAYED-ADDRESS");
    let relayed = turn::address_from_xor(&relayed);
    assert_eq!(relayed.ip(), ip("127.0.0.1"), "{relayed}");
    assert_ne!(relayed.port(), 0);
    let sfu = server.media_addrs[0];
    let permit = vec![(turn::XOR_PEER_ADDRESS, turn::xor_address(sfu))];
    let permitted = client.signed(turn::CREATE_PERMISSION, 3, permit, &user, &pass);
    assert_eq!(
        turn::error_code(&permitted),
        None,
        "permission to the SFU refused"
    );

    // Through the relay, an ICE check for the check session; the SFU's
    // answer comes back through the relay, and says it saw the relayed
    // address.
    let check = turn::ice_check(4, sfu_ufrag, local_ufrag, sfu_pwd);
    let send = turn::request(
        turn::SEND_INDICATION,
        5,
        &[
            (turn::XOR_PEER_ADDRESS, turn::xor_address(sfu)),
            (turn::DATA, check),
        ],
        None,
    );
    // Sent again every 500 ms until answered, as an ICE agent retransmits
    // a check over UDP (RFC 8445 §14.3), for 5 s at most.
    client
        .socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let mut sent = 0;
    let n = loop {
        assert!(sent < 10, "no Data indication within 5 s of {sent} checks");
        client.socket.send_to(&send, client.server).expect("send");
        sent += 1;
        if let Ok((n, _)) = client.socket.recv_from(&mut buf) {
            break n;
        }
    };
    println!("the SFU answered check {sent}");
    let indication = &buf[..n];
    assert_eq!(turn::message_type(indication), turn::DATA_INDICATION);
    let from = turn::attribute(indication, turn::XOR_PEER_ADDRESS).expect("XOR-PEER-ADDRESS");
    assert_eq!(turn::address_from_xor(&from), sfu, "relayed from the SFU");
    let reply = turn::attribute(indication, turn::DATA).expect("DATA");
    assert_eq!(
        turn::message_type(&reply),
        turn::BINDING_SUCCESS,
        "the SFU accepted the check"
    );
    assert_eq!(&reply[8..20], &[4; 12], "the answer to our check");
    let seen = turn::attribute(&reply, turn::XOR_MAPPED_ADDRESS).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(turn::address_from_xor(&seen), relayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_sessions_are_capped_and_the_refusal_is_counted() {
    let server = Server::start();
    let offer = a_normal_check_offer().await;
    // Each from its own address, so no per-address limit is what stops them.
    for n in 0..carecall_admin::check::MAX_CHECK_SESSIONS {
        let (status, _) =
            post_check_offer(&server, ip(&format!("127.0.1.{}", n + 1)), &offer).await;
        assert_eq!(status, 200, "session {n}");
    }
    let (status, _) = post_check_offer(&server, ip("127.0.2.1"), &offer).await;
    assert_eq!(status, 503, "one over the cap");
    let refused = refusals(&server, "check", "sessions_total").await;
    assert_eq!(refused, 1.0, "the refusal is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_holds_at_most_two_thousand_connections_in_all() {
    let server = Server::start();
    let tcp = turn::turn_tcp(&server);
    // 2,000 idle connections from 63 addresses (32 each at most): the
    // server's whole budget, opened well within the 5 s it waits for an
    // allocation on each.
    let started = Instant::now();
    let (held, late) = tokio::task::spawn_blocking(move || {
        // In batches the listener's backlog takes whole: a burst past it
        // waits for SYN retransmits, seconds of them.
        let held: Vec<_> = (0..2000)
            .map(|n| {
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                turn::connect_from(ip(&format!("127.0.3.{}", 1 + n / 32)), tcp)
            })
            .collect();
        let opened = started.elapsed();
        let late = turn::connect_from(ip("127.0.4.1"), tcp);
        let late = closed_by_server(vec![late], Duration::from_secs(1));
        (held, (opened, late))
    })
    .await
    .unwrap();
    let (opened, late) = late;
    println!("2,000 connections opened in {opened:?}");
    assert!(
        opened < Duration::from_secs(4),
        "too slow to test the cap: {opened:?}"
    );
    assert_eq!(late, 1, "the 2,001st connection is closed at once");
    assert_eq!(refusals(&server, "turn", "connections_total").await, 1.0);
    // Once they go, a newcomer is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (user, pass) = check_credential(&server, ip("127.0.4.2")).await;
    let reply = tokio::task::spawn_blocking(move || {
        turn::allocate_over_tcp(ip("127.0.4.2"), tcp, &user, &pass).1
    })
    .await
    .unwrap();
    assert_eq!(reply, None, "an allocation after the connections closed");
}

/// The home page's and the check page's polls: one address flooding them is
/// refused past its allowance (1,200 a minute), with `Retry-After`, counted;
/// another address is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_polls_from_one_address_leaves_everyone_else_served() {
    let server = Server::start();
    let attacker = ip("127.0.0.9");
    let (mut served, mut refused) = (0, 0);
    for i in 0..1_300 {
        let path = if i % 2 == 0 {
            "/home/api/form?t=forged"
        } else {
            "/check/api/uplink?session=unknown"
        };
        let r = request_from(attacker, &server.base_url, "GET", path, &[], None).await;
        match r.status {
            429 => {
                refused += 1;
                assert!(
                    r.headers
                        .iter()
                        .any(|(k, v)| k.eq_ignore_ascii_case("retry-after") && v == "60"),
                    "{r:?}"
                );
            }
            s if (400..500).contains(&s) => served += 1,
            other => panic!("{path}: {other} {r:?}"),
        }
    }
    // The allowance refills one request each 50 ms while the loop runs.
    assert!((1_200..1_300).contains(&served), "served {served}");
    assert_eq!(served + refused, 1_300);
    let other = request_from(
        ip("127.0.0.11"),
        &server.base_url,
        "GET",
        "/home/api/form?t=forged",
        &[],
        None,
    )
    .await;
    assert_ne!(other.status, 429, "another address is served: {other:?}");
    let counted = refusals(&server, "home_call", "requests_per_address").await
        + refusals(&server, "check", "requests_per_address").await;
    assert_eq!(counted, f64::from(refused));
    println!("one address: {served} polls served, {refused} refused");
}

/// The check's download test is asked for by its session's random token,
/// once: an unknown token is told so, a session with no video line to
/// receive on is told that, and a second ask is refused, so nobody can make
/// the SFU send test streams over and over. (The test itself runs in the
/// browser tests of `connectivity_check.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_session_runs_one_download_test_at_most() {
    let server = Server::start();
    let home = ip("127.0.0.22");
    let url = &server.base_url;
    let post =
        |path: String| async move { request_from(home, url, "POST", &path, &[], None).await };
    let unknown = post("/check/api/downlink?session=unknown".into()).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let offer = a_normal_check_offer().await;
    let answer = check_answer(&server, home, &offer).await;
    let session = answer["session"].as_str().expect("a session token");
    let path = format!("/check/api/downlink?session={session}");
    let first = post(path.clone()).await;
    // The load tool's offer sends audio and video and receives nothing.
    assert_eq!(first.status, 409, "{first:?}");
    assert!(
        first.body.contains("offered no video to receive"),
        "{first:?}"
    );
    let again = post(path).await;
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.body.contains("has run already"), "{again:?}");
}
