//! Locked-down care-home networks: the home's browser runs in a network
//! namespace whose firewall drops UDP (as guest Wi-Fi often does), or lets
//! out only web ports. The call must still connect in HD: over ICE-TCP, or
//! through the embedded TURN server over TLS. Needs root for the namespace.

use std::time::Duration;

use crate::support::axe::assert_accessible;
use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding_hd;
use crate::support::metrics::scrape;
use crate::support::netlab::NetNs;
use crate::support::{Server, ServerOptions};

/// A clinician on the host and a care home in `net`, in `room`, both
/// decoding the other in HD. The home's browser trusts `spki` if given.
/// Field order is drop order: browsers before their drivers.
struct TwoPartyCall {
    clinician: Browser,
    home: Browser,
    _drivers: (Driver, Driver),
}

impl TwoPartyCall {
    async fn start(server: &Server, net: &NetNs, room: &str, spki: Option<&str>) -> Self {
        let hub = Driver::start_trusting(&server.base_url).await;
        let mut away = Driver::start_in(net, &server.base_url).await;
        if let Some(spki) = spki {
            away = away.with_trusted_spki(spki);
        }
        let clinician = hub.browser().await;
        clinician
            .join(&server.link(room, "clinician", "Hub clinician", "1h"))
            .await;
        let home = away.browser().await;
        home.join(&server.link(room, "home", "Rose Court", "1h"))
            .await;
        wait_all_decoding_hd(&[&home, &clinician], 1, Duration::from_secs(60)).await;
        report_time_to_connect(&home).await;
        TwoPartyCall {
            clinician,
            home,
            _drivers: (hub, away),
        }
    }
}

/// Prints how long the home's browser took from pressing Join to media
/// connected (ICE and DTLS up), and over which path: `docs/networks.md`
/// tables these.
async fn report_time_to_connect(home: &Browser) {
    let m = home.metrics().await;
    let ms = m["connectedMs"].as_f64().unwrap_or(f64::NAN)
        - m["joinClickedMs"].as_f64().unwrap_or(f64::NAN);
    let local = home.selected_local().await;
    let text = |k: &str| local[k].as_str().unwrap_or("-").to_owned();
    println!(
        "time to connect: {ms:.0} ms over {} {} (relay protocol {})",
        text("candidateType"),
        text("protocol"),
        text("relayProtocol")
    );
}

