//! Recording a real call: three Chromium browsers in HD, a care home that
//! tries to record (refused by the hub), a clinician who records 20 s. The
//! file on disk is sealed (not WebM); exported with `carecall recording
//! export`, it must pass `ffprobe` (three VP8 tracks, the mixed audio track,
//! 20 s ± 1 s) and decode with `ffmpeg` without one error; the download link
//! in `recording.ready` must give the same bytes (the event's SHA-256).

use std::process::Command;

use std::time::{Duration, Instant};

use crate::support::axe::assert_accessible;
use crate::support::browser::{Browser, Driver, FAKE_CAMERA_FPS};
use crate::support::calls::wait_all_decoding_hd;
use crate::support::hooks::EventSink;
use crate::support::queue::{account, get_as};
use crate::support::recording::{
    answer_consent, export, ffprobe, recording_shown, start_recording,
};
use crate::support::{Server, ServerOptions};
use fantoccini::Locator;
use serde_json::{json, Value};

async fn wait_until_all(browsers: &[Browser], shown: bool, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for b in browsers {
            all &= recording_shown(b).await == shown;
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "recording indicator not {shown} in every browser"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` over HTTP/1.0, so the body comes whole (not chunked) until close.
pub(crate) async fn download(base_url: &str, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (status, buf[split + 4..].to_vec())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_records_a_three_way_call_and_the_file_plays() {
    // Two receivers: carecall's JSON, and an integration engine that speaks FHIR.
    let events = EventSink::default();
    let (_config_dir, config) = events.start().await;
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_CONFIG".into(), config.display().to_string())],
        ..ServerOptions::default()
    });
    let driver = Driver::start().await;
    let browsers = crate::support::calls::join_three(&driver, &server, "rec-1").await;
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding_hd(&refs, 2, Duration::from_secs(60)).await;
    assert_accessible(&browsers[0], "the home's call with two others").await;
    assert_accessible(&browsers[1], "the clinician's call with two others").await;

    // The care home has no Record button, and asking anyway is refused.
    let home = &browsers[0];
    let button_hidden = home
        .eval("return document.getElementById('record-button').hidden;")
        .await;
    assert_eq!(
        button_hidden,
        Value::Bool(true),
        "a care home sees no Record button"
    );
    home.eval("window.carecall.call.setRecording(true);").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let said = home
        .eval("return document.getElementById('call-message').textContent;")
        .await;
    println!("care home asked to record: {said}");
    assert!(
        said.as_str().unwrap_or("").contains("Only a clinician"),
        "{said}"
    );
    for b in &browsers {
        assert!(!recording_shown(b).await, "a care home started a recording");
    }

    // Recording waits for consent: the Record button says so and asks.
    // Refused, the hub will not record, even when asked directly.
    let clinician = &browsers[1];
    let button = clinician
        .client
        .find(Locator::Css("#record-button"))
        .await
        .expect("a clinician has a Record button");
    assert_eq!(button.text().await.unwrap(), "Record (consent first)");
    button.click().await.expect("click Record");
    answer_consent(clinician, "#consent-refused").await;
    clinician
        .until(
            "return document.getElementById('record-button').textContent === 'Record (consent refused)';",
            Duration::from_secs(10),
            "the refusal shown on the Record button",
        )
        .await;
    clinician
        .eval("window.carecall.call.setRecording(true);")
        .await;
    clinician
        .until(
            "return document.getElementById('call-message').textContent.includes('refused');",
            Duration::from_secs(10),
            "the hub refuses to record",
        )
        .await;
    for b in &browsers {
        assert!(!recording_shown(b).await, "recorded without consent");
    }

    // The decision changes: the clinician records 20 s; everyone sees it
    // start and stop.
    start_recording(clinician).await;
    let shown = wait_until_all(&browsers, true, Duration::from_secs(10)).await;
    println!(
        "recording indicator in all three browsers {} ms after the click",
        shown.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    button.click().await.expect("click Stop recording");
    let hidden = wait_until_all(&browsers, false, Duration::from_secs(10)).await;
    println!(
        "indicator gone in all three {} ms after stop",
        hidden.as_millis()
    );

    // The file is finished and announced.
    let start = Instant::now();
    let ready = loop {
        if let Some(e) = events.of_type("recording.ready").pop() {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no recording.ready event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "recording.ready {} ms after stop: {ready}",
        start.elapsed().as_millis()
    );
    let started = events.of_type("recording.started");
    assert_eq!(started.len(), 1);
    let consent = &started[0]["data"]["consent"];
    assert_eq!(
        (
            &consent["given"],
            &consent["by"],
            &consent["how"],
            &consent["recorded_by"]["role"]
        ),
        (
            &json!(true),
            &json!("resident"),
            &json!("verbal"),
            &json!("clinician")
        ),
        "{consent}"
    );
    let data = &ready["data"];
    assert_eq!(data["packets_dropped"], 0, "the recorder kept up: {data}");
    let id = data["recording"].as_str().expect("recording id").to_owned();
    let sha = data["sha256"].as_str().expect("sha256").to_owned();

    // On disk it is sealed, not WebM.
    let sealed = server
        .data_dir
        .path()
        .join("recordings")
        .join(format!("{id}.webm.sealed"));
    let on_disk = std::fs::read(&sealed).expect("sealed recording on disk");
    assert_eq!(&on_disk[..8], b"CCREC\x00\x00\x01");
    assert!(
        !on_disk
            .windows(4)
            .take(4096)
            .any(|w| w == [0x1A, 0x45, 0xDF, 0xA3]),
        "EBML header in the clear"
    );

    // Exported, it is a WebM that ffprobe and ffmpeg accept.
    let (_out_dir, out) = export(&server, &id);
    let webm = std::fs::read(&out).unwrap();
    assert_eq!(
        &webm[..4],
        &[0x1A, 0x45, 0xDF, 0xA3],
        "exported file is WebM"
    );
    assert_eq!(sha256_hex(&webm), sha, "export matches the event's SHA-256");

    // One read of the whole file: the streams, and every frame counted.
    let probed = ffprobe(&out);
    let streams = probed["streams"].as_array().unwrap();
    let video: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    let audio: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(video.len(), 3, "one video track per participant");
    assert!(
        video
            .iter()
            .all(|s| s["codec_name"] == "vp8" && s["height"] == 720),
        "720p VP8: {video:?}"
    );
    // The mixed consultation track, then one per participant.
    assert_eq!(audio.len(), 4, "mixed audio and three participants' audio");
    assert!(audio.iter().all(|s| s["codec_name"] == "opus"));
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    println!("recorded duration {duration:.2} s");
    assert!(
        (duration - 20.0).abs() <= 1.0,
        "duration {duration} s, wanted 20 ± 1"
    );

    // Every camera frame is in the file: each video track holds (nearly)
    // the fake camera's rate for the whole recording.
    let frames: Vec<u64> = video
        .iter()
        .filter_map(|s| s["nb_read_frames"].as_str()?.parse().ok())
        .collect();
    let camera = f64::from(FAKE_CAMERA_FPS) * duration;
    println!("video frames per track {frames:?}; the camera made {camera:.0} in {duration:.1} s");
    assert_eq!(frames.len(), 3, "a frame count per video track");
    for f in &frames {
        assert!(
            *f as f64 >= 0.9 * camera,
            "{f} frames recorded of the {camera:.0} the camera made: {frames:?}"
        );
    }

    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&out)
        // Decoded frames keep the file's own millisecond times: with
        // ffmpeg's default (one tick per frame at a guessed rate) two
        // camera frames closer than a tick collide, whatever the file holds.
        .args(["-map", "0", "-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "ffmpeg decode errors:\n{errors}"
    );

    // The mixed track carries the conversation (Chromium's fake microphone
    // beeps), not silence.
    let loudness = Command::new("ffmpeg")
        .args(["-v", "info", "-nostats", "-i"])
        .arg(&out)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg volumedetect");
    let report = String::from_utf8_lossy(&loudness.stderr);
    let mean_db: f64 = report
        .lines()
        .find_map(|l| {
            l.split_once("mean_volume: ")
                .map(|(_, v)| v.trim_end_matches(" dB").trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no volumedetect figure:\n{report}"));
    println!("mixed audio mean volume {mean_db:.1} dB");
    assert!(mean_db > -50.0, "the mixed track is silent ({mean_db} dB)");

    // The download link in the event gives the same bytes.
    let url = data["download_url"].as_str().expect("download_url");
    assert!(
        url.starts_with(&server.base_url),
        "{url} is not under {}",
        server.base_url
    );
    let path = url
        .split_once("/recordings/")
        .map(|(_, p)| format!("/recordings/{p}"))
        .unwrap();
    let (status, body) = download(&server.base_url, &path).await;
    assert_eq!(status, 200, "download");
    assert_eq!(sha256_hex(&body), sha, "downloaded bytes match");
    let forged = path.replace("sig=", "sig=A");
    let (status, _) = download(&server.base_url, &forged).await;
    assert_eq!(status, 403, "a tampered download link is refused");
    // The export and the download are in the audit trail; the refused
    // download is not (nothing was fetched).
    let auditor = account(&server, "auditor", "admin").await;
    let (code, trail) = get_as(&server, &auditor, "/admin/api/audit").await;
    assert_eq!(code, 200, "{trail}");
    let subject = format!("consultation {}, recording {id}", data["consultation"]);
    let fetched: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == subject.as_str())
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["account"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(fetched.len(), 2, "{trail}");
    assert_eq!(fetched[0], ("recording.downloaded", "signed link"));
    assert_eq!(fetched[1].0, "recording.exported");
    assert!(fetched[1].1.starts_with("command line"), "{fetched:?}");

    // The FHIR endpoint got the recording as a DocumentReference, and, once
    // everyone has left, the consultation as an Encounter.
    let start = Instant::now();
    let documents = loop {
        let documents = events.fhir_resources("DocumentReference");
        if !documents.is_empty() || start.elapsed() > Duration::from_secs(30) {
            break documents;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        documents.len(),
        1,
        "one DocumentReference; the FHIR endpoint got {:?}",
        events.fhir.lock().unwrap()
    );
    let (content_type, doc) = &documents[0];
    assert_eq!(content_type, "application/fhir+json");
    assert_eq!(doc["content"][0]["attachment"]["url"], data["download_url"]);
    let consultation = data["consultation"].to_string();
    assert_eq!(
        doc["context"]["encounter"][0]["identifier"]["value"],
        consultation.as_str()
    );
    for b in browsers {
        b.close().await;
    }
    let start = Instant::now();
    let bundle = loop {
        if let Some((_, b)) = events.fhir_resources("Bundle").pop() {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no FHIR Bundle for the ended consultation"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let encounter = &bundle["entry"][0]["resource"];
    println!("FHIR Encounter: {encounter}");
    assert_eq!(encounter["resourceType"], "Encounter");
    assert_eq!(encounter["status"], "finished");
    assert_eq!(encounter["identifier"][0]["value"], consultation.as_str());
    assert_eq!(encounter["participant"].as_array().map(Vec::len), Some(3));
    // The recording was finished before the call ended, so it is in the Bundle.
    let listed = &bundle["entry"][1]["resource"];
    assert_eq!(listed["resourceType"], "DocumentReference", "{bundle}");
    assert_eq!(listed["identifier"][0]["value"], id.as_str());
    assert!(listed["content"][0]["attachment"]["url"].is_string());
    let ended = events.of_type("consultation.ended");
    assert_eq!(
        ended.len(),
        1,
        "the standard endpoint got consultation.ended as JSON"
    );

    // An admin sees it on the dashboard, with a fresh download link.
    let password = "a long hub password";
    assert!(server.add_admin("hub.admin", password).status.success());
    let admin = driver.browser().await;
    crate::support::admin::sign_in_with_the_form(&admin, &server.base_url, "hub.admin", password)
        .await;
    let start = Instant::now();
    let listed = loop {
        let text = admin
            .eval("const t = document.getElementById('recordings'); return t ? t.textContent : '';")
            .await;
        let text = text.as_str().unwrap_or_default().to_owned();
        if text.contains("ready") || start.elapsed() > Duration::from_secs(15) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("dashboard recordings: {listed}");
    assert!(
        listed.contains("rec-1") && listed.contains("ready") && listed.contains("sealed"),
        "{listed}"
    );
    let href = admin
        .eval("const a = document.querySelector('#recordings a'); return a ? a.getAttribute('href') : null;")
        .await;
    let href = href
        .as_str()
        .expect("a download link on the dashboard")
        .to_owned();
    let path = href
        .split_once("/recordings/")
        .map(|(_, p)| format!("/recordings/{p}"))
        .unwrap();
    let (status, body) = download(&server.base_url, &path).await;
    assert_eq!((status, sha256_hex(&body)), (200, sha));
    admin.close().await;
}
