//! A soak run: for an hour (or as long as asked), rooms of three join, talk
//! for a few seconds and leave, round after round, while strangers hammer
//! the public surfaces at the same time: the check page (credentials,
//! results, downloads) and sign-in with wrong passwords, from many loopback
//! addresses. What it shows: whether memory, file descriptors, threads and
//! tasks come back to where they were, or creep up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use carecall_signalling::Role;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{proc, LoadPeer, Target};

/// The server's resources at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Minutes since the start.
    pub minute: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// Open file descriptors.
    pub fds: usize,
    /// Operating-system threads.
    pub threads: usize,
    /// Tasks alive on the server's async runtime (`/metrics`).
    pub tasks: Option<f64>,
    /// Joins so far, and hammering requests so far.
    pub joins: u64,
    /// Requests the hammer has made so far.
    pub hammered: u64,
}

/// A soak run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Joins in rooms of three.
    pub joins: u64,
    /// Joins that did not connect media within 20 s.
    pub failed: u64,
    /// Requests made at the public surfaces, and how many were refused by
    /// a limit (429 or a closed connection).
    pub hammered: u64,
    /// Of those, refused.
    pub refused: u64,
    /// Samples: at the start, every ten minutes, and at the end with
    /// everyone gone.
    pub samples: Vec<Sample>,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "soak: {} joins in rooms of 3 ({} failed); {} requests at the public surfaces ({} refused by a limit)",
            self.joins, self.failed, self.hammered, self.refused
        )?;
        writeln!(
            f,
            "  {:>6}  {:>8}  {:>5}  {:>7}  {:>6}  {:>6}  {:>9}",
            "minute", "RSS MiB", "fds", "threads", "tasks", "joins", "requests"
        )?;
        for s in &self.samples {
            writeln!(
                f,
                "  {:>6.1}  {:>8.1}  {:>5}  {:>7}  {:>6}  {:>6}  {:>9}",
                s.minute,
                s.rss_mib,
                s.fds,
                s.threads,
                s.tasks.map_or("-".into(), |t| format!("{t:.0}")),
                s.joins,
                s.hammered
            )?;
        }
        Ok(())
    }
}

/// Rooms of three per round.
const ROOMS: usize = 3;
/// Seconds of media per round.
const TALK: Duration = Duration::from_secs(5);

/// Runs the soak for `minutes` (1-240) against carecall.
pub async fn soak(target: &Target, minutes: f64) -> Result<SoakReport> {
    anyhow::ensure!(
        target.sfu == crate::Sfu::Carecall,
        "the soak runs against carecall only"
    );
    anyhow::ensure!((1.0..=240.0).contains(&minutes), "a soak is 1-240 minutes");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(minutes * 60.0);
    let joins = Arc::new(AtomicU64::new(0));
    let hammer = Arc::new(Hammer::default());
    let mut samples = vec![sample(target, started, &joins, &hammer).await?];
    let hammering = tokio::spawn(hammer.clone().run(target.base_url.clone(), until));
    let mut failed = 0;
    let mut next_sample = started + Duration::from_secs(600);
    let mut round = 0u32;
    while Instant::now() < until {
        failed += talk_round(target, round, &joins).await?;
        round += 1;
        if Instant::now() >= next_sample {
            samples.push(sample(target, started, &joins, &hammer).await?);
            next_sample += Duration::from_secs(600);
        }
    }
    hammering.await.context("the hammer stopped")?;
    // Everyone has left; the server lets go of sessions once leaves are in.
    tokio::time::sleep(Duration::from_secs(10)).await;
    samples.push(sample(target, started, &joins, &hammer).await?);
    Ok(SoakReport {
        joins: joins.load(Ordering::Relaxed),
        failed,
        hammered: hammer.requests.load(Ordering::Relaxed),
        refused: hammer.refused.load(Ordering::Relaxed),
        samples,
    })
}

