//! `carecall-load`: synthetic participants on webrtc-rs (a WebRTC stack
//! independent of the SFU's) join a running carecall over its real signalling
//! and DTLS-SRTP, publish Opus and VP8-shaped RTP at a camera's rate, and
//! measure what the SFU forwards: packets per second, the server's CPU per
//! million packets (from `/proc`), its memory per participant, loss and
//! latency. Every run is bounded in participants and seconds.
//!
//! The payloads carry a counter and their send time after a real codec
//! header (Opus TOC byte, VP8 payload descriptor with the keyframe bit), so
//! the SFU's keyframe and layer logic sees what it sees from a browser; the
//! media itself is not decodable (a pre-encoded clip is the next step).

pub mod peer;
pub mod proc;
mod report;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use carecall_signalling::{JoinClaims, LinkSigner, Role};

pub use peer::LoadPeer;
pub use report::Report;

/// Largest run: participants in one scenario.
pub const MAX_PARTICIPANTS: usize = 600;

/// Longest run, seconds.
pub const MAX_SECONDS: f64 = 300.0;

/// The server under load.
pub struct Target {
    /// Its base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Its link secret, to sign the participants' join links.
    pub secret: Vec<u8>,
    /// Its process id, for CPU and memory.
    pub pid: u32,
}

impl Target {
    fn ws_url(&self) -> String {
        format!("{}/ws", self.base_url.replacen("http", "ws", 1))
    }

    fn token(&self, room: &str, role: Role, name: &str) -> Result<String> {
        let claims = JoinClaims {
            room: room.to_owned(),
            role,
            name: name.to_owned(),
            exp: carecall_signalling::token::unix_now() + 3600,
        };
        LinkSigner::new(&self.secret)
            .sign(&claims)
            .map_err(|e| anyhow::anyhow!("signing a join link: {e}"))
    }
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One publisher, `subscribers` watching it.
    FanOut {
        /// How many watch.
        subscribers: usize,
    },
    /// `rooms` calls of three (home, clinician, specialist), all publishing.
    Rooms {
        /// How many calls at once.
        rooms: usize,
    },
}

impl Scenario {
    fn name(&self) -> String {
        match self {
            Scenario::FanOut { subscribers } => format!("fan-out 1 -> {subscribers}"),
            Scenario::Rooms { rooms } => format!("{rooms} rooms of 3"),
        }
    }

    /// (room, role, publishes) for each participant.
    fn participants(&self, run: &str) -> Vec<(String, Role, bool)> {
        match *self {
            Scenario::FanOut { subscribers } => {
                let room = format!("load-{run}-fanout");
                std::iter::once((room.clone(), Role::Home, true))
                    .chain((0..subscribers).map(|_| (room.clone(), Role::Clinician, false)))
                    .collect()
            }
            Scenario::Rooms { rooms } => (0..rooms)
                .flat_map(|r| {
                    let room = format!("load-{run}-room-{r}");
                    [Role::Home, Role::Clinician, Role::Specialist]
                        .map(|role| (room.clone(), role, true))
                })
                .collect(),
        }
    }
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Seconds of media before measuring (keyframes, estimates settle).
    pub warmup: f64,
    /// Packets per video frame (25 frames/s): 6 of 1000 bytes is about a
    /// 720p camera's 1.2 Mbit/s.
    pub video_packets: u32,
    /// Bytes per video packet.
    pub packet_size: usize,
    /// Print a line a second while measuring.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 10.0,
            warmup: 3.0,
            video_packets: 6,
            packet_size: 1000,
            progress: true,
        }
    }
}

/// One participant in the run.
struct Member {
    peer: LoadPeer,
    room: String,
    publishes: bool,
    /// Audio ticks sent (video sends every other tick).
    ticks: Arc<AtomicU32>,
}

/// Packets received and their latencies, over all streams of all members.
#[derive(Default)]
struct Tally {
    /// Per member and stream: how many had arrived (to diff two tallies).
    lengths: Vec<Vec<((String, String), usize)>>,
}

fn tally(members: &[Member]) -> Tally {
    let lengths = members
        .iter()
        .map(|m| {
            let r = m.peer.received.lock().unwrap_or_else(|e| e.into_inner());
            r.iter()
                .map(|(k, a)| (k.clone(), a.counters.len()))
                .collect()
        })
        .collect();
    Tally { lengths }
}