/// The transport the SFU reports for `participant` in a /metrics scrape.
fn transport_of(metrics: &str, participant: &str) -> Option<String> {
    let label = format!("participant=\"{participant}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("carecall_participant_transport_info{") && l.contains(&label))
        .find(|l| l.ends_with(" 1"))
        .and_then(|l| l.split("transport=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_the_call_connects_over_ice_tcp_in_hd() {
    let net = NetNs::new();
    net.block_udp();
    // TURN off: with it, Chromium may take a TURN/TCP relay instead, and
    // this test is about the direct TCP path.
    let server = Server::start_with(ServerOptions {
        ip: net.host_ip.into(),
        env: vec![("CARECALL_TURN_ENABLED".into(), "false".into())],
        ..ServerOptions::default()
    });
    assert!(!server.tcp_addrs.is_empty(), "the server offers no ICE-TCP");
    let TwoPartyCall {
        clinician,
        home,
        _drivers,
    } = TwoPartyCall::start(&server, &net, "locked-1", None).await;

    let home_id = home.participant().await.expect("home joined");
    let clinician_id = clinician.participant().await.expect("clinician joined");
    // Transports are reported with the SFU's statistics, once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (home_path, hub_path) = loop {
        let metrics = scrape(&server.base_url).await;
        let paths = (
            transport_of(&metrics, &home_id),
            transport_of(&metrics, &clinician_id),
        );
        if (paths.0.is_some() && paths.1.is_some()) || std::time::Instant::now() > deadline {
            break paths;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("home ({home_id}) over {home_path:?}, clinician ({clinician_id}) over {hub_path:?}");
    assert_eq!(home_path.as_deref(), Some("tcp"), "the home's media path");
    // The block is what made the difference: the hub side still uses UDP.
    assert_eq!(
        hub_path.as_deref(),
        Some("udp"),
        "the clinician's media path"
    );
    home.close().await;
    clinician.close().await;
}

/// A self-signed certificate for `ip`, written as PEM files into `dir`;
/// returns (cert path, key path, base64 SHA-256 of its SPKI).
fn test_certificate(ip: std::net::IpAddr, dir: &std::path::Path) -> (String, String, String) {
    use base64::Engine;
    let c = rcgen::generate_simple_self_signed(vec![ip.to_string()]).expect("certificate");
    let cert = dir.join("turn-cert.pem");
    let key = dir.join("turn-key.pem");
    std::fs::write(&cert, c.cert.pem()).expect("write cert");
    std::fs::write(&key, c.signing_key.serialize_pem()).expect("write key");
    let spki = rcgen::PublicKeyData::subject_public_key_info(&c.signing_key);
    let spki = ring::digest::digest(&ring::digest::SHA256, &spki);
    let spki = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let path = |p: std::path::PathBuf| p.display().to_string();
    (path(cert), path(key), spki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_web_ports_open_the_call_connects_through_turn_over_tls() {
    let net = NetNs::new();
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, key, spki) = test_certificate(net.host_ip.into(), certs.path());
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let server = Server::start_with(ServerOptions {
        ip: net.host_ip.into(),
        env: vec![
            env("CARECALL_TURN_TLS_PORT", "443"),
            env("CARECALL_TURN_CERT", &cert),
            env("CARECALL_TURN_KEY", &key),
        ],
        ..ServerOptions::default()
    });
    let http_port = server
        .base_url
        .rsplit(':')
        .next()
        .expect("port in the base URL")
        .to_owned();
    let turns = format!("turns:{}:443?transport=tcp", net.host_ip);
    assert!(server.turn_urls.contains(&turns), "{:?}", server.turn_urls);
    // The home's network lets out only the hub's web ports (the page on
    // its HTTP port, and 443), and chromedriver's replies to the test.
    let hub = net.host_ip.to_string();
    net.exec(&["iptables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"]);
    net.exec(&[
        "iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", "9515", "-j", "ACCEPT",
    ]);
    for port in [http_port.as_str(), "443"] {
        net.exec(&[
            "iptables", "-A", "OUTPUT", "-p", "tcp", "-d", &hub, "--dport", port, "-j", "ACCEPT",
        ]);
    }
    net.exec(&["iptables", "-A", "OUTPUT", "-j", "DROP"]);

    let TwoPartyCall {
        clinician,
        home,
        _drivers,
    } = TwoPartyCall::start(&server, &net, "locked-2", Some(&spki)).await;
    let (kind, protocol) = home.selected_path().await;
    println!("home's path: {kind} over {protocol}");
    assert_eq!(
        (kind.as_str(), protocol.as_str()),
        ("relay", "tls"),
        "the home's media must go through TURN over TLS"
    );
    // The hub names that path too, for the helpdesk.
    let home_id = home.participant().await.expect("home joined");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen = transport_of(&scrape(&server.base_url).await, &home_id);
        if seen.is_some() || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        seen.as_deref(),
        Some("relay-tls"),
        "the hub's view of the path"
    );
    home.close().await;
    clinician.close().await;
}

/// A server on a namespace's link and a two-party call across it. Bind the
/// result in this order (network, server, call) so the call goes first.
async fn call_across_a_namespace(room: &str) -> (NetNs, Server, TwoPartyCall) {
    let net = NetNs::new();
    let server = Server::start_with(ServerOptions {
        ip: net.host_ip.into(),
        ..ServerOptions::default()
    });
    let call = TwoPartyCall::start(&server, &net, room, None).await;
    (net, server, call)
}

/// Frames decoded from `from` in `b` (0 when no video from them).
async fn frames_from(b: &Browser, from: &str) -> u64 {
    crate::support::calls::snapshot(b)
        .await
        .0
        .get(from)
        .map_or(0, |v| v.frames_decoded)
}

/// Remote tiles on `b`'s page, by participant id.
async fn tiles(b: &Browser) -> Vec<String> {
    let v = b
        .eval("return [...document.querySelectorAll('#tiles .tile')].map((t) => t.dataset.participant);")
        .await;
    serde_json::from_value(v).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_5_s_outage_media_resumes_by_itself() {
    let (net, _server, call) = call_across_a_namespace("drop-1").await;
    let TwoPartyCall {
        clinician,
        home,
        _drivers,
    } = call;
    let home_id = home.participant().await.expect("home joined");
    let clinician_id = clinician.participant().await.expect("clinician joined");

    net.outage(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let banner = home
        .eval(
            "const pc = window.carecall.call.pc;
             return [document.getElementById('call-message').textContent, pc.connectionState, pc.iceConnectionState];",
        )
        .await;
    let before = (
        frames_from(&clinician, &home_id).await,
        frames_from(&home, &clinician_id).await,
    );
    assert_accessible(&home, "the home's call with the Reconnecting banner").await;
    net.outage(false);
    let back = std::time::Instant::now();
    println!("during the outage the home's page said {banner}; frames before {before:?}");
    assert_eq!(
        banner[0], "Reconnecting…",
        "the home's page during the outage"
    );
    loop {
        let now = (
            frames_from(&clinician, &home_id).await,
            frames_from(&home, &clinician_id).await,
        );
        // Both directions decode again (a few new frames each way).
        if now.0 > before.0 + 5 && now.1 > before.1 + 5 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "media not back within 3 s of the link: {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "media back {} ms after the link",
        back.elapsed().as_millis()
    );
    let start = std::time::Instant::now();
    loop {
        let banner = home
            .eval("return document.getElementById('call-message').textContent;")
            .await;
        if banner == "" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still says {banner} with media back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same people, once each: nobody left and came back.
    assert_eq!(home.participant().await.as_deref(), Some(home_id.as_str()));
    assert_eq!(
        tiles(&clinician).await,
        std::slice::from_ref(&home_id),
        "clinician's tiles"
    );
    assert_eq!(
        tiles(&home).await,
        std::slice::from_ref(&clinician_id),
        "home's tiles"
    );
    home.close().await;
    clinician.close().await;
}

/// Past about 30 s, Chromium's ICE gives up (consent expired) and media does
/// not come back by waiting: the page offers to rejoin instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_30_s_without_media_the_page_offers_to_rejoin() {
    let (net, _server, call) = call_across_a_namespace("drop-2").await;
    let TwoPartyCall {
        clinician,
        home,
        _drivers,
    } = call;
    let offer = "return !document.getElementById('rejoin-offer').hidden;";
    net.outage(true);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(home.eval(offer).await, false, "offered before 30 s");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let shown = home
        .eval("return document.getElementById('call-message').textContent;")
        .await;
    println!("after 32 s the home's page says {shown}");
    assert_eq!(
        home.eval(offer).await,
        true,
        "no offer to rejoin after 32 s"
    );
    // Taking the offer: the page starts over at the join screen (the link
    // in the address bar is the same), with the link back.
    net.outage(false);
    home.eval("document.getElementById('rejoin-offer').click();")
        .await;
    let start = std::time::Instant::now();
    let prejoin = "const p = document.getElementById('prejoin'); return !!p && !p.hidden;";
    while home.eval(prejoin).await != true {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no join screen after the offer"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    home.close().await;
    clinician.close().await;
}

/// The address a browser's selected ICE pair uses on its side.
async fn local_address(b: &Browser) -> String {
    b.selected_local().await["address"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The ICE restarts the hub counted for `participant`.
fn ice_restarts(metrics: &str, participant: &str) -> u64 {
    let label = format!("participant=\"{participant}\"");
    metrics
        .lines()
        .find(|l| l.starts_with("carecall_participant_ice_restarts_total{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The tablet leaves its network and, 10 s later, is on another with a new
/// address. Its old path is gone for good: the browser restarts ICE (and
/// resumes its signalling session) and the call carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_10_s_move_to_a_new_address_the_call_recovers_by_ice_restart() {
    let (mut net, server, call) = call_across_a_namespace("move-1").await;
    let TwoPartyCall {
        clinician,
        home,
        _drivers,
    } = call;
    let home_id = home.participant().await.expect("home joined");
    let clinician_id = clinician.participant().await.expect("clinician joined");
    let old_address = net.ns_ip.to_string();
    assert_eq!(
        local_address(&home).await,
        old_address,
        "the home's path before"
    );

    net.unplug();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = (
        frames_from(&clinician, &home_id).await,
        frames_from(&home, &clinician_id).await,
    );
    let new_address = net.move_to_new_link().to_string();
    let moved = std::time::Instant::now();
    loop {
        let now = (
            frames_from(&clinician, &home_id).await,
            frames_from(&home, &clinician_id).await,
        );
        if now.0 > before.0 + 5 && now.1 > before.1 + 5 {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(30),
            "media not back within 30 s of the new address: {before:?} -> {now:?}; page: {}",
            home.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "media back {} ms after the new address; home page metrics {}",
        moved.elapsed().as_millis(),
        home.metrics().await
    );
    assert_eq!(
        local_address(&home).await,
        new_address,
        "the home's path after the move"
    );
    let restarts = home.metrics().await["iceRestarts"].as_u64().unwrap_or(0);
    assert!(
        restarts >= 1,
        "the home's browser restarted ICE {restarts} times"
    );
    let seen = ice_restarts(&scrape(&server.base_url).await, &home_id);
    assert!(
        seen >= 1,
        "the hub counted {seen} ICE restarts for the home"
    );
    // The same people, once each.
    assert_eq!(home.participant().await.as_deref(), Some(home_id.as_str()));
    assert_eq!(tiles(&clinician).await, std::slice::from_ref(&home_id));
    assert_eq!(tiles(&home).await, std::slice::from_ref(&clinician_id));
    home.close().await;
    clinician.close().await;
}
