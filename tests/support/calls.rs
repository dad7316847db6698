//! What the browser tests check in a running call, from `getStats()`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::browser::{Browser, Inbound, FAKE_CAMERA_FPS, OPUS_PACKETS_PER_SECOND};

/// Frames decoded per remote participant's video, and audio packets received.
pub async fn snapshot(b: &Browser) -> (HashMap<String, Inbound>, HashMap<String, Inbound>) {
    let mut video = HashMap::new();
    let mut audio = HashMap::new();
    for s in b.inbound().await {
        let map = if s.kind == "video" {
            &mut video
        } else {
            &mut audio
        };
        map.insert(s.participant.clone(), s);
    }
    (video, audio)
}

/// Waits until every browser decodes `remotes` remote videos at 1280x720 and
/// receives their audio.
pub async fn wait_all_decoding_hd(browsers: &[&Browser], remotes: usize, within: Duration) {
    wait_all_decoding_at(browsers, remotes, 720, within).await
}

/// Waits until every browser decodes `remotes` remote videos at `height`
/// (16:9) and receives their audio.
pub async fn wait_all_decoding_at(
    browsers: &[&Browser],
    remotes: usize,
    height: u64,
    within: Duration,
) {
    let what = format!("{height}p");
    wait_all(browsers, remotes, within, &what, |v| is_at(v, height)).await
}

/// Whether `v` is decoded at `height`, 16:9.
fn is_at(v: &Inbound, height: u64) -> bool {
    v.height == height && v.width == height * 16 / 9
}

/// Waits until every browser decodes `remotes` remote videos (any size) and
/// receives their audio.
pub async fn wait_all_decoding(browsers: &[&Browser], remotes: usize, within: Duration) {
    wait_all(browsers, remotes, within, "decoded", |_| true).await
}

async fn wait_all(
    browsers: &[&Browser],
    remotes: usize,
    within: Duration,
    what: &str,
    counts: impl Fn(&Inbound) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let mut ok = true;
        let mut report = Vec::new();
        for (i, b) in browsers.iter().enumerate() {
            let (video, audio) = snapshot(b).await;
            let good = video
                .values()
                .filter(|v| counts(v) && v.frames_decoded > 0)
                .count();
            let heard = audio.values().filter(|a| a.packets > 0).count();
            ok &= good >= remotes && heard >= remotes;
            report.push(format!(
                "browser {i}: {good} {what} videos, {heard} audio; {video:?}"
            ));
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all browsers decode in time:\n{}",
            report.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asserts that over `span` every remote video stays at `height` (16:9,
/// checked every half second) and decodes at least 80% of the fake camera's
/// frame rate, and every remote audio keeps arriving at its rate.
pub async fn assert_still_decoding(browsers: &[&Browser], height: u64, span: Duration) {
    let snapshots = || futures_util::future::join_all(browsers.iter().map(|b| snapshot(b)));
    let before: Vec<_> = snapshots().await;
    let end = Instant::now() + span;
    loop {
        let now: Vec<_> = snapshots().await;
        for (i, (video, _)) in now.iter().enumerate() {
            for (who, v) in video {
                assert!(
                    is_at(v, height),
                    "browser {i} <- {who}: {}x{} during the call, not {height}p",
                    v.width,
                    v.height
                );
            }
        }
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500).min(end - Instant::now())).await;
    }
    let after: Vec<_> = snapshots().await;
    let least_fps = 0.8 * f64::from(FAKE_CAMERA_FPS);
    for (i, ((v0, a0), (v1, a1))) in before.iter().zip(&after).enumerate() {
        assert!(!v1.is_empty(), "browser {i} decodes no video");
        for (who, v) in v1 {
            let earlier = v0.get(who).map_or(0, |x| x.frames_decoded);
            assert!(
                v.frames_decoded >= earlier,
                "browser {i} <- {who}: frames decoded went back from {earlier} to {} \
                 (its receiver's statistics started over)",
                v.frames_decoded
            );
            let fps = (v.frames_decoded - earlier) as f64 / span.as_secs_f64();
            println!(
                "browser {i} <- {who}: {}x{}, {fps:.1} fps decoded, {} freezes",
                v.width, v.height, v.freezes
            );
            assert!(
                fps >= least_fps,
                "browser {i} <- {who}: {fps:.1} fps decoded, under {least_fps:.1} \
                 ({earlier} -> {} frames in {span:?})",
                v.frames_decoded
            );
        }
        assert_eq!(
            a1.len(),
            v1.len(),
            "browser {i}: a remote video without audio"
        );
        let least_packets = (0.8 * OPUS_PACKETS_PER_SECOND * span.as_secs_f64()) as u64;
        for (who, a) in a1 {
            let earlier = a0.get(who).map_or(0, |x| x.packets);
            assert!(
                a.packets >= earlier + least_packets,
                "browser {i} <- {who}: audio not arriving at its rate \
                 ({earlier} -> {} packets in {span:?})",
                a.packets
            );
        }
    }
}

/// A care home, a clinician and a specialist, each in their own browser
/// from `driver`, joining `room` on `server` in that order.
pub async fn join_three(
    driver: &super::browser::Driver,
    server: &super::Server,
    room: &str,
) -> Vec<Browser> {
    let mut browsers = Vec::new();
    for (role, name) in [
        ("home", "Rose Court"),
        ("clinician", "Hub clinician"),
        ("specialist", "Frailty consultant"),
    ] {
        let b = driver.browser().await;
        b.join(&server.link(room, role, name, "1h")).await;
        browsers.push(b);
    }
    browsers
}

/// Waits until `viewer` decodes `participant`'s video at `height` (16:9).
pub async fn wait_decoding_at(viewer: &Browser, participant: &str, height: u64, within: Duration) {
    let start = Instant::now();
    loop {
        let (video, _) = snapshot(viewer).await;
        let v = video.get(participant);
        if v.is_some_and(|v| is_at(v, height)) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{participant} not at {height}p within {within:?}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
