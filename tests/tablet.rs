//! What care-home tablets do to a call, forced in Chromium: Safari's codec
//! order (H.264 first in the offer), a page opened without a tap (no sound
//! until one), a page hidden behind another, a camera taken away, and the
//! switch from the front camera to the rear one.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use crate::support::browser::{Browser, Driver};
use crate::support::calls::{snapshot, wait_all_decoding_hd};
use crate::support::recording::{assert_cameras_recorded_in_hd, record};
use crate::support::Server;

/// Makes this page's offers and answers list H.264 first in every video
/// section, as Safari's offers do by default (the client's own VP8
/// preference is overridden), and keeps every description it sends
/// (`window.sent`) and gets (`window.got`). True if this Chromium has H.264.
const SAFARI_CODEC_ORDER: &str = "
  const h264First = (sdp) => sdp.split('\\r\\nm=').map((part, i) => {
    if (i === 0 || !part.startsWith('video')) return part;
    const lines = part.split('\\r\\n');
    const h264 = [...part.matchAll(/a=rtpmap:(\\d+) H264\\//g)].map((m) => m[1]);
    const rtx = [...part.matchAll(/a=fmtp:(\\d+) apt=(\\d+)/g)]
      .filter((m) => h264.includes(m[2])).map((m) => m[1]);
    const first = [...h264, ...rtx];
    const words = lines[0].split(' ');
    const pts = words.slice(3);
    lines[0] = [...words.slice(0, 3), ...first.filter((p) => pts.includes(p)),
      ...pts.filter((p) => !first.includes(p))].join(' ');
    return lines.join('\\r\\n');
  }).join('\\r\\nm=');
  window.sent = []; window.got = [];
  const proto = RTCPeerConnection.prototype;
  for (const name of ['createOffer', 'createAnswer']) {
    const make = proto[name];
    proto[name] = async function (...args) {
      const d = await make.apply(this, args);
      const munged = { type: d.type, sdp: h264First(d.sdp) };
      window.sent.push(munged);
      return munged;
    };
  }
  const set = proto.setRemoteDescription;
  proto.setRemoteDescription = function (d) { window.got.push(d); return set.call(this, d); };
  return RTCRtpSender.getCapabilities('video').codecs.some((c) => c.mimeType === 'video/H264');";

/// The codec named first in the first video section of each description in
/// the page's list `list`.
async fn first_video_codecs(b: &Browser, list: &str) -> Vec<String> {
    let v = b
        .eval(&format!(
            "return window.{list}.map((d) => {{
               const video = d.sdp.split('\\r\\nm=').find((p) => p.startsWith('video'));
               if (!video) return d.type + ': no video';
               const pt = video.split('\\r\\n')[0].split(' ')[3];
               const map = video.match(new RegExp('a=rtpmap:' + pt + ' ([^/]+)/'));
               return d.type + ': ' + (map ? map[1] : '?');
             }});"
        ))
        .await;
    serde_json::from_value(v).unwrap_or_default()
}

