//! Two non-browser WebRTC peers (webrtc-rs) join one room through signalling and
//! exchange real RTP over DTLS-SRTP through the SFU, both ways. The payloads
//! carry counters, so the test checks that what arrives is the sequence that
//! was sent: nothing missing, nothing reordered, video starting at a keyframe.

use std::time::Duration;

use crate::support::peer::KEYFRAME_EVERY;
use crate::support::{Server, ServerOptions};

/// True when `c` is a run of consecutive integers.
fn contiguous(c: &[u32]) -> bool {
    c.windows(2).all(|w| w[1] == w[0] + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_audio_and_video_through_the_sfu() {
    let server = Server::start();
    // 6 s of media: 300 audio packets and 150 video frames from each side.
    let (a, b) = crate::support::peer::call_of_two(&server, "ward-3", 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (rx, tx) in [(&a, &b), (&b, &a)] {
        let audio = rx.counters(&tx.participant, "audio");
        let video = rx.counters(&tx.participant, "video");
        println!(
            "{} got from {}: {} audio packets ({:?}..{:?}), {} video frames ({:?}..{:?})",
            rx.participant,
            tx.participant,
            audio.len(),
            audio.first(),
            audio.last(),
            video.len(),
            video.first(),
            video.last()
        );
        assert!(
            audio.len() >= 150,
            "too little audio arrived: {}",
            audio.len()
        );
        assert!(
            video.len() >= 60,
            "too little video arrived: {}",
            video.len()
        );
        assert!(
            contiguous(&audio),
            "audio counters not contiguous: {audio:?}"
        );
        assert!(
            contiguous(&video),
            "video counters not contiguous: {video:?}"
        );
        assert_eq!(audio.last(), Some(&299), "audio stopped early");
        assert_eq!(video.last(), Some(&149), "video stopped early");
        // The SFU starts a subscriber on a keyframe. webrtc-rs may swallow the very
        // first packet of a new track while it opens it, so the first counter seen
        // is the keyframe or the frame right after it, never mid-way through a GOP.
        assert!(
            video[0] % KEYFRAME_EVERY <= 1,
            "video must start at a keyframe, started at frame {}",
            video[0]
        );
    }
    assert!(
        a.errors.lock().unwrap().is_empty(),
        "{:?}",
        a.errors.lock().unwrap()
    );
    assert!(
        b.errors.lock().unwrap().is_empty(),
        "{:?}",
        b.errors.lock().unwrap()
    );
    let (a_id, b_id) = (a.participant.clone(), b.participant.clone());
    a.close().await;
    b.close().await;

    // The call log in the data directory recorded both, with roles, joined and left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let sessions = carecall_admin::CallLog::open(&server.db_path())
            .expect("call log opens")
            .sessions()
            .expect("call log reads");
        let done: Vec<_> = sessions
            .iter()
            .filter(|s| s.room == "ward-3" && s.left_at_ms.is_some_and(|l| l >= s.joined_at_ms))
            .map(|s| (s.participant.clone(), s.role.clone()))
            .collect();
        if done.len() == 2 {
            assert!(done.contains(&(a_id.clone(), "home".into())), "{done:?}");
            assert!(
                done.contains(&(b_id.clone(), "clinician".into())),
                "{done:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "call log incomplete: {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `log_format = "json"`, every log line is one JSON object, and every
/// line of the media and signalling paths during a call names its room and
/// participant, in its span (the media plane's participant, signalling's session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_room_and_participant_on_every_call_line() {
    let server = Server::start_with(ServerOptions {
        json_log: true,
        ..ServerOptions::default()
    });
    let (a, b) = crate::support::peer::call_of_two(&server, "ward-8", 100).await;
    let ids = [a.participant.clone(), b.participant.clone()];
    a.close().await;
    b.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let log = std::fs::read_to_string(server.log_path()).expect("server log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of = |prefix: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with(prefix)))
            .collect()
    };
    let media = of("carecall_sfu::participant");
    let signalling = of("carecall_signalling::session");
    println!(
        "{} lines: {} from media participants, {} from signalling sessions",
        lines.len(),
        media.len(),
        signalling.len()
    );
    assert!(media.len() >= 4, "too few media lines to judge:\n{log}");
    assert!(signalling.len() >= 4, "too few signalling lines:\n{log}");
    for (lines, span_name, what) in [
        (&media, "participant", "media"),
        (&signalling, "session", "signalling"),
    ] {
        for l in lines {
            let span = &l["span"];
            assert_eq!(span["name"], span_name, "{l}");
            assert_eq!(span["room"], "ward-8", "{what} line without its room: {l}");
            assert!(
                ids.iter().any(|id| span["participant"] == id.as_str()),
                "{what} line without its participant: {l}"
            );
        }
    }
    for (message, n) in [("joined", 2), ("left", 2), ("media connected", 2)] {
        let seen = lines.iter().filter(|l| l["message"] == message).count();
        assert_eq!(seen, n, "{message:?} lines");
    }
}
