//! Real headless browsers driven over WebDriver, with a fake 1280x720 camera
//! and a fake microphone: Chromium (chromedriver), on loopback or inside a
//! network namespace the test made ([`Driver::start_in`]), and Firefox ESR
//! (geckodriver, [`Driver::firefox`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::netlab::NetNs;

const NO_CHROMEDRIVER: &str =
    "chromedriver must be installed (apt-get install chromium-driver); tests/run.sh installs it";
const NO_GECKODRIVER: &str = "geckodriver must be installed (cargo install geckodriver --locked) \
     with firefox-esr (apt-get install firefox-esr); tests/run.sh installs both";

/// Which browser a driver starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

/// A WebDriver process (chromedriver or geckodriver), killed on drop.
pub struct Driver {
    child: Child,
    engine: Engine,
    pub url: String,
    /// A plain-HTTP origin Chromium must treat as secure (camera access is
    /// only for secure origins, and only loopback counts by default).
    trusted_origin: Option<String>,
    /// Camera pictures from a file instead of Chromium's built-in pattern.
    camera: Option<std::path::PathBuf>,
    /// A TLS key (base64 SHA-256 of its SPKI) to accept though self-signed:
    /// the only way Chromium's TURN-over-TLS accepts a test certificate.
    trusted_spki: Option<String>,
    /// How many fake cameras Chromium offers.
    cameras: u8,
    /// A namespace driver's verbose log (Chromium's own output included),
    /// shown when a page fails to load there.
    log: Option<Arc<tempfile::TempDir>>,
}

/// Four browsers, each encoding 720p and decoding the others, share two cores
/// in these tests: at 10 fps they keep both cores above 85% busy and a newly
/// started decoder waits its turn for hundreds of milliseconds; at 5 fps the
/// frames are still 1280x720, which is what the tests assert.
pub const FAKE_CAMERA_FPS: u32 = 5;

/// How long a page may take to load before its test fails.
const PAGE_LOAD: Duration = Duration::from_secs(60);

/// Opus packets a second from a browser's microphone: one per 20 ms frame,
/// and the fake microphone never falls silent.
pub const OPUS_PACKETS_PER_SECOND: f64 = 50.0;

/// A 1280x720 clip at [`FAKE_CAMERA_FPS`], made once per test process: a
/// still, textured background with a square of fresh noise moving across it.
/// Chromium's built-in fake camera draws a pattern that VP8 squeezes to a few
/// hundred kbit/s even at 720p; a care-home camera does not. The moving noise
/// makes every simulcast layer use its `maxBitrate`, as a real camera would,
/// while the still background keeps delta frames smaller than keyframes and the
/// encoder's work bounded.
fn camera_clip() -> std::path::PathBuf {
    static CLIP: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = CLIP.get_or_init(|| {
        use std::io::Write;
        const W: usize = 1280;
        const H: usize = 720;
        const SQUARE: usize = 240;
        let dir = tempfile::tempdir().expect("clip dir");
        let path = dir.path().join("camera.y4m");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("clip file"));
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut noise = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        };
        // A gradient with fine texture, the same in every frame.
        let background: Vec<u8> = (0..W * H)
            .map(|i| ((i % W) * 160 / W + (i / W) * 60 / H) as u8 + noise() / 16)
            .collect();
        writeln!(
            out,
            "YUV4MPEG2 W{W} H{H} F{FAKE_CAMERA_FPS}:1 Ip A1:1 C420jpeg"
        )
        .unwrap();
        let frames = 4 * FAKE_CAMERA_FPS as usize;
        for f in 0..frames {
            let mut luma = background.clone();
            let left = f * (W - SQUARE) / frames;
            let top = (H - SQUARE) / 2;
            for row in top..top + SQUARE {
                for px in &mut luma[row * W + left..row * W + left + SQUARE] {
                    *px = noise();
                }
            }
            out.write_all(b"FRAME\n").unwrap();
            out.write_all(&luma).unwrap();
            out.write_all(&vec![128u8; W * H / 2]).unwrap();
        }
        out.flush().unwrap();
        (dir, path)
    });
    path.clone()
}

