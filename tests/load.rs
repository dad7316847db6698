//! A short, bounded run of the load tool against a real server: the figures
//! it reports are real (packets of the real clip forwarded and arriving
//! unchanged, every subscriber fed the simulcast layer it asked for, loss
//! under 1% on loopback, server CPU and memory read from /proc), and a few
//! rounds of join/leave churn all connect.

use crate::support::{Server, ServerOptions};
use carecall_load::clip::{clip, TOP};
use carecall_load::{Options, Report, Scenario, Sfu, Target};

fn secret() -> String {
    "load-test-link-secret-0123456789abcdef".to_owned()
}

/// The test server as the load tool's target.
fn target(server: &Server) -> Target {
    Target {
        sfu: Sfu::Carecall,
        base_url: server.base_url.clone(),
        secret: secret().into_bytes(),
        pid: server.pid(),
        local_ip: [127, 0, 0, 1].into(),
        far: None,
    }
}

/// A short run: 2 s of warm-up, 4 s measured.
const SHORT: Options = Options {
    seconds: 4.0,
    warmup: 2.0,
    progress: true,
    lite_viewers: false,
    lite_publishers: false,
};

/// The same, its viewers on str0m ([`carecall_load::lite`]).
const SHORT_LITE: Options = Options {
    lite_viewers: true,
    ..SHORT
};

/// The same, everyone on str0m.
const SHORT_ALL_LITE: Options = Options {
    lite_publishers: true,
    ..SHORT_LITE
};

async fn bounded(server: &Server, scenario: Scenario) -> Report {
    bounded_with(server, scenario, &SHORT).await
}

async fn bounded_with(server: &Server, scenario: Scenario, opts: &Options) -> Report {
    let target = target(server);
    let report = carecall_load::run(&target, scenario, opts)
        .await
        .expect("the run completes");
    println!("{report}");
    report
}

/// Checks `r`'s figures are real, and that its subscribers were sent video
/// layer `layer` (an index in the clip's layers).
fn assert_real(r: &Report, streams: usize, layer: usize) {
    assert_eq!(r.forwarded_streams, streams, "{r:?}");
    assert_eq!(
        r.subscribers_without_media, 0,
        "every subscriber got media: {r:?}"
    );
    // Each audio and video pair of streams carries the clip's 50 audio
    // packets/s and its layer's 2 s loop of video packets: at least half.
    let pair = 50.0 + clip().layers[layer].packets as f64 / 2.0;
    assert!(
        r.forwarded_per_second > 0.5 * pair * (streams / 2) as f64,
        "{r:?}"
    );
    assert!(r.loss < 0.01, "loss on loopback: {r:?}");
    assert_eq!(
        r.unrecognised_packets, 0,
        "every packet arrived as the clip's bytes: {r:?}"
    );
    // Publishers send three layers; each subscriber is sent the one asked.
    let by_layer = r.video_packets_by_layer;
    let others: u64 = by_layer.iter().sum::<u64>() - by_layer[layer];
    assert!(by_layer[layer] > 10 * others, "{r:?}");
    assert!(r.server_cpu_seconds > 0.0, "{r:?}");
    assert!(r.rss_during_mib > 1.0, "{r:?}");
    assert!(
        r.latency_p50_ms > 0.0 && r.latency_p99_ms >= r.latency_p50_ms,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_load_run_reports_real_figures() {
    // As `carecall-load --server` runs it: without estimation, so each
    // subscriber is sent the layer it asks for.
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_LINK_SECRET".into(), secret())],
        estimate_bandwidth: false,
        ..ServerOptions::default()
    });
    // With no view sizes or estimate, subscribers are sent the top layer.
    let fanout = bounded(&server, Scenario::FanOut { subscribers: 4 }).await;
    assert_real(&fanout, 4 * 2, TOP);
    let rooms = bounded(&server, Scenario::Rooms { rooms: 2 }).await;
    assert_real(&rooms, 2 * 3 * 2 * 2, TOP);
    // A thumbnail is sent the lowest.
    let thumbnails = bounded(&server, Scenario::Thumbnails { subscribers: 4 }).await;
    assert_real(&thumbnails, 4 * 2, 0);
    // The light viewers read the same: everything arrives, at the layer
    // asked for (a str0m session must be polled empty after each datagram,
    // or it keeps only the last of a burst: 72% lost).
    let fanout = bounded_with(&server, Scenario::FanOut { subscribers: 4 }, &SHORT_LITE).await;
    assert_real(&fanout, 4 * 2, TOP);
    let thumbnails = bounded_with(
        &server,
        Scenario::Thumbnails { subscribers: 4 },
        &SHORT_LITE,
    )
    .await;
    assert_real(&thumbnails, 4 * 2, 0);
    // Light publishers send the clip's three layers as the webrtc-rs ones
    // do: everyone is sent everyone's top layer, whole.
    let rooms = bounded_with(&server, Scenario::Rooms { rooms: 2 }, &SHORT_ALL_LITE).await;
    assert_real(&rooms, 2 * 3 * 2 * 2, TOP);
    assert!(rooms.generator_kept_up > 0.95, "{rooms:?}");
    // Join/leave churn: every join connects, and the figures are read.
    let churn = carecall_load::churn(&target(&server), 3, 4)
        .await
        .expect("churn runs");
    println!("{churn}");
    assert_eq!((churn.joins, churn.failed), (12, 0), "{churn:?}");
    assert!(churn.connect_p50_ms > 0.0 && churn.connect_p99_ms >= churn.connect_p50_ms);
    assert!(
        churn.cpu_ms_per_join > 0.0
            && churn.rss_after_mib > churn.own_after_mib
            && churn.own_after_mib > 1.0,
        "{churn:?}"
    );
}

