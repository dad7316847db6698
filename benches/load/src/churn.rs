//! Join/leave churn against carecall: calls of two come and go, round after
//! round, as a hub's day does. Each participant joins over signalling,
//! connects media, sends a second of media, and leaves. What it shows: how
//! long a join takes to connect (p50/p99), how many failed, the server's CPU
//! per join, and whether memory comes back once everyone has left.

use std::time::{Duration, Instant};

use anyhow::Result;
use carecall_signalling::Role;
use serde::Serialize;

use crate::{proc, LoadPeer, Target};

/// One churn run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// Rounds run.
    pub rounds: usize,
    /// Participants per round (in calls of two).
    pub participants: usize,
    /// Joins attempted.
    pub joins: usize,
    /// Joins that did not connect media within 20 s.
    pub failed: usize,
    /// From opening the signalling socket to media connected, ms.
    pub connect_p50_ms: f64,
    /// The same, 99th percentile.
    pub connect_p99_ms: f64,
    /// Server CPU seconds per join (joining, a second of media, leaving).
    pub cpu_ms_per_join: f64,
    /// Server memory before the first round, MiB.
    pub rss_before_mib: f64,
    /// Server memory after the last round, everyone gone, MiB.
    pub rss_after_mib: f64,
    /// The server's own memory (heap and stacks, not code pages: see
    /// [`proc::Memory`]) before the first round, MiB.
    pub own_before_mib: f64,
    /// The same after the last round, everyone gone: what a leak would grow.
    pub own_after_mib: f64,
}

impl std::fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "churn: {} rounds of {} participants in calls of two",
            self.rounds, self.participants
        )?;
        writeln!(
            f,
            "  joins                        {:>10} ({} failed)",
            self.joins, self.failed
        )?;
        writeln!(
            f,
            "  join to media connected      {:>10.0} / {:.0} ms (p50 / p99)",
            self.connect_p50_ms, self.connect_p99_ms
        )?;
        writeln!(
            f,
            "  server CPU per join          {:>10.1} ms",
            self.cpu_ms_per_join
        )?;
        write!(
            f,
            "  server memory                {:>10.1} MiB before, {:.1} MiB after everyone left \
             ({:.1} and {:.1} MiB of its own)",
            self.rss_before_mib, self.rss_after_mib, self.own_before_mib, self.own_after_mib
        )
    }
}

/// Every peer sends `ticks` 20 ms steps of the clip, then all leave.
pub(crate) async fn talk_then_leave(peers: Vec<LoadPeer>, ticks: u32) {
    let mut senders = Vec::new();
    for p in &peers {
        senders.push((p.sender(), p.negotiated().await));
    }
    for n in 0..ticks {
        for (sender, wire) in &senders {
            sender.send_clip(n, wire).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in peers {
        p.close().await;
    }
}

/// Runs `rounds` rounds of `participants` joining (in calls of two) and
/// leaving. Bounded: at most 100 rounds of 100.
pub async fn churn(target: &Target, rounds: usize, participants: usize) -> Result<ChurnReport> {
    anyhow::ensure!(
        target.sfu == crate::Sfu::Carecall,
        "churn runs against carecall only"
    );
    anyhow::ensure!(
        (1..=100).contains(&rounds) && (2..=100).contains(&participants),
        "churn is 1-100 rounds of 2-100 participants"
    );
    let ws = target.ws_url();
    let before = proc::memory(target.pid)?;
    let cpu_before = proc::cpu_seconds(target.pid)?;
    let mut connect_ms = Vec::new();
    let mut failed = 0;
    for round in 0..rounds {
        let mut peers = Vec::new();
        for i in 0..participants {
            let room = format!("churn-{}-{round}-{}", std::process::id(), i / 2);
            let role = if i % 2 == 0 {
                Role::Home
            } else {
                Role::Clinician
            };
            let token = target.token(&room, role, &format!("churn {i}"))?;
            let started = Instant::now();
            let joined = tokio::time::timeout(
                Duration::from_secs(20),
                LoadPeer::join_simulcast(&ws, &token, (round * participants + i) as u32),
            )
            .await;
            let Ok(mut peer) = joined else {
                failed += 1;
                continue;
            };
            match peer.connected_within(Duration::from_secs(20)).await {
                Ok(()) => connect_ms.push(started.elapsed().as_secs_f64() * 1000.0),
                Err(_) => failed += 1,
            }
            peers.push(peer);
        }
        // A second of media in every call, then everyone leaves.
        talk_then_leave(peers, 50).await;
        eprintln!("  round {}/{rounds}: {} joined", round + 1, participants);
    }
    // The server lets go of a session once its leave is processed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = proc::cpu_seconds(target.pid)? - cpu_before;
    let after = proc::memory(target.pid)?;
    connect_ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        connect_ms
            .get(((connect_ms.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let joins = rounds * participants;
    Ok(ChurnReport {
        rounds,
        participants,
        joins,
        failed,
        connect_p50_ms: at(0.5),
        connect_p99_ms: at(0.99),
        cpu_ms_per_join: cpu * 1000.0 / joins as f64,
        rss_before_mib: mib(before.resident),
        rss_after_mib: mib(after.resident),
        own_before_mib: mib(before.anonymous),
        own_after_mib: mib(after.anonymous),
    })
}