impl Driver {
    pub async fn start() -> Driver {
        let port = super::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(NO_CHROMEDRIVER);
        Driver::ready(
            Engine::Chromium,
            child,
            "127.0.0.1".parse().unwrap(),
            port,
            None,
        )
        .await
    }

    /// A geckodriver on loopback. It runs one session at a time: one Firefox
    /// per driver.
    pub async fn firefox() -> Driver {
        let port = super::free_port();
        let child = Command::new("geckodriver")
            .args(["--host", "127.0.0.1", "--log", "error", "--port"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(NO_GECKODRIVER);
        let loopback = "127.0.0.1".parse().unwrap();
        Driver::ready(Engine::Firefox, child, loopback, port, None).await
    }

    /// A chromedriver (and so its browsers) inside network namespace `ns`,
    /// driven through the namespace's own loopback (see
    /// [`NetNs::loopback_bridge`]), so the test keeps control when the
    /// namespace's links are cut or moved; `origin` is the server's
    /// plain-HTTP origin, to be trusted with the camera.
    ///
    /// The driver keeps a verbose log, whose end a failed page load prints:
    /// what the browser was waiting for when a namespace's network failed.
    pub async fn start_in(ns: &NetNs, origin: &str) -> Driver {
        let port = 9515;
        let log = Arc::new(tempfile::tempdir().expect("driver log dir"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "chromedriver"])
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log.path().join("chromedriver.log").display()
            ))
            .args(["--verbose", "--enable-chrome-logs"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(NO_CHROMEDRIVER);
        let bridge = ns.loopback_bridge(port);
        let mut driver = Driver::ready(
            Engine::Chromium,
            child,
            bridge.ip(),
            bridge.port(),
            Some(origin.into()),
        )
        .await;
        driver.log = Some(log);
        driver
    }

    /// A chromedriver on loopback whose browsers trust `origin` (a server on
    /// an address other than 127.0.0.1) with the camera.
    pub async fn start_trusting(origin: &str) -> Driver {
        let mut d = Driver::start().await;
        d.trusted_origin = Some(origin.into());
        d
    }

    /// Makes this driver's browsers accept a TLS certificate with this key.
    pub fn with_trusted_spki(mut self, spki: &str) -> Driver {
        self.trusted_spki = Some(spki.to_owned());
        self
    }

    /// Makes this driver's browsers film [`camera_clip`].
    pub fn with_camera_clip(mut self) -> Driver {
        self.camera = Some(camera_clip());
        self
    }

    /// Makes this driver's Chromiums offer three fake cameras: two colour
    /// ones, the first and third, for a tablet's front and rear, and between
    /// them a 16-bit depth camera that WebRTC cannot encode, which a test
    /// hides from the page (see `tests/tablet.rs`).
    pub fn with_front_and_rear_cameras(mut self) -> Driver {
        self.cameras = 3;
        self
    }

    async fn ready(
        engine: Engine,
        child: Child,
        ip: IpAddr,
        port: u16,
        origin: Option<String>,
    ) -> Driver {
        let url = format!("http://{ip}:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "the WebDriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            engine,
            url,
            trusted_origin: origin,
            trusted_spki: None,
            camera: None,
            cameras: 1,
            log: None,
        }
    }

    /// A new headless browser with fake media devices: a 1280x720 camera at
    /// [`FAKE_CAMERA_FPS`].
    pub async fn browser(&self) -> Browser {
        match self.engine {
            Engine::Chromium => self.browser_with_prefs(json!({})).await,
            Engine::Firefox => self.firefox_browser().await,
        }
    }

    /// Firefox ESR, headless, with its fake camera and microphone granted
    /// without a prompt, loopback ICE candidates allowed (Firefox leaves them
    /// out by default) and no mDNS names for host candidates.
    async fn firefox_browser(&self) -> Browser {
        assert!(
            self.camera.is_none()
                && self.cameras == 1
                && self.trusted_origin.is_none()
                && self.trusted_spki.is_none(),
            "an option only Chromium's driver has was set on a Firefox driver"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let prefs = json!({
            "media.navigator.streams.fake": true,
            "media.navigator.permission.disabled": true,
            "media.navigator.video.default_width": 1280,
            "media.navigator.video.default_height": 720,
            "media.navigator.video.default_fps": FAKE_CAMERA_FPS,
            "media.autoplay.default": 0,
            "media.autoplay.blocking_policy": 0,
            "media.peerconnection.ice.loopback": true,
            "media.peerconnection.ice.obfuscate_host_addresses": false,
            "browser.shell.checkDefaultBrowser": false,
            "app.update.enabled": false,
            "datareporting.policy.dataSubmissionEnabled": false,
        });
        let args = json!(["-headless", "-profile", profile.path()]);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("firefox"));
        caps.insert(
            "moz:firefoxOptions".into(),
            json!({ "binary": "/usr/bin/firefox-esr", "args": args, "prefs": prefs }),
        );
        let browser = self.session(caps, profile).await;
        // The size the Chromium tests use: tiles tall enough for 720p.
        browser
            .client
            .set_window_size(1920, 1080)
            .await
            .expect("firefox window size");
        browser
    }

    /// A WebDriver session with `caps`, its browser using `profile`.
    async fn session(
        &self,
        mut caps: serde_json::Map<String, Value>,
        profile: tempfile::TempDir,
    ) -> Browser {
        // Every page here loads in seconds, even over the 150 kbit/s links;
        // a load that never finishes fails in a minute, not the drivers'
        // default five.
        caps.insert(
            "timeouts".into(),
            json!({ "pageLoad": PAGE_LOAD.as_millis() as u64 }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{:?} session: {e}", self.engine));
        Browser::new(client, profile, self.log.clone())
    }

    /// A browser whose camera is blocked by policy (as on a locked-down
    /// tablet): the microphone still works.
    pub async fn browser_without_camera(&self) -> Browser {
        let blocked = json!({ "profile": { "default_content_setting_values": { "media_stream_camera": 2, "media_stream_mic": 1 } } });
        self.browser_with_prefs(blocked).await
    }

    async fn browser_with_prefs(&self, prefs: Value) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            format!(
                "--use-fake-device-for-media-stream=fps={FAKE_CAMERA_FPS},device-count={}",
                self.cameras
            ),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--disable-features=WebRtcHideLocalIpsWithMdns".into(),
            "--allow-loopback-in-peer-connection".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--window-size=1920,1080".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // Every device request is granted, unless the profile blocks it.
        if prefs.get("profile").is_none() {
            args.push("--use-fake-ui-for-media-stream".into());
        }
        if let Some(clip) = &self.camera {
            args.push(format!(
                "--use-file-for-fake-video-capture={}",
                clip.display()
            ));
        }
        if let Some(spki) = &self.trusted_spki {
            args.push(format!("--ignore-certificate-errors-spki-list={spki}"));
        }
        if let Some(origin) = &self.trusted_origin {
            args.push(format!(
                "--unsafely-treat-insecure-origin-as-secure={origin}"
            ));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args, "prefs": prefs }),
        );
        self.session(caps, profile).await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
    /// Its driver's log, if it keeps one.
    log: Option<Arc<tempfile::TempDir>>,
}

/// The last lines of a driver's log, or a note that there is none.
fn log_tail(log: Option<&tempfile::TempDir>) -> String {
    const LINES: usize = 60;
    let Some(dir) = log else {
        return "(this driver keeps no log)".into();
    };
    let text = std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
    format!("--- the last {LINES} lines of chromedriver's log ---\n{tail}\n---")
}

/// Kills whatever runs with this browser profile directory (Chromium's
/// `--user-data-dir=`, Firefox's `-profile`).
fn kill_profile(profile: &std::path::Path) {
    let _ = Command::new("pkill")
        .args(["-9", "-f", "--"])
        .arg(profile)
        .status();
}

/// What one browser decodes from one remote participant.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub participant: String,
    pub kind: String,
    pub packets: u64,
    pub frames_decoded: u64,
    pub width: u64,
    pub height: u64,
    pub freezes: u64,
    /// Seconds the video stood still, summed over its freezes (Chromium's
    /// `totalFreezesDuration`).
    pub frozen_seconds: f64,
    /// Video only: how the frames fared on the way (for failure reports).
    pub lost: i64,
    pub nacks: u64,
    pub plis: u64,
    pub frames_received: u64,
    pub frames_dropped: u64,
    pub keyframes_decoded: u64,
    pub bytes: u64,
    pub retransmitted: u64,
    /// Audio only: samples played, and those the decoder had to invent.
    pub samples: u64,
    pub concealed: u64,
}

impl Drop for Browser {
    /// A browser outlives its WebDriver session when a test fails half-way,
    /// and a leftover 720p encoder starves every later test on a 2-core
    /// machine: kill whatever still runs with this browser's profile
    /// directory (Chromium's `--user-data-dir=`, Firefox's `-profile`).
    fn drop(&mut self) {
        kill_profile(self._profile.path());
    }
}

impl Browser {
    fn new(
        client: Client,
        profile: tempfile::TempDir,
        log: Option<Arc<tempfile::TempDir>>,
    ) -> Browser {
        Browser {
            client,
            _profile: profile,
            log,
        }
    }

