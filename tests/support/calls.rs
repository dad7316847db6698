//! What the browser tests check in a running call, from `getStats()`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::browser::{Browser, Inbound};

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
    wait_all(browsers, remotes, within, "HD", |v| {
        v.width == 1280 && v.height == 720
    })
    .await
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

/// Asserts that over `span` every remote video keeps decoding (frames rising)
/// and every remote audio keeps arriving. The sizes are printed, not checked:
/// a publisher's browser may drop its 720p layer for a moment on its own
/// (CPU or its own bandwidth estimate); [`wait_all_decoding_hd`] checks HD.
pub async fn assert_still_decoding(browsers: &[&Browser], span: Duration) {
    let before: Vec<_> = futures_util::future::join_all(browsers.iter().map(|b| snapshot(b))).await;
    tokio::time::sleep(span).await;
    let after: Vec<_> = futures_util::future::join_all(browsers.iter().map(|b| snapshot(b))).await;
    for (i, ((v0, a0), (v1, a1))) in before.iter().zip(&after).enumerate() {
        assert!(!v1.is_empty(), "browser {i} decodes no video");
        for (who, v) in v1 {
            let earlier = v0.get(who).map_or(0, |x| x.frames_decoded);
            let fps = (v.frames_decoded - earlier) as f64 / span.as_secs_f64();
            println!(
                "browser {i} <- {who}: {}x{}, {:.1} fps decoded, {} freezes",
                v.width, v.height, fps, v.freezes
            );
            assert!(
                v.frames_decoded > earlier + 5,
                "browser {i} <- {who}: frames not rising ({earlier} -> {})",
                v.frames_decoded
            );
        }
        for (who, a) in a1 {
            let earlier = a0.get(who).map_or(0, |x| x.packets);
            assert!(
                a.packets > earlier + 50,
                "browser {i} <- {who}: audio not arriving ({earlier} -> {})",
                a.packets
            );
        }
    }
}
