//! Recording a call from a clinician's browser and reading the file back:
//! `carecall recording list|export`, then `ffprobe`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use super::browser::{Browser, FAKE_CAMERA_FPS};
use super::{binary, Server};

/// Whether `b` shows the "Recording" indicator.
pub async fn recording_shown(b: &Browser) -> bool {
    b.eval("return !document.getElementById('recording-indicator').hidden;")
        .await
        .as_bool()
        .unwrap_or(false)
}

/// Presses the clinician's Record button and answers the question it asks
/// first in a new call: consent, here the resident's, said on the call.
pub async fn start_recording(clinician: &Browser) {
    clinician
        .client
        .find(Locator::Css("#record-button"))
        .await
        .expect("a clinician has a Record button")
        .click()
        .await
        .expect("click Record");
    answer_consent(clinician, "#consent-given").await;
}

/// Presses `button` (`#consent-given` or `#consent-refused`) in the consent
/// question, once it shows.
pub async fn answer_consent(clinician: &Browser, button: &str) {
    clinician
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            "#consent-prompt:not([hidden]) {button}"
        )))
        .await
        .expect("the consent question")
        .click()
        .await
        .expect("answer the consent question");
}

/// Presses the clinician's Record button, and Stop `span` after the
/// indicator shows; waits for the file to be ready, exports it and returns
/// [`ffprobe`]'s view of it.
pub async fn record(server: &Server, clinician: &Browser, span: Duration) -> Value {
    let button = clinician
        .client
        .find(Locator::Css("#record-button"))
        .await
        .expect("a clinician has a Record button");
    for shown in [true, false] {
        if shown {
            start_recording(clinician).await;
        } else {
            button.click().await.expect("click Stop recording");
        }
        let start = Instant::now();
        while recording_shown(clinician).await != shown {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "recording indicator not {shown} 10 s after the click"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if shown {
            tokio::time::sleep(span).await;
        }
    }
    let id = ready_recording(server).await;
    let (_dir, out) = export(server, &id);
    ffprobe(&out)
}

/// Exports recording `id` with `carecall recording export` into a new
/// temporary directory (deleted when the first value drops); the file's path.
pub fn export(server: &Server, id: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("consultation.webm");
    let export = Command::new(binary())
        .args(["recording", "export", id, "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .envs(server.data_dir.database_env())
        .output()
        .expect("run carecall recording export");
    assert!(
        export.status.success(),
        "export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    (dir, out)
}

/// The id of the server's one finished recording, waiting up to 30 s for it.
async fn ready_recording(server: &Server) -> String {
    let start = Instant::now();
    loop {
        let list = Command::new(binary())
            .args(["recording", "list", "--data-dir"])
            .arg(server.data_dir.path())
            .envs(server.data_dir.database_env())
            .output()
            .expect("run carecall recording list");
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        let ready = text.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next()?;
            (words.next()? == "ready").then(|| id.to_owned())
        });
        if let Some(id) = ready {
            return id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no ready recording after 30 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `ffprobe` on a media file, every frame counted: the format's duration,
/// and each stream's codec type and name, size and frames read. Fails the
/// test if ffprobe fails or complains.
pub fn ffprobe(file: &Path) -> Value {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,width,height,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe is installed (tests/run.sh installs ffmpeg)");
    assert!(
        probe.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(
        probe.stderr.is_empty(),
        "ffprobe complained: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probed = serde_json::from_slice(&probe.stdout).expect("ffprobe's JSON");
    println!("ffprobe: {probed}");
    probed
}

/// The video streams in [`ffprobe`]'s view of a file.
pub fn video_streams(probed: &Value) -> Vec<&Value> {
    probed["streams"]
        .as_array()
        .map(|all| all.iter().filter(|s| s["codec_type"] == "video").collect())
        .unwrap_or_default()
}

/// Frames read from a stream in [`ffprobe`]'s view.
pub fn frames(stream: &Value) -> u64 {
    stream["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Asserts that a recording [`ffprobe`] read holds `cameras` video tracks,
/// each VP8 at 1280x720 with at least 80% of the frames the fake camera made
/// in `span`.
pub fn assert_cameras_recorded_in_hd(probed: &Value, cameras: usize, span: Duration) {
    let video = video_streams(probed);
    assert_eq!(
        video.len(),
        cameras,
        "one video track per camera: {video:?}"
    );
    let least = (0.8 * f64::from(FAKE_CAMERA_FPS) * span.as_secs_f64()) as u64;
    for s in &video {
        assert_eq!(s["codec_name"], "vp8", "{s}");
        assert_eq!(
            (&s["width"], &s["height"]),
            (&1280.into(), &720.into()),
            "{s}"
        );
        assert!(
            frames(s) >= least,
            "{} frames, under {least}: {s}",
            frames(s)
        );
    }
}