/// Runs `scenario` against `target` and reports what the SFU forwarded.
pub async fn run(target: &Target, scenario: Scenario, opts: &Options) -> Result<Report> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_id = format!("{}-{started}", std::process::id());
    let wanted = scenario.participants(&run_id);
    if wanted.len() > MAX_PARTICIPANTS || !(0.5..=MAX_SECONDS).contains(&opts.seconds) {
        bail!("a run is at most {MAX_PARTICIPANTS} participants and {MAX_SECONDS} s");
    }
    let rss_before = proc::rss_bytes(target.pid)?;
    let ws = target.ws_url();
    let mut members = Vec::with_capacity(wanted.len());
    let joining = Instant::now();
    for (i, (room, role, publishes)) in wanted.iter().enumerate() {
        let token = target.token(room, *role, &format!("load {i}"))?;
        let peer = tokio::time::timeout(
            Duration::from_secs(20),
            LoadPeer::join(&ws, &token, i as u32),
        )
        .await
        .with_context(|| format!("participant {i} did not join within 20 s"))?;
        members.push(Member {
            peer,
            room: room.clone(),
            publishes: *publishes,
            ticks: Arc::default(),
        });
    }
    for (i, m) in members.iter_mut().enumerate() {
        if let Err(why) = m.peer.connected_within(Duration::from_secs(20)).await {
            bail!("participant {i}: media did not connect: {why}");
        }
    }
    let joined_in = joining.elapsed();

    // Publishers send every 20 ms until told to stop (or the bound passes).
    let stop = Arc::new(AtomicBool::new(false));
    let bound = Duration::from_secs_f64(opts.warmup + opts.seconds + 30.0);
    let mut senders = Vec::new();
    for m in members.iter().filter(|m| m.publishes) {
        let pts = m.peer.payload_types().await;
        let (peer, ticks, stop) = (m.peer.sender(), m.ticks.clone(), stop.clone());
        let (packets, size) = (opts.video_packets, opts.packet_size);
        senders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut every = tokio::time::interval(Duration::from_millis(20));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < bound {
                every.tick().await;
                peer.send_media(n, pts, packets, size).await;
                n += 1;
                ticks.store(n, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;

    // The measured window.
    let before = tally(&members);
    let sent_before: Vec<u32> = members
        .iter()
        .map(|m| m.ticks.load(Ordering::Relaxed))
        .collect();
    let cpu_before = proc::cpu_seconds(target.pid)?;
    let window = Instant::now();
    let mut last = (tally(&members), window);
    while window.elapsed().as_secs_f64() < opts.seconds {
        let left = opts.seconds - window.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(left.clamp(0.0, 1.0))).await;
        if opts.progress {
            let now = tally(&members);
            let got = received_between(&last.0, &now);
            let cpu = proc::cpu_seconds(target.pid)? - cpu_before;
            eprintln!(
                "  {:>5.1}/{} s  {:>9.0} packets/s forwarded  server CPU {:>5.1}% since start",
                window.elapsed().as_secs_f64(),
                opts.seconds,
                got as f64 / last.1.elapsed().as_secs_f64(),
                100.0 * cpu / window.elapsed().as_secs_f64()
            );
            last = (now, Instant::now());
        }
    }
    let elapsed = window.elapsed().as_secs_f64();
    let cpu = proc::cpu_seconds(target.pid)? - cpu_before;
    let after = tally(&members);
    let sent: Vec<u32> = members
        .iter()
        .zip(&sent_before)
        .map(|(m, b)| m.ticks.load(Ordering::Relaxed) - b)
        .collect();
    let rss_during = proc::rss_bytes(target.pid)?;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }

    let report = report::measure(report::Measured {
        scenario: scenario.name(),
        members: &members
            .iter()
            .map(|m| (&m.peer, m.room.as_str(), m.publishes))
            .collect::<Vec<_>>(),
        before: &before.lengths,
        after: &after.lengths,
        sent_ticks: &sent,
        video_packets: opts.video_packets,
        seconds: elapsed,
        cpu_seconds: cpu,
        rss_before,
        rss_during,
        joined_in,
    });
    for m in members {
        m.peer.close().await;
    }
    Ok(report)
}

/// Packets that arrived between two tallies, over everything.
fn received_between(a: &Tally, b: &Tally) -> usize {
    let total = |t: &Tally| -> usize { t.lengths.iter().flatten().map(|(_, n)| n).sum() };
    total(b).saturating_sub(total(a))
}