/// The codecs of this browser's outbound video streams, from `getStats()`.
async fn sent_video_codecs(b: &Browser) -> Vec<String> {
    let v = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.carecall.call.pc.getStats().then((r) => {
               const out = [];
               r.forEach((s) => {
                 if (s.type === 'outbound-rtp' && s.kind === 'video' && s.codecId)
                   out.push(r.get(s.codecId).mimeType);
               });
               done(out);
             });",
            vec![],
        )
        .await
        .expect("stats script");
    serde_json::from_value(v).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safari_like_home_offering_h264_first_sends_vp8_is_seen_in_hd_and_recorded() {
    let server = Server::start();
    let driver = Driver::start().await;
    let home = driver.browser().await;
    let join = home
        .open_join_page(&server.link("safari-1", "home", "Rose Court", "1h"))
        .await;
    let has_h264 = home.eval(SAFARI_CODEC_ORDER).await;
    assert_eq!(
        has_h264,
        Value::Bool(true),
        "this Chromium cannot encode H.264, so it cannot stand in for Safari"
    );
    join.click().await.expect("click Join");
    let clinician = driver.browser().await;
    clinician
        .join(&server.link("safari-1", "clinician", "Hub clinician", "1h"))
        .await;
    let both: [&Browser; 2] = [&home, &clinician];
    wait_all_decoding_hd(&both, 1, Duration::from_secs(45)).await;

    let sent = first_video_codecs(&home, "sent").await;
    let got = first_video_codecs(&home, "got").await;
    let sending = sent_video_codecs(&home).await;
    println!(
        "first video codec in what the home sent: {sent:?}; got: {got:?}; it sends {sending:?}"
    );
    assert_eq!(
        sent.first().map(String::as_str),
        Some("offer: H264"),
        "the emulation put H.264 first"
    );
    assert!(
        sent.iter().all(|d| d.ends_with("H264")),
        "every description the home sent puts H.264 first: {sent:?}"
    );
    assert_eq!(
        got.first().map(String::as_str),
        Some("answer: VP8"),
        "the SFU's answer prefers VP8"
    );
    assert!(
        !sending.is_empty() && sending.iter().all(|c| c == "video/VP8"),
        "the home sends VP8: {sending:?}"
    );

    // The recording holds both cameras, the Safari-like home's included.
    let probed = record(&server, &clinician, Duration::from_secs(4)).await;
    assert_cameras_recorded_in_hd(&probed, 2, Duration::from_secs(4));
    home.close().await;
    clinician.close().await;
}

/// Makes this page refuse to play sound until it has been tapped, as
/// browsers do on a page that is not capturing (Chromium lets a capturing
/// page play sound at once, so the refusal is forced here): `play()` on an
/// unmuted element rejects with `NotAllowedError` before the first tap. A
/// script's click is not a tap; a WebDriver click is.
const SOUND_NEEDS_A_TAP: &str = "
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!this.muted && !navigator.userActivation.hasBeenActive)
      return Promise.reject(new DOMException('play() needs a tap first', 'NotAllowedError'));
    return play.call(this);
  };
  return null;";

/// Shows the page two of Chromium's three fake cameras, as a tablet's front
/// and rear ones: the first (a colour pattern) and the third (the same
/// pattern through MJPEG). The second is a depth camera (16-bit grey) that
/// a video element plays but WebRTC cannot encode.
const FRONT_AND_REAR: &str = "
  const list = navigator.mediaDevices.enumerateDevices.bind(navigator.mediaDevices);
  navigator.mediaDevices.enumerateDevices = async () =>
    (await list()).filter((d) => d.label !== 'fake_device_1');
  return null;";