    /// Loads `url`; a failed load fails the test with `what`, and with the
    /// end of the driver's log where it keeps one.
    pub async fn open(&self, url: &str, what: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("{what}: {e}\n{}", log_tail(self.log.as_deref()));
        }
    }

    /// Opens a join link and presses Join once the camera preview is ready.
    pub async fn join(&self, link: &str) {
        self.open_join_page(link)
            .await
            .click()
            .await
            .expect("click Join");
    }

    /// Opens a join link; its Join button, once the camera preview is ready.
    pub async fn open_join_page(&self, link: &str) -> fantoccini::elements::Element {
        self.open(link, "open join link").await;
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#join-button:not([disabled])"))
            .await
            .expect("camera preview ready and Join enabled")
    }

    /// Polls `script` (which returns a boolean) every 100 ms until it is
    /// true; fails the test with `what` if that takes longer than `within`.
    pub async fn until(&self, script: &str, within: Duration, what: &str) {
        let start = Instant::now();
        while self.eval(script).await != Value::Bool(true) {
            assert!(start.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Inbound RTP per remote participant, from `getStats()`.
    pub async fn inbound(&self) -> Vec<Inbound> {
        self.rows(
            "const done = arguments[arguments.length - 1];
             const call = window.carecall && window.carecall.call;
             if (!call) { done([]); return; }
             call.receiveStats().then(done, () => done([]));",
        )
        .await
        .iter()
        .map(|s| Inbound {
            participant: s["participant"].as_str().unwrap_or("").into(),
            kind: s["kind"].as_str().unwrap_or("").into(),
            packets: s["packetsReceived"].as_u64().unwrap_or(0),
            frames_decoded: s["framesDecoded"].as_u64().unwrap_or(0),
            width: s["frameWidth"].as_u64().unwrap_or(0),
            height: s["frameHeight"].as_u64().unwrap_or(0),
            freezes: s["freezeCount"].as_u64().unwrap_or(0),
            frozen_seconds: s["totalFreezesDuration"].as_f64().unwrap_or(0.0),
            lost: s["packetsLost"].as_i64().unwrap_or(0),
            nacks: s["nackCount"].as_u64().unwrap_or(0),
            plis: s["pliCount"].as_u64().unwrap_or(0),
            frames_received: s["framesReceived"].as_u64().unwrap_or(0),
            frames_dropped: s["framesDropped"].as_u64().unwrap_or(0),
            keyframes_decoded: s["keyFramesDecoded"].as_u64().unwrap_or(0),
            bytes: s["bytesReceived"].as_u64().unwrap_or(0),
            retransmitted: s["retransmittedPacketsReceived"].as_u64().unwrap_or(0),
            samples: s["totalSamplesReceived"].as_u64().unwrap_or(0),
            concealed: s["concealedSamples"].as_u64().unwrap_or(0),
        })
        .collect()
    }

    /// This browser's participant id in the call, once joined.
    pub async fn participant(&self) -> Option<String> {
        let v = self
            .eval("const c = window.carecall && window.carecall.call; return c ? c.participant : null;")
            .await;
        v.as_str().map(str::to_owned)
    }

    /// Starts watching audio arrival in the page: every 100 ms, the packets
    /// received per remote participant; the longest time each went without
    /// a new packet is kept, a gap still open included (see
    /// [`Browser::longest_audio_gaps`]).
    pub async fn watch_audio_gaps(&self) {
        self.eval(
            "const w = window.carecall; w.gaps = {}; w.lastAudio = {};
             const last = w.lastAudio;
             w.gapWatch = setInterval(async () => {
               const now = performance.now();
               for (const s of await w.call.receiveStats()) {
                 if (s.kind !== 'audio') continue;
                 const l = last[s.participant];
                 if (!l || s.packetsReceived > l.packets) {
                   last[s.participant] = { packets: s.packetsReceived, at: now };
                 }
                 const open = now - last[s.participant].at;
                 w.gaps[s.participant] = Math.max(w.gaps[s.participant] || 0, open);
               }
             }, 100);
             return null;",
        )
        .await;
    }

    /// The longest stretch, in ms, without a new audio packet from each remote
    /// participant since [`Browser::watch_audio_gaps`] started, counting a
    /// gap still open now: audio that stopped for good is the longest gap.
    pub async fn longest_audio_gaps(&self) -> HashMap<String, f64> {
        let v = self
            .eval(
                "const w = window.carecall; const now = performance.now();
                 for (const [p, l] of Object.entries(w.lastAudio || {}))
                   w.gaps[p] = Math.max(w.gaps[p] || 0, now - l.at);
                 return w.gaps || {};",
            )
            .await;
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The camera's simulcast layers as this browser sends them, from
    /// `getStats()`: rid, whether the encoding is active, frames encoded.
    pub async fn outbound_layers(&self) -> Vec<(String, bool, u64)> {
        self.rows(
            "const done = arguments[arguments.length - 1];
             const call = window.carecall && window.carecall.call;
             if (!call || !call.pc) { done([]); return; }
             call.pc.getStats().then((r) => {
               const out = [];
               r.forEach((s) => {
                 if (s.type === 'outbound-rtp' && s.kind === 'video')
                   out.push([s.rid || '', s.active !== false, s.framesEncoded || 0]);
               });
               done(out);
             }, () => done([]));",
        )
        .await
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap_or("").to_owned(),
                l[1].as_bool().unwrap_or(true),
                l[2].as_u64().unwrap_or(0),
            )
        })
        .collect()
    }

    /// Runs an asynchronous script that hands `done` an array; its rows.
    async fn rows(&self, script: &str) -> Vec<Value> {
        let v = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("stats script");
        v.as_array().cloned().unwrap_or_default()
    }

    /// The browser's selected ICE path: its local candidate's type (`host`,
    /// `srflx`, `prflx`, `relay`) and, for a relay, how it reaches the TURN
    /// server (`udp`, `tcp`, `tls`).
    pub async fn selected_path(&self) -> (String, String) {
        let local = self.selected_local().await;
        let text = |k: &str| local[k].as_str().unwrap_or("").to_owned();
        (text("candidateType"), text("relayProtocol"))
    }

    /// The browser's own candidate on its selected ICE pair, as `getStats`
    /// reports it (`address`, `candidateType`, `relayProtocol`, …); null
    /// when there is none.
    pub async fn selected_local(&self) -> Value {
        let rows = self
            .rows(
                "const done = arguments[arguments.length - 1];
                 const pc = window.carecall && window.carecall.call && window.carecall.call.pc;
                 if (!pc) { done([]); return; }
                 pc.getStats().then((stats) => {
                   const all = [...stats.values()];
                   const t = all.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
                   const pair = t && stats.get(t.selectedCandidatePairId);
                   const local = pair && stats.get(pair.localCandidateId);
                   done(local ? [local] : []);
                 }, () => done([]));",
            )
            .await;
        rows.first().cloned().unwrap_or_default()
    }

    /// How many tiles show the "video paused" note.
    pub async fn paused_notes(&self) -> u64 {
        self.eval("return document.querySelectorAll('.paused').length;")
            .await
            .as_u64()
            .unwrap_or(0)
    }

    /// Page metrics: ms since page load at which things happened.
    pub async fn metrics(&self) -> Value {
        self.eval("return window.carecall ? window.carecall.metrics : null;")
            .await
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}