/// The same bounded run against Debian's Janus (VideoRoom), as the
/// comparison in `docs/performance.md` runs it: in a namespace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_against_janus_reports_real_figures() {
    let (_janus, target) = carecall_load::janus::spawn(carecall_load::proc::Pinning::Shared)
        .expect("Janus starts (tests/run.sh installs Debian's janus)");
    let report = carecall_load::run(&target, Scenario::Rooms { rooms: 2 }, &SHORT)
        .await
        .expect("the run completes");
    println!("Janus {report}");
    assert_real(&report, 2 * 3 * 2 * 2, TOP);
    let scenario = Scenario::FanOut { subscribers: 4 };
    let lite = carecall_load::run(&target, scenario, &SHORT_LITE)
        .await
        .expect("the run with light viewers completes");
    println!("Janus, light viewers {lite}");
    assert_real(&lite, 4 * 2, TOP);
    let scenario = Scenario::Rooms { rooms: 2 };
    let lite = carecall_load::run(&target, scenario, &SHORT_ALL_LITE)
        .await
        .expect("the run with light publishers completes");
    println!("Janus, light peers {lite}");
    assert_real(&lite, 2 * 3 * 2 * 2, TOP);
}

/// The same rooms spanning two nodes (docs/scaling.md), as `carecall-load
/// span` runs them: everything still arrives, and the relay's packets per
/// second and the latency of the specialist's streams (those that cross)
/// are reported beside the same rooms on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spanning_two_nodes_report_the_relay_beside_one_node() {
    let load_settings = |mut options: ServerOptions| {
        options.env.push(("CARECALL_LINK_SECRET".into(), secret()));
        options.estimate_bandwidth = false;
        options
    };
    let scenario = Scenario::Rooms { rooms: 2 };
    let one = {
        let server = Server::start_with(load_settings(ServerOptions::default()));
        bounded(&server, scenario).await
    };
    assert_real(&one, 2 * 3 * 2 * 2, TOP);
    assert_eq!(
        (one.nodes, one.relay_packets_per_second),
        (1, 0.0),
        "{one:?}"
    );

    let hub = crate::spanning::HubCa::new();
    let dir_a = crate::support::DataDir::on_postgres();
    let a = Server::start_with(load_settings(hub.node("node-a", &dir_a)));
    let dir_b = crate::support::DataDir::beside(&dir_a);
    let b = Server::start_with(load_settings(hub.node("node-b", &dir_b)));
    let mut spanning = target(&a);
    spanning.far = Some(Box::new(target(&b)));
    let two = carecall_load::run(&spanning, scenario, &SHORT)
        .await
        .expect("the spanning run completes");
    println!("one node {one}\n\ntwo nodes {two}");
    assert_real(&two, 2 * 3 * 2 * 2, TOP);
    assert_eq!(two.nodes, 2);
    // Each room's specialist sends its sound and camera across once, and
    // takes the two others' across once each: at least a third of the
    // forwarded packets cross (the far viewers' lower layers cross too).
    assert!(
        two.relay_packets_per_second > two.forwarded_per_second / 3.0,
        "{two:?}"
    );
    assert!(
        two.specialist_latency_p50_ms > 0.0 && one.specialist_latency_p50_ms > 0.0,
        "{one:?} {two:?}"
    );
    println!(
        "the relay added {:+.2} ms at p50, {:+.2} ms at p99",
        two.specialist_latency_p50_ms - one.specialist_latency_p50_ms,
        two.specialist_latency_p99_ms - one.specialist_latency_p99_ms
    );
}