/// How green the picture `b` shows of its one remote participant is, in
/// four looks 300 ms apart: mean green over the picture shrunk to 32x18.
async fn greens(b: &Browser) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..4 {
        out.push(picture(b).await[1]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    out
}

/// The picture `b` shows of its one remote participant, shrunk to 32x18:
/// mean red, green and blue, and the mean spread between them (0 for grey).
async fn picture(b: &Browser) -> [f64; 4] {
    let v = b
        .eval(
            "const v = document.querySelector('#tiles video');
             const c = document.createElement('canvas'); c.width = 32; c.height = 18;
             const g = c.getContext('2d'); g.drawImage(v, 0, 0, 32, 18);
             const d = g.getImageData(0, 0, 32, 18).data;
             let r = 0, gr = 0, bl = 0, spread = 0; const n = d.length / 4;
             for (let i = 0; i < d.length; i += 4) {
               r += d[i]; gr += d[i + 1]; bl += d[i + 2];
               spread += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
             }
             return [r / n, gr / n, bl / n, spread / n];",
        )
        .await;
    serde_json::from_value(v).expect("four numbers")
}

/// Frames `b` has decoded of its one remote participant's video, and the id
/// of the track they arrive on.
async fn remote_video(b: &Browser) -> (u64, String) {
    let (video, _) = snapshot(b).await;
    let frames = video.values().map(|v| v.frames_decoded).sum();
    let track = b
        .eval("const v = document.querySelector('#tiles video'); const t = v && v.srcObject && v.srcObject.getVideoTracks()[0]; return t ? t.id : '';")
        .await;
    (frames, track.as_str().unwrap_or("").to_owned())
}

/// How many times `b` has received signalling message `kind`.
async fn received(b: &Browser, kind: &str) -> usize {
    let m = b.metrics().await;
    m["signals"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| {
                    s.as_str()
                        .is_some_and(|s| s.starts_with(&format!("{kind}@")))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits up to `within` for `b`'s Nth remote video frame after `after`.
async fn wait_frames(b: &Browser, after: u64, more: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (now, _) = remote_video(b).await;
        if now >= after + more {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{more} new frames not decoded within {within:?} ({after} -> {now})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablets_day_no_tap_a_hidden_page_a_lost_camera_and_the_rear_camera() {
    let server = Server::start();
    let driver = Driver::start().await.with_front_and_rear_cameras();
    let clinician = driver.browser().await;
    clinician
        .join(&server.link("tablet-1", "clinician", "Hub clinician", "1h"))
        .await;
    // The home joins with no tap on the page (as when the hub sends it
    // straight in), in a browser that will not play sound before a tap.
    let home = driver.browser().await;
    home.open_join_page(&server.link("tablet-1", "home", "Rose Court", "1h"))
        .await;
    home.eval(SOUND_NEEDS_A_TAP).await;
    home.eval(FRONT_AND_REAR).await;
    home.eval("document.getElementById('join-button').click(); return null;")
        .await;
    let both: [&Browser; 2] = [&home, &clinician];
    wait_all_decoding_hd(&both, 1, Duration::from_secs(45)).await;
    let home_id = home.participant().await.expect("the home joined");

    // No sound without a tap: the picture plays muted and the page says so.
    let tap = home
        .client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#tap-to-hear:not([hidden])"))
        .await
        .expect("the page offers a tap to hear the call");
    let state = "const v = document.querySelector('#tiles video'); return [v.muted, v.paused];";
    assert_eq!(home.eval(state).await, serde_json::json!([true, false]));
    let clinician_tap = clinician
        .eval("return document.getElementById('tap-to-hear').hidden;")
        .await;
    assert_eq!(
        clinician_tap,
        Value::Bool(true),
        "Join was a tap: sound plays"
    );
    let (_, audio0) = snapshot(&home).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, audio1) = snapshot(&home).await;
    let muted_samples: u64 = audio1.values().map(|a| a.samples).sum::<u64>()
        - audio0.values().map(|a| a.samples).sum::<u64>();
    println!("before the tap: {muted_samples} audio samples in 2 s");
    tap.click().await.expect("tap to hear");
    assert_eq!(home.eval(state).await, serde_json::json!([false, false]));
    let (_, audio0) = snapshot(&home).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, audio1) = snapshot(&home).await;
    let played: u64 = audio1.values().map(|a| a.samples).sum::<u64>()
        - audio0.values().map(|a| a.samples).sum::<u64>();
    println!("after the tap: {played} audio samples played in 2 s");
    assert!(
        played >= 48_000,
        "sound plays after the tap: {played} samples in 2 s"
    );

    // Another tab in front: the page is hidden, and stays in the call.
    let call_tab = home.client.window().await.expect("window");
    let other = home.client.new_window(true).await.expect("new tab");
    home.client
        .switch_to_window(other.handle)
        .await
        .expect("switch tab");
    home.client.goto("about:blank").await.expect("blank tab");
    tokio::time::sleep(Duration::from_secs(3)).await;
    home.client.close_window().await.expect("close tab");
    home.client
        .switch_to_window(call_tab)
        .await
        .expect("back to the call");
    // What Safari does when a tablet locks (`persisted`: it may come back).
    home.eval("window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true })); return null;")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let visibility = home.metrics().await["visibility"].clone();
    println!("the home page's visibility: {visibility}");
    assert!(
        visibility.to_string().contains("hidden@"),
        "the page was hidden: {visibility}"
    );
    let peers = clinician
        .eval("return [...window.carecall.call.peers.keys()];")
        .await;
    assert_eq!(
        peers,
        serde_json::json!([home_id]),
        "the home is still in the call"
    );
    let (frames_now, _) = remote_video(&clinician).await;
    wait_frames(&clinician, frames_now, 5, Duration::from_secs(5)).await;

    // The camera is taken away (another app; the system stops it): the
    // others see the home again within 3 s, with no rejoin.
    let (_, track_before) = remote_video(&clinician).await;
    home.eval(
        "const t = window.carecall.call.localStream.getVideoTracks()[0];
         t.stop(); t.dispatchEvent(new Event('ended')); return null;",
    )
    .await;
    let lost = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after_loss, _) = remote_video(&clinician).await;
    wait_frames(&clinician, after_loss, 3, Duration::from_millis(2500)).await;
    println!(
        "the clinician sees the home again {} ms after its camera was lost",
        lost.elapsed().as_millis()
    );
    let m = home.metrics().await;
    assert_eq!(m["cameraRestarts"], 1, "{m}");
    assert_eq!(home.participant().await.as_deref(), Some(home_id.as_str()));

    // The clinician asks for the rear camera; the home switches from the
    // prompt. The clinician's picture changes, on the same track, with no
    // new offer.
    let offers_before = received(&clinician, "offer").await;
    let answers_before = received(&home, "answer").await;
    let label = "return window.carecall.call.localStream.getVideoTracks()[0].label;";
    let front = home.eval(label).await;
    let seen_front = greens(&clinician).await;
    home.client
        .find(Locator::Css("#switch-camera-button:not([hidden])"))
        .await
        .expect("two cameras: a Switch camera button");
    clinician
        .client
        .find(Locator::Css(".tile .ask"))
        .await
        .expect("the clinician's tile of the home has an Ask for rear camera button")
        .click()
        .await
        .expect("ask for the rear camera");
    let prompt = home
        .client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#ask-prompt:not([hidden])"))
        .await
        .expect("the home is asked for the rear camera");
    let asked = prompt.text().await.expect("prompt text");
    println!("the home is asked: {asked}");
    assert!(
        asked.contains("Hub clinician asks you to show the rear camera"),
        "{asked}"
    );
    home.client
        .find(Locator::Css("#ask-switch"))
        .await
        .expect("the prompt's Switch camera button")
        .click()
        .await
        .expect("switch camera");
    let start = Instant::now();
    while home.eval(label).await == front {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the camera did not switch"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (frames_then, _) = remote_video(&clinician).await;
    wait_frames(&clinician, frames_then, 5, Duration::from_secs(5)).await;
    let seen_rear = greens(&clinician).await;
    let rear = home.eval(label).await;
    println!("front {front} seen as {seen_front:?}; rear {rear} seen as {seen_rear:?}");
    let (_, track_after) = remote_video(&clinician).await;
    assert_eq!(track_before, track_after, "the same receiving track");
    assert_eq!(
        received(&clinician, "offer").await,
        offers_before,
        "no new offer to the viewer"
    );
    assert_eq!(
        received(&home, "answer").await,
        answers_before,
        "no renegotiation by the home"
    );
    let differs = seen_front
        .iter()
        .all(|a| seen_rear.iter().all(|b| (a - b).abs() >= 8.0));
    assert!(
        differs,
        "the clinician's picture changed: {seen_front:?} -> {seen_rear:?}"
    );
    home.close().await;
    clinician.close().await;
}
