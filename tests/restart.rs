//! A hub restarted as `systemctl restart` or an upgrade does it (SIGTERM,
//! then the binary again on the same data) keeps its calls: every page is
//! told, waits, and resumes on the new process with the same participant
//! id and a fresh media session, with no click; the consultation stays one
//! in the history and in the record hooks. A recording is sealed at the
//! stop, marked cut by the restart, and a second part starts once its
//! clinician is back, in the same consultation.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding;
use crate::support::hooks::{Receiver, SECRET};
use crate::support::{Server, ServerOptions};

/// Whether the page decodes `remotes` videos on a connection made after
/// its old one was marked.
async fn decoding_afresh(b: &Browser, remotes: usize) -> bool {
    let fresh = b
        .eval("const c = window.carecall.call; return !!(c.pc && !c.pc.beforeRestart);")
        .await;
    if fresh.as_bool() != Some(true) {
        return false;
    }
    let inbound = b.inbound().await;
    let video = inbound
        .iter()
        .filter(|s| s.kind == "video" && s.frames_decoded > 0)
        .count();
    let audio = inbound
        .iter()
        .filter(|s| s.kind == "audio" && s.packets > 0)
        .count();
    video >= remotes && audio >= remotes
}

/// Waits until every one of `browsers` decodes the two others on a fresh
/// connection (see [`decoding_afresh`]), up to 10 s from `since`: how long
/// each took from `since`. Panics with each page's recent signals if one
/// does not; `when` ends the message (" of the kill").
pub(crate) async fn all_decoding_afresh_within_10_s(
    browsers: &[Browser],
    since: Instant,
    when: &str,
) -> Vec<Duration> {
    let deadline = since + Duration::from_secs(10);
    let mut back = vec![None; browsers.len()];
    while back.iter().any(Option::is_none) {
        for (i, b) in browsers.iter().enumerate() {
            if back[i].is_none() && decoding_afresh(b, 2).await {
                back[i] = Some(since.elapsed());
            }
        }
        if Instant::now() > deadline {
            let mut notes = Vec::new();
            for b in browsers {
                notes.push(b.metrics().await["signals"].to_string());
            }
            panic!(
                "not all decode again within 10 s{when}: {back:?}\n{}",
                notes.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    back.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_three_browsers_decode_again_with_the_same_ids_in_one_consultation() {
    let hooks = SocketAddr::from(([127, 0, 0, 1], crate::support::free_port()));
    let receiver = Receiver::default();
    receiver.listen(hooks).await;
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let options = ServerOptions {
        env: vec![
            env("CARECALL_HOOK_URL", &format!("http://{hooks}/hooks")),
            env("CARECALL_HOOK_SECRET", SECRET),
            env("CARECALL_HOOKS_MAX_BACKOFF_SECS", "1"),
        ],
        http_port: crate::support::free_port(),
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(options.clone());
    let driver = Driver::start().await;
    let browsers = crate::support::calls::join_three(&driver, &server, "restart-1").await;
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding(&refs, 2, Duration::from_secs(60)).await;
    crate::support::recording::start_recording(&browsers[1]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !crate::support::recording::recording_shown(&browsers[0]).await {
        assert!(Instant::now() < deadline, "the recording never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ids = Vec::new();
    for b in &browsers {
        ids.push(b.participant().await.expect("joined"));
        b.eval("window.carecall.call.pc.beforeRestart = true; return true;")
            .await;
    }

    let stopped = Instant::now();
    let took = server.terminate();
    println!("SIGTERM to exit: {} ms", took.as_millis());
    assert!(
        took < Duration::from_secs(30),
        "stopping took {took:?}, past the unit's TimeoutStopSec"
    );
    for (i, b) in browsers.iter().enumerate() {
        let said = b
            .eval("return document.getElementById('call-message').textContent;")
            .await;
        println!("browser {i} while the hub is down: {said}");
        assert!(
            said.as_str()
                .is_some_and(|s| s.contains("The hub is restarting")),
            "browser {i} says {said}"
        );
    }

    let server = Server::start_with(ServerOptions {
        data_dir: Some(server.data_dir.clone()),
        ..options
    });
    let listening = Instant::now();
    let back = all_decoding_afresh_within_10_s(&browsers, listening, "").await;
    println!(
        "decoding again after the new process listened: {back:?}; {} ms after SIGTERM (the new process started {} ms after it)",
        stopped.elapsed().as_millis(),
        (listening - stopped).as_millis()
    );
    for (b, id) in browsers.iter().zip(&ids) {
        assert_eq!(
            b.participant().await.as_deref(),
            Some(id.as_str()),
            "same id"
        );
        let text = b
            .eval("return document.getElementById('call-message').textContent;")
            .await;
        assert!(
            !text.as_str().unwrap_or_default().contains("restarting"),
            "the restart message is gone once back: {text}"
        );
    }

    // One consultation, with its three sessions; no second start.
    let calls = crate::hooks::history(&server).await;
    assert_eq!(calls.len(), 1, "one consultation: {calls:?}");
    assert_eq!(
        calls[0].1, 3,
        "three sessions, each carried over: {calls:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = receiver.events();
        let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
        if of("participant.joined") >= 3 && of("recording.started") >= 2 {
            assert_eq!(of("consultation.started"), 1, "{events:?}");
            assert_eq!(of("participant.joined"), 3, "no second join: {events:?}");
            assert_eq!(
                of("participant.left") + of("consultation.ended"),
                0,
                "{events:?}"
            );
            let parts: Vec<&serde_json::Value> = events
                .iter()
                .filter(|e| e["type"] == "recording.started")
                .collect();
            assert_eq!(
                parts[0]["data"]["consultation"],
                parts[1]["data"]["consultation"]
            );
            let ready: Vec<&serde_json::Value> = events
                .iter()
                .filter(|e| e["type"] == "recording.ready")
                .collect();
            assert_eq!(ready.len(), 1, "the first part is sealed: {events:?}");
            assert_eq!(ready[0]["data"]["cut_by_restart"], true, "{:?}", ready[0]);
            assert_eq!(ready[0]["data"]["recording"], parts[0]["data"]["recording"]);
            println!(
                "recording cut by the restart after {} s; the next part {} began after it",
                ready[0]["data"]["duration_seconds"], parts[1]["data"]["recording"]
            );
            break;
        }
        assert!(Instant::now() < deadline, "hook events: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for b in browsers {
        b.close().await;
    }
}
