//! A short, bounded run of the load tool against a real server: the figures
//! it reports are real (packets of the real clip forwarded and arriving
//! unchanged, every subscriber fed, loss under 1% on loopback, server CPU and
//! memory read from /proc), and a few rounds of join/leave churn all connect.

mod support;

use carecall_load::{Options, Report, Scenario, Sfu, Target};
use support::{Server, ServerOptions};

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
    }
}

/// A short run: 2 s of warm-up, 4 s measured.
const SHORT: Options = Options {
    seconds: 4.0,
    warmup: 2.0,
    progress: true,
};

async fn bounded(server: &Server, scenario: Scenario) -> Report {
    let target = target(server);
    let report = carecall_load::run(&target, scenario, &SHORT)
        .await
        .expect("the run completes");
    println!("{report}");
    report
}

fn assert_real(r: &Report, streams: usize) {
    assert_eq!(r.forwarded_streams, streams, "{r:?}");
    assert_eq!(
        r.subscribers_without_media, 0,
        "every subscriber got media: {r:?}"
    );
    // The clip's top layer is 50 audio + about 140 video packets/s per
    // stream pair: at least half of it.
    assert!(r.forwarded_per_second > 50.0 * streams as f64, "{r:?}");
    assert!(r.loss < 0.01, "loss on loopback: {r:?}");
    assert_eq!(
        r.unrecognised_packets, 0,
        "every packet arrived as the clip's bytes: {r:?}"
    );
    // Publishers send three layers; with no view sizes or estimate, each
    // subscriber is sent the top one.
    let [q, h, f] = r.video_packets_by_layer;
    assert!(f > 0 && f > 10 * (q + h), "{r:?}");
    assert!(r.server_cpu_seconds > 0.0, "{r:?}");
    assert!(r.rss_during_mib > 1.0, "{r:?}");
    assert!(
        r.latency_p50_ms > 0.0 && r.latency_p99_ms >= r.latency_p50_ms,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_load_run_reports_real_figures() {
    // As `carecall-load --server` runs it: single-layer load peers leave an
    // estimate no layer to choose.
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_LINK_SECRET".into(), secret())],
        estimate_bandwidth: false,
        ..ServerOptions::default()
    });
    let fanout = bounded(&server, Scenario::FanOut { subscribers: 4 }).await;
    assert_real(&fanout, 4 * 2);
    let rooms = bounded(&server, Scenario::Rooms { rooms: 2 }).await;
    assert_real(&rooms, 2 * 3 * 2 * 2);
    // Join/leave churn: every join connects, and the figures are read.
    let churn = carecall_load::churn(&target(&server), 3, 4)
        .await
        .expect("churn runs");
    println!("{churn}");
    assert_eq!((churn.joins, churn.failed), (12, 0), "{churn:?}");
    assert!(churn.connect_p50_ms > 0.0 && churn.connect_p99_ms >= churn.connect_p50_ms);
    assert!(
        churn.cpu_ms_per_join > 0.0 && churn.rss_after_mib > 1.0,
        "{churn:?}"
    );
}

/// The same bounded run against Debian's Janus (VideoRoom), as the
/// comparison in `docs/performance.md` runs it: in a namespace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_against_janus_reports_real_figures() {
    let (_janus, target) =
        carecall_load::janus::spawn().expect("Janus starts (tests/run.sh installs Debian's janus)");
    let report = carecall_load::run(&target, Scenario::Rooms { rooms: 2 }, &SHORT)
        .await
        .expect("the run completes");
    println!("Janus {report}");
    assert_real(&report, 2 * 3 * 2 * 2);
}
