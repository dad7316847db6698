//! A room spanning two nodes (docs/scaling.md): each node its own process on
//! loopback with its own relay, one shared PostgreSQL, the relays linked
//! over QUIC with certificates the hub's CA signed. A participant on each
//! node receives the other's media through the relay.

use std::time::{Duration, Instant};

use crate::support::peer::TestPeer;
use crate::support::relay::{DelayRelay, Impairment, Path};
use crate::support::{metrics, token_of, DataDir, Server, ServerOptions};

/// The hub's CA (the load tool's), and test servers whose relays it signs.
pub struct HubCa(carecall_load::hub_ca::HubCa);

impl HubCa {
    pub fn new() -> HubCa {
        HubCa(carecall_load::hub_ca::HubCa::new().expect("the hub's CA"))
    }

    /// A node named `name` on `data_dir` with a relay on a free loopback
    /// port, signed by this CA.
    pub fn node(&self, name: &str, data_dir: &std::sync::Arc<DataDir>) -> ServerOptions {
        let env = self.0.node_env(name).expect("a node certificate");
        ServerOptions {
            data_dir: Some(data_dir.clone()),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..Default::default()
        }
    }
}

/// Sends `ticks` 20 ms steps of media from each peer, all together.
async fn send_together(peers: &[&TestPeer], ticks: std::ops::Range<u32>) {
    let mut wires = Vec::new();
    for p in peers {
        wires.push(p.negotiated().await);
    }
    for n in ticks {
        for (p, wire) in peers.iter().zip(&wires) {
            p.send_tick(n, wire).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What `to` received of `from`'s `kind`.
fn got(to: &TestPeer, from: &TestPeer, kind: &str) -> Vec<u32> {
    to.counters(&from.participant, kind)
}

/// Sends media from both until each has the other's audio and video (at
/// most 10 s); returns the next tick.
async fn until_each_receives_the_other(first: &TestPeer, second: &TestPeer) -> u32 {
    let start = Instant::now();
    let mut tick = 0;
    while start.elapsed() < Duration::from_secs(10) {
        send_together(&[first, second], tick..tick + 25).await;
        tick += 25;
        let both = ["audio", "video"].iter().all(|kind| {
            !got(first, second, kind).is_empty() && !got(second, first, kind).is_empty()
        });
        if both {
            break;
        }
    }
    for (to, from) in [(first, second), (second, first)] {
        for kind in ["audio", "video"] {
            assert!(
                !got(to, from, kind).is_empty(),
                "{} received no {kind} from {} within 10 s",
                to.participant,
                from.participant
            );
        }
    }
    let across = start.elapsed().as_secs_f64();
    println!("each side receiving the other {across:.2} s after the second join");
    tick
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_two_nodes_and_each_side_hears_and_sees_the_other_through_the_relay() {
    let hub = HubCa::new();
    let dir_a = DataDir::on_postgres();
    let a = Server::start_with(hub.node("node-a", &dir_a));
    let dir_b = DataDir::beside(&dir_a);
    let b = Server::start_with(hub.node("node-b", &dir_b));

    // The clinician joins on A, which places the room there; the home joins
    // on B, which keeps it and spans the room to A.
    let room = "ward-span";
    let link = a.link(room, "clinician", "Dr Hub", "1h");
    let mut clinician = TestPeer::join(&a.ws_url(), &token_of(&link), 1).await;
    clinician.wait_connected(Duration::from_secs(10)).await;
    let link = b.link(room, "home", "Rose Court", "1h");
    let mut home = TestPeer::join(&b.ws_url(), &token_of(&link), 2).await;
    home.wait_connected(Duration::from_secs(10)).await;

    let tick = until_each_receives_the_other(&clinician, &home).await;

    // Then 3 s of media: all of it arrives, in order, once.
    let before: Vec<usize> = [(&clinician, &home), (&home, &clinician)]
        .iter()
        .map(|(to, from)| got(to, from, "audio").len())
        .collect();
    send_together(&[&clinician, &home], tick..tick + 150).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, (to, from)) in [(&clinician, &home), (&home, &clinician)]
        .iter()
        .enumerate()
    {
        let audio = got(to, from, "audio");
        let new = &audio[before[i]..];
        assert!(
            new.len() >= 148,
            "{} of 150 audio packets crossed",
            new.len()
        );
        assert!(
            new.windows(2).all(|w| w[1] > w[0]),
            "audio out of order or repeated"
        );
    }

    // The home stayed on B (its id is from B's block) and the relay carried
    // the media: each node counts packets sent and received over it.
    let number = |id: &str| id.trim_start_matches('p').parse::<u64>().expect("pN");
    assert!(
        number(&home.participant) > number(&clinician.participant) + 1000,
        "the home was not numbered by B: {} and {}",
        home.participant,
        clinician.participant
    );
    for (node, name) in [(&a, "A"), (&b, "B")] {
        let text = metrics::scrape(&node.base_url).await;
        for direction in ["sent", "received"] {
            let packets = metrics::value(
                &text,
                &format!("carecall_relay_packets_total{{direction=\"{direction}\"}}"),
            );
            assert!(
                packets.is_some_and(|p| p > 150.0),
                "{name} {direction} {packets:?} packets over the relay"
            );
        }
    }

    // The clinician on A notes consent and records the call. The recording
    // takes the home's media, relayed from B, so the home is told of both,
    // as A's participants are.
    let consent = serde_json::json!({"type": "consent", "given": true,
        "by": "lasting-power-of-attorney", "how": "verbal"});
    clinician.send_raw(consent.to_string());
    let recording = |n: &serde_json::Value| n["type"] == "recording";
    let noted = told(
        &home,
        |n| n["type"] == "consent" && !n["consent"].is_null(),
        1,
    )
    .await;
    assert_eq!(
        (
            &noted[0]["consent"]["given"],
            noted[0]["consent"]["by"].as_str()
        ),
        (&serde_json::json!(true), Some("lasting-power-of-attorney")),
        "the home on B: {noted:?}"
    );
    clinician.send_raw(serde_json::json!({"type": "record", "on": true}).to_string());
    let started = told(&home, recording, 1).await;
    assert_eq!(
        (&started[0]["active"], started[0]["by"].as_str()),
        (
            &serde_json::json!(true),
            Some(clinician.participant.as_str())
        ),
        "the home on B: {started:?}"
    );
    clinician.send_raw(serde_json::json!({"type": "record", "on": false}).to_string());
    let stopped = told(&home, recording, 2).await;
    assert_eq!(
        stopped[1]["active"],
        serde_json::json!(false),
        "{stopped:?}"
    );
    let on_a = told(&clinician, recording, 2).await;
    assert_eq!(on_a.len(), 2, "the clinician on A: {on_a:?}");
    home.close().await;
    clinician.close().await;
}

/// Waits (up to 10 s) until `peer` was sent `count` `recording` or
/// `consent` messages that `which` picks; returns those.
async fn told(
    peer: &TestPeer,
    which: impl Fn(&serde_json::Value) -> bool,
    count: usize,
) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let told: Vec<serde_json::Value> = (peer.notices.lock().unwrap().iter())
            .filter(|n| which(n))
            .cloned()
            .collect();
        if told.len() >= count {
            return told;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} of {count} messages: {told:?}",
            told.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nodes A and B, A's relay reached through a user-space relay (the
/// network between them) that the test can cut; the CA lives as long as
/// the nodes.
fn nodes_with_a_network_between() -> (Server, Server, Network) {
    let hub = HubCa::new();
    let dir_a = DataDir::on_postgres();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let relay = DelayRelay::start("127.0.0.1:0".parse().unwrap(), port);
    let mut options = hub.node("node-a", &dir_a);
    options.env.retain(|(k, _)| k != "CARECALL_RELAY_ADDR");
    options
        .env
        .push(("CARECALL_RELAY_ADDR".into(), port.to_string()));
    let public = ("CARECALL_RELAY_PUBLIC_ADDR".into(), relay.addr.to_string());
    options.env.push(public);
    let a = Server::start_with(options);
    let b = Server::start_with(hub.node("node-b", &DataDir::beside(&dir_a)));
    (a, b, Network { relay, _hub: hub })
}

/// The network between two test nodes.
struct Network {
    relay: DelayRelay,
    _hub: HubCa,
}

impl Network {
    /// Drops everything both ways (`true`), or nothing.
    fn cut(&self, cut: bool) {
        let way = Impairment {
            loss: if cut { 1.0 } else { 0.0 },
            ..Impairment::default()
        };
        self.relay.set(Path { up: way, down: way });
    }
}

/// A join on B for a room hosted on A while the network between them is
/// down: B cannot span the room at first, and tries again until it can.
/// Once the network is back, each side receives the other's audio and
/// video, with nobody joining again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_cannot_span_at_first_spans_once_the_network_is_back() {
    let (a, b, network) = nodes_with_a_network_between();
    let room = "ward-late";
    let link = a.link(room, "clinician", "Dr Hub", "1h");
    let mut clinician = TestPeer::join(&a.ws_url(), &token_of(&link), 1).await;
    clinician.wait_connected(Duration::from_secs(10)).await;
    network.cut(true);
    let link = b.link(room, "home", "Rose Court", "1h");
    let mut home = TestPeer::join(&b.ws_url(), &token_of(&link), 2).await;
    home.wait_connected(Duration::from_secs(10)).await;
    // Past the first try's 5 s handshake.
    tokio::time::sleep(Duration::from_secs(7)).await;
    until_links(&b, 0.0, Duration::from_secs(1)).await;
    network.cut(false);
    until_each_receives_the_other(&clinician, &home).await;
    home.close().await;
    clinician.close().await;
}

/// Waits (at most `within`) until `node` has `links` relay links.
async fn until_links(node: &Server, links: f64, within: Duration) {
    let start = Instant::now();
    loop {
        let text = metrics::scrape(&node.base_url).await;
        let now = metrics::value(&text, "carecall_relay_links");
        if now == Some(links) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{now:?} relay links, not {links}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The network between two nodes fails for longer than the link's idle
/// timeout (A's relay is reached through a user-space relay the test cuts):
/// both nodes let the link go, and each browser's tile of the other goes.
/// Once the network is back, the node that made the link makes it again and
/// spans the room again: each Chromium decodes the other at 720p once more,
/// with nobody joining again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_lost_to_a_network_cut_is_made_again_and_both_browsers_decode_again() {
    use crate::support::browser::Driver;
    use crate::support::calls::{assert_still_decoding, wait_all_decoding_hd};
    let (a, b, network) = nodes_with_a_network_between();
    let driver = Driver::start().await;
    let room = "ward-cut";
    let (clinician, home) = browsers_on_each_node(&driver, &a, &b, room).await;
    let both = [&clinician, &home];
    wait_all_decoding_hd(&both, 1, Duration::from_secs(60)).await;

    network.cut(true);
    for node in [&a, &b] {
        until_links(node, 0.0, Duration::from_secs(10)).await;
    }
    network.cut(false);
    let back = Instant::now();
    until_links(&b, 1.0, Duration::from_secs(15)).await;
    let linked = back.elapsed().as_secs_f64();
    wait_all_decoding_hd(&both, 1, Duration::from_secs(30)).await;
    println!(
        "link made again {linked:.2} s and both decoding 720p again {:.2} s after the network came back",
        back.elapsed().as_secs_f64()
    );
    assert_still_decoding(&both, 720, Duration::from_secs(3)).await;
    for (browser, node) in [(&clinician, &a), (&home, &b)] {
        let hub = browser.eval("return window.carecall.call.hub;").await;
        assert_eq!(
            hub,
            node.base_url.as_str(),
            "the page moved to another node"
        );
    }
}

/// A clinician's Chromium joined to `room` on node A, and a home's on B.
async fn browsers_on_each_node(
    driver: &crate::support::browser::Driver,
    a: &Server,
    b: &Server,
    room: &str,
) -> (
    crate::support::browser::Browser,
    crate::support::browser::Browser,
) {
    let clinician = driver.browser().await;
    clinician
        .join(&a.link(room, "clinician", "Dr Hub", "1h"))
        .await;
    let home = driver.browser().await;
    home.join(&b.link(room, "home", "Rose Court", "1h")).await;
    (clinician, home)
}

/// What a node's relay counted, by metric and direction.
async fn relay_count(node: &Server, metric: &str, direction: &str) -> f64 {
    let text = metrics::scrape(&node.base_url).await;
    let series = format!("carecall_relay_{metric}_total{{direction=\"{direction}\"}}");
    metrics::value(&text, &series).unwrap_or(0.0)
}

/// A clinician's Chromium on node A and a home's on node B, one room
/// spanning both: each decodes the other at 720p through the relay, with
/// the other's name on the tile. The clinician's window shrinks: A asks B
/// for less, and the home's camera comes across at 360p. Full size again:
/// A asks B for 720p and for its keyframe, which B asks of the home's
/// browser, and the clinician decodes 720p again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_each_node_decodes_the_other_at_720p_and_a_layer_switch_and_keyframe_cross() {
    use crate::support::browser::Driver;
    use crate::support::calls::{wait_all_decoding_hd, wait_decoding_at};
    let hub = HubCa::new();
    let dir_a = DataDir::on_postgres();
    let a = Server::start_with(hub.node("node-a", &dir_a));
    let b = Server::start_with(hub.node("node-b", &DataDir::beside(&dir_a)));
    let driver = Driver::start().await;
    let room = "ward-span-hd";
    let (clinician, home) = browsers_on_each_node(&driver, &a, &b, room).await;
    let both = [&clinician, &home];
    let start = Instant::now();
    wait_all_decoding_hd(&both, 1, Duration::from_secs(60)).await;
    println!(
        "both decoding 720p across nodes after {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // Each page stayed on its own node, and shows the other by name.
    for (browser, node, far) in [(&clinician, &a, "Rose Court"), (&home, &b, "Dr Hub")] {
        let hub = browser.eval("return window.carecall.call.hub;").await;
        assert_eq!(
            hub,
            node.base_url.as_str(),
            "the page moved to another node"
        );
        let text = browser.eval("return document.body.innerText;").await;
        assert!(
            text.as_str().is_some_and(|t| t.contains(far)),
            "{far} not named: {text}"
        );
    }
    let home_id = home.participant().await.expect("joined");

    // A smaller window on A: the home's camera is taken at 360p, and A asks
    // B for no more than that.
    clinician
        .client
        .set_window_size(640, 480)
        .await
        .expect("smaller window");
    wait_decoding_at(&clinician, &home_id, 360, Duration::from_secs(30)).await;
    let asked_before = relay_count(&a, "keyframe_requests", "sent").await;
    let got_before = relay_count(&b, "keyframe_requests", "received").await;
    // Full size again: 720p again, at a keyframe asked across the relay.
    clinician
        .client
        .set_window_size(1920, 1080)
        .await
        .expect("full window");
    wait_decoding_at(&clinician, &home_id, 720, Duration::from_secs(30)).await;
    let asked = relay_count(&a, "keyframe_requests", "sent").await;
    let got = relay_count(&b, "keyframe_requests", "received").await;
    assert!(
        asked > asked_before,
        "A asked no keyframe across: {asked_before} → {asked}"
    );
    assert!(
        got > got_before,
        "B took no keyframe request: {got_before} → {got}"
    );
    // Each packet crossed once: what the other node received, A sent
    // (B is read first: A may have sent more since).
    let received = relay_count(&b, "packets", "received").await;
    let sent = relay_count(&a, "packets", "sent").await;
    println!("A relayed {sent} packets, B received {received}");
    assert!(sent > 100.0, "A relayed only {sent} packets");
    assert!(
        received <= sent && received > sent * 0.95,
        "A sent {sent}, B received {received}"
    );
    home.close().await;
    clinician.close().await;
}

/// Node A hosts at most one participant (`media.max_participants`): the
/// home joining the clinician's room through A is sent to B (`elsewhere`),
/// which keeps it and spans the room back to A; each receives the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_sends_the_next_join_to_another_which_spans_the_room_back() {
    use futures_util::StreamExt;
    let hub = HubCa::new();
    let dir_a = DataDir::on_postgres();
    let mut full = hub.node("node-a", &dir_a);
    full.env
        .push(("CARECALL_MEDIA_MAX_PARTICIPANTS".into(), "1".into()));
    let a = Server::start_with(full);
    let b = Server::start_with(hub.node("node-b", &DataDir::beside(&dir_a)));
    let room = "ward-full";
    let link = a.link(room, "clinician", "Dr Hub", "1h");
    let mut clinician = TestPeer::join(&a.ws_url(), &token_of(&link), 1).await;
    clinician.wait_connected(Duration::from_secs(10)).await;

    // The home's join reaches A, which is full: it is sent to B.
    let token = token_of(&a.link(room, "home", "Rose Court", "1h"));
    let first = serde_json::json!({ "type": "join", "v": 1, "token": token });
    let mut socket = crate::support::ws::open(&a, first).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an answer within 10 s")
        .expect("a message")
        .expect("readable");
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap_or("")).unwrap();
    assert_eq!(reply["type"], "elsewhere", "{reply}");
    assert_eq!(reply["url"], b.base_url.as_str(), "{reply}");

    // At B, the home stays, and B spans the room back to A.
    let mut home = TestPeer::join(&b.ws_url(), &token, 2).await;
    home.wait_connected(Duration::from_secs(10)).await;
    until_each_receives_the_other(&clinician, &home).await;
    let relayed =
        |text: &str| metrics::value(text, "carecall_relay_packets_total{direction=\"received\"}");
    for node in [&a, &b] {
        let text = metrics::scrape(&node.base_url).await;
        assert!(
            relayed(&text).is_some_and(|n| n > 0.0),
            "nothing relayed: {text}"
        );
    }
    home.close().await;
    clinician.close().await;
}
