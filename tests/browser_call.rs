//! Real browsers in a real call through the SFU: three headless Chromium
//! instances with fake 1280x720 cameras join one room from links made by
//! `carecall link`; each must decode the other two at 1280x720 and receive
//! their audio. While the call runs, bad input is thrown at the server and the
//! call must keep decoding. Then a fourth browser joins and must see video
//! within 1 s of its connection coming up (keyframe on join); with four
//! smaller tiles nobody watches 720p, and the cameras stop sending it.

use std::time::{Duration, Instant};

use crate::support::abuse::{spray_media_port, spray_tcp_media_port, ws_refusal};
use crate::support::browser::{Browser, Driver};
use crate::support::calls::{assert_still_decoding, wait_all_decoding_hd};
use crate::support::http::get as http_get;
use crate::support::{metrics, token_of, Server};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn bad_input_is_refused_and_harmless(server: &Server) {
    // Forged: a valid link's claims with another signature.
    let good = token_of(&server.link("ward-9", "home", "Rose Court", "1h"));
    let (claims, _) = good.split_once('.').unwrap();
    let forged = format!("{claims}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let (status, body) = http_get(&server.base_url, &format!("/join?t={forged}")).await;
    assert_eq!(status, 403, "forged link page");
    assert!(body.contains("not valid for this hub"), "{body}");

    let expired = token_of(&server.link("ward-9", "home", "Rose Court", "1s"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = http_get(&server.base_url, &format!("/join?t={expired}")).await;
    assert_eq!(status, 410, "expired link page");
    assert!(body.contains("expired"), "{body}");
    let (status, _) = http_get(&server.base_url, "/join?t=%%%garbage").await;
    assert_eq!(status, 400, "malformed link page");

    let ws = server.ws_url();
    let join = |t: &str| Message::text(json!({"type":"join","v":1,"token":t}).to_string());
    let cases: Vec<(&str, Vec<Message>, &str, u16)> = vec![
        ("forged token", vec![join(&forged)], "bad-token", 4001),
        ("expired token", vec![join(&expired)], "expired-token", 4001),
        (
            "malformed JSON",
            vec![Message::text("{\"type\": \"join\", oops")],
            "malformed",
            4002,
        ),
        (
            "unknown type",
            vec![join(&good), Message::text(r#"{"type":"teleport"}"#)],
            "unknown-type",
            4002,
        ),
        (
            "oversized",
            vec![
                join(&good),
                Message::text(json!({"type":"offer","sdp":"v=0\r\n".repeat(20_000)}).to_string()),
            ],
            "too-large",
            1009,
        ),
        (
            "binary frame",
            vec![Message::binary(vec![1u8, 2, 3])],
            "binary-not-supported",
            4002,
        ),
        (
            // The close reason quotes the type; it must be cut on a character boundary.
            "long multibyte type",
            vec![Message::text(json!({"type": "中".repeat(60)}).to_string())],
            "unknown-type",
            4002,
        ),
        (
            "offer before join",
            vec![Message::text(r#"{"type":"offer","sdp":"v=0"}"#)],
            "not-joined",
            1008,
        ),
    ];
    for (what, frames, code, close) in cases {
        let (error, closed) = ws_refusal(&ws, frames).await;
        println!("{what}: {} / close {closed:?}", error["code"]);
        assert_eq!(error["code"], code, "{what}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no message"
        );
        assert_eq!(closed, Some(close), "{what}: close code");
    }

    // Garbage at the media ports: parsers must drop it.
    spray_media_port(&server.media_addrs, 20_000).await;
    spray_tcp_media_port(&server.tcp_addrs, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_in_hd_then_a_fourth_sees_video_within_a_second() {
    let server = Server::start();
    let driver = Driver::start().await;
    let links = [
        server.link("consult-1", "home", "Rose Court", "1h"),
        server.link("consult-1", "clinician", "Hub clinician", "1h"),
        server.link("consult-1", "specialist", "Frailty consultant", "1h"),
    ];
    let mut browsers = Vec::new();
    for link in &links {
        let b = driver.browser().await;
        b.join(link).await;
        browsers.push(b);
    }
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding_hd(&refs, 2, Duration::from_secs(60)).await;
    for (i, b) in browsers.iter().enumerate() {
        let m = b.metrics().await;
        println!(
            "browser {i}: page load -> first remote frame (ms): {}; join click at {} ms",
            m["firstRemoteFrameMs"], m["joinClickedMs"]
        );
    }
    assert_still_decoding(&refs, 720, Duration::from_secs(5)).await;
    wait_all_decoding_hd(&refs, 2, Duration::from_secs(20)).await;
    let mut ids = Vec::new();
    for b in &browsers {
        ids.push(b.participant().await.expect("joined"));
    }
    media_metrics_show_everyone(&server, &ids).await;

    bad_input_is_refused_and_harmless(&server).await;
    println!("after bad input:");
    assert_still_decoding(&refs, 720, Duration::from_secs(3)).await;
    // Still an HD call: all six remote videos at 720p again at one moment.
    let hd = Instant::now();
    wait_all_decoding_hd(&refs, 2, Duration::from_secs(20)).await;
    println!("all in HD {} ms after the check", hd.elapsed().as_millis());

    // A fourth participant joins the running call.
    let fourth = driver.browser().await;
    fourth
        .join(&server.link("consult-1", "observer", "Student nurse", "1h"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (connected, first_frames) = loop {
        let m = fourth.metrics().await;
        let frames = m["firstRemoteFrameMs"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if frames.len() >= 3 && m["connectedMs"].is_number() {
            println!("fourth browser metrics: {m}");
            break (m["connectedMs"].as_f64().unwrap(), frames);
        }
        assert!(
            Instant::now() < deadline,
            "fourth browser saw no video of all three: {m}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (who, at) in &first_frames {
        let after = at.as_f64().unwrap() - connected;
        println!("fourth browser: first frame of {who} {after:.0} ms after connecting");
        assert!(
            after < 1000.0,
            "{who}'s video took {after:.0} ms after connecting (keyframe on join)"
        );
    }
    // Four people: every tile is now at most 360p tall, so nobody would take
    // 720p. After the 5 s hold the SFU tells each camera to pause its `f`
    // layer, and the browser's encoder stops it.
    let start = Instant::now();
    loop {
        let layers = browsers[0].outbound_layers().await;
        let full = layers.iter().find(|(rid, _, _)| rid == "f").cloned();
        if let Some((_, false, frames)) = full {
            println!(
                "720p layer paused at the publisher {} ms after the fourth joined ({frames} frames sent)",
                start.elapsed().as_millis()
            );
            let before = frames;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = browsers[0].outbound_layers().await;
            let still = after.iter().find(|(rid, _, _)| rid == "f").map(|l| l.2);
            assert!(
                still.is_some_and(|f| f <= before + 1),
                "f still encoding: {after:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the publisher still sends 720p nobody watches: {layers:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fourth_id = fourth.participant().await.expect("joined");
    let text = metrics::scrape(&server.base_url).await;
    let sent = "carecall_participant_sent_packets_total";
    assert!(metrics::participant_value(&text, sent, &fourth_id).is_some_and(|v| v > 0.0));
    fourth.close().await;
    // Its series go with it; the others' stay.
    let start = Instant::now();
    loop {
        let text = metrics::scrape(&server.base_url).await;
        let gone = !text.contains(&format!("participant=\"{fourth_id}\""));
        if gone {
            let others = ids
                .iter()
                .all(|id| metrics::participant_value(&text, sent, id).is_some());
            assert!(others, "the others' series went too:\n{text}");
            println!(
                "{fourth_id}'s series gone {} ms after it left",
                start.elapsed().as_millis()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{fourth_id}'s series still there after it left"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for b in browsers {
        b.close().await;
    }
}

/// A scrape of `/metrics` during the call shows media flowing both ways for
/// every participant.
async fn media_metrics_show_everyone(server: &Server, ids: &[String]) {
    let text = metrics::scrape(&server.base_url).await;
    for id in ids {
        for name in [
            "carecall_participant_received_packets_total",
            "carecall_participant_sent_packets_total",
            "carecall_participant_received_bytes_total",
            "carecall_participant_receive_bytes_per_second",
            "carecall_participant_send_bytes_per_second",
        ] {
            let v = metrics::participant_value(&text, name, id);
            assert!(v.is_some_and(|v| v > 0.0), "{name} for {id}: {v:?}\n{text}");
        }
        let kbps =
            metrics::participant_value(&text, "carecall_participant_receive_bytes_per_second", id)
                .unwrap_or(0.0)
                * 8.0
                / 1000.0;
        println!("/metrics: {id} uploads {kbps:.0} kbit/s");
    }
    assert!(text.contains("carecall_rooms 1"), "{text}");
    // Everyone's join and first video were counted once.
    for name in ["carecall_join_seconds", "carecall_first_video_seconds"] {
        let value =
            |suffix: &str| metrics::value(&text, &format!("{name}_{suffix}")).unwrap_or(0.0);
        let (count, sum) = (value("count"), value("sum"));
        assert_eq!(count, ids.len() as f64, "{name}_count\n{text}");
        println!(
            "/metrics: {name} mean {:.0} ms over {count}",
            sum / count * 1000.0
        );
    }
}