/// One round: rooms of three join, talk for [`TALK`], leave. The joins
/// that failed.
async fn talk_round(target: &Target, round: u32, joins: &AtomicU64) -> Result<u64> {
    let ws = target.ws_url();
    let mut peers = Vec::new();
    let mut failed = 0;
    for i in 0..ROOMS * 3 {
        let room = format!("soak-{round}-{}", i / 3);
        let role = [Role::Home, Role::Clinician, Role::Specialist][i % 3];
        let token = target.token(&room, role, &format!("soak {i}"))?;
        let seed = round.wrapping_mul(100).wrapping_add(i as u32);
        let joined = tokio::time::timeout(
            Duration::from_secs(20),
            LoadPeer::join_simulcast(&ws, &token, seed),
        )
        .await;
        joins.fetch_add(1, Ordering::Relaxed);
        let Ok(mut peer) = joined else {
            failed += 1;
            continue;
        };
        if peer
            .connected_within(Duration::from_secs(20))
            .await
            .is_err()
        {
            failed += 1;
        }
        peers.push(peer);
    }
    crate::churn::talk_then_leave(peers, (TALK.as_millis() / 20) as u32).await;
    Ok(failed)
}

async fn sample(
    target: &Target,
    started: Instant,
    joins: &AtomicU64,
    hammer: &Hammer,
) -> Result<Sample> {
    let pid = target.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let metrics = http(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &target.base_url,
        "GET /metrics HTTP/1.1",
        "",
    )
    .await
    .unwrap_or_default();
    let tasks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("carecall_runtime_alive_tasks "))
        .and_then(|v| v.trim().parse().ok());
    Ok(Sample {
        minute: started.elapsed().as_secs_f64() / 60.0,
        rss_mib: proc::rss_bytes(pid)? as f64 / (1024.0 * 1024.0),
        fds,
        threads,
        tasks,
        joins: joins.load(Ordering::Relaxed),
        hammered: hammer.requests.load(Ordering::Relaxed),
    })
}

/// Strangers at the public surfaces.
#[derive(Default)]
struct Hammer {
    requests: AtomicU64,
    refused: AtomicU64,
}

impl Hammer {
    /// Every 20 ms until `until`, from one of 50 loopback addresses in
    /// turn: check credentials, a check result, a sign-in with a wrong
    /// password, or a small download.
    async fn run(self: Arc<Self>, base_url: String, until: Instant) {
        let result = r#"{"camera":{"ok":true},"microphone":{"ok":true},"udp":{"ok":true},"tcp":{"ok":true},"turn_tls":{"ok":true},"download_kbps":5000,"upload_kbps":2000,"loss":0.0}"#;
        let sign_in = r#"{"name":"hub.admin","password":"a wrong guess"}"#;
        let mut n = 0u32;
        while Instant::now() < until {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, (n % 50) as u8 + 1));
            let (line, body) = match n % 4 {
                0 => ("POST /check/api/session HTTP/1.1", "{}"),
                1 => ("POST /check/api/result HTTP/1.1", result),
                2 => ("POST /admin/login HTTP/1.1", sign_in),
                _ => ("GET /check/api/download?bytes=100000 HTTP/1.1", ""),
            };
            let status = http(source, &base_url, line, body)
                .await
                .ok()
                .and_then(|r| {
                    r.split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse::<u16>().ok())
                })
                .unwrap_or(0);
            self.requests.fetch_add(1, Ordering::Relaxed);
            if matches!(status, 0 | 429 | 503) {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            n = n.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One HTTP/1.1 request from `source`; the whole response as text.
async fn http(source: IpAddr, base_url: &str, line: &str, body: &str) -> Result<String> {
    let host = base_url.trim_start_matches("http://");
    let server: SocketAddr = host.parse().context("a loopback http:// URL")?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut s = tokio::time::timeout(Duration::from_secs(5), socket.connect(server)).await??;
    let request = format!(
        "{line}\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await??;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
