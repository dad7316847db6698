//! Real headless Chromium, driven over WebDriver (chromedriver), with a fake
//! 1280x720 camera and a fake microphone. Only loopback is used.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A chromedriver process, killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Four browsers, each encoding 720p and decoding the others, share two cores
/// in these tests: at 10 fps they keep both cores above 85% busy and a newly
/// started decoder waits its turn for hundreds of milliseconds; at 5 fps the
/// frames are still 1280x720, which is what the tests assert.
pub const FAKE_CAMERA_FPS: u32 = 5;

impl Driver {
    pub async fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (apt-get install chromium-driver); tests/run.sh installs it");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    /// A new headless Chromium with fake media devices: a 1280x720 camera at
    /// [`FAKE_CAMERA_FPS`].
    pub async fn browser(&self) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            format!("--use-fake-device-for-media-stream=fps={FAKE_CAMERA_FPS}"),
            "--use-fake-ui-for-media-stream".into(),
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
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("chromium session");
        Browser {
            client,
            _profile: profile,
        }
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
}

impl Drop for Browser {
    /// Chromium outlives its WebDriver session when a test fails half-way, and
    /// a leftover 720p encoder starves every later test on a 2-core machine:
    /// kill whatever still runs with this browser's profile directory.
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-9", "-f", "--"])
            .arg(format!(
                "--user-data-dir={}",
                self._profile.path().display()
            ))
            .status();
    }
}

impl Browser {
    /// Opens a join link and presses Join once the camera preview is ready.
    pub async fn join(&self, link: &str) {
        self.client.goto(link).await.expect("open join link");
        let button = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("#join-button:not([disabled])"))
            .await
            .expect("camera preview ready and Join enabled");
        button.click().await.expect("click Join");
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Inbound RTP per remote participant, from `getStats()`.
    pub async fn inbound(&self) -> Vec<Inbound> {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const call = window.carecall && window.carecall.call;
                 if (!call) { done([]); return; }
                 call.receiveStats().then(done, () => done([]));",
                vec![],
            )
            .await
            .expect("stats script");
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| Inbound {
                participant: s["participant"].as_str().unwrap_or("").into(),
                kind: s["kind"].as_str().unwrap_or("").into(),
                packets: s["packetsReceived"].as_u64().unwrap_or(0),
                frames_decoded: s["framesDecoded"].as_u64().unwrap_or(0),
                width: s["frameWidth"].as_u64().unwrap_or(0),
                height: s["frameHeight"].as_u64().unwrap_or(0),
                freezes: s["freezeCount"].as_u64().unwrap_or(0),
            })
            .collect()
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
