//! What a run measured, worked out from the tallies taken at the start and
//! end of the measured window, and shown on one screen or as JSON.

use std::time::Duration;

use serde::Serialize;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran.
    pub scenario: String,
    /// Participants in it.
    pub participants: usize,
    /// Streams the SFU forwarded (each subscriber × each other publisher's
    /// audio and video).
    pub forwarded_streams: usize,
    /// Seconds to join everyone and connect their media.
    pub join_seconds: f64,
    /// The measured window, seconds.
    pub seconds: f64,
    /// Packets that reached subscribers in the window.
    pub forwarded_packets: u64,
    /// The same per second.
    pub forwarded_per_second: f64,
    /// Server CPU (user + system) in the window, seconds.
    pub server_cpu_seconds: f64,
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: f64,
    /// Server CPU seconds per million forwarded packets.
    pub cpu_seconds_per_million_packets: f64,
    /// Forwarded packets per second per core the server used.
    pub packets_per_core_second: f64,
    /// Server CPU per forwarded stream, percent of one core.
    pub cpu_percent_per_stream: f64,
    /// Server memory before anyone joined, MiB.
    pub rss_before_mib: f64,
    /// Server memory at the end of the window, MiB.
    pub rss_during_mib: f64,
    /// Server memory added per participant, KiB.
    pub rss_per_participant_kib: f64,
    /// Packets sent to subscribers that did not arrive in the window.
    pub loss: f64,
    /// Send-to-receive time through the SFU on loopback (both WebRTC
    /// stacks included), median, ms.
    pub latency_p50_ms: f64,
    /// The same, 99th percentile.
    pub latency_p99_ms: f64,
    /// Subscribers that got nothing from some publisher in the window.
    pub subscribers_without_media: usize,
    /// Packets that arrived changed: not a whole packet of what was sent.
    pub unrecognised_packets: u64,
}

/// The raw material of a report.
pub(crate) struct Measured<'a> {
    pub scenario: String,
    /// Each participant: its streams' name, room, whether it publishes, and
    /// what it received.
    pub members: &'a [(&'a str, &'a str, bool, &'a crate::peer::Received)],
    /// Arrivals per member and stream at the window's start and end.
    pub before: &'a [Vec<((String, String), usize)>],
    pub after: &'a [Vec<((String, String), usize)>],
    /// The counters of the audio and video packets each member sent in the
    /// window: `[first, past the last)`.
    pub sent: &'a [[(u64, u64); 2]],
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub rss_before: u64,
    pub rss_during: u64,
    pub joined_in: Duration,
}

fn count(of: &[((String, String), usize)], key: &(String, String)) -> usize {
    of.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub(crate) fn measure(m: Measured<'_>) -> Report {
    let mut forwarded = 0u64;
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut unrecognised = 0u64;
    let mut streams = 0usize;
    let mut starved = 0usize;
    let mut latencies: Vec<u32> = Vec::new();
    for (r, (_, room, _, received)) in m.members.iter().enumerate() {
        let arrivals = received.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = false;
        for (p, (publisher, their_room, publishes, _)) in m.members.iter().enumerate() {
            if p == r || !publishes || their_room != room {
                continue;
            }
            let [audio, video] = m.sent[p];
            for (kind, (first, end)) in [("audio", audio), ("video", video)] {
                let key = (publisher.to_string(), kind.to_owned());
                let (from, to) = (count(&m.before[r], &key), count(&m.after[r], &key));
                let got = to.saturating_sub(from) as u64;
                streams += 1;
                forwarded += got;
                expected += end - first;
                missing |= got == 0;
                if let Some(a) = arrivals.get(&key) {
                    latencies.extend_from_slice(
                        &a.latency_us[from.min(a.latency_us.len())..to.min(a.latency_us.len())],
                    );
                    // Loss counts what was sent in the window and never
                    // arrived, however late (the run waits for stragglers).
                    let sent_then = |c: &&u32| (first..end).contains(&u64::from(**c));
                    delivered += a.counters.iter().filter(sent_then).count() as u64;
                    unrecognised += a.unrecognised;
                }
            }
        }
        starved += usize::from(missing);
    }
    latencies.sort_unstable();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let participants = m.members.len();
    Report {
        scenario: m.scenario,
        participants,
        forwarded_streams: streams,
        join_seconds: m.joined_in.as_secs_f64(),
        seconds: m.seconds,
        forwarded_packets: forwarded,
        forwarded_per_second: forwarded as f64 / m.seconds,
        server_cpu_seconds: m.cpu_seconds,
        server_cpu_percent: 100.0 * m.cpu_seconds / m.seconds,
        cpu_seconds_per_million_packets: m.cpu_seconds / (forwarded.max(1) as f64 / 1e6),
        packets_per_core_second: forwarded as f64 / m.cpu_seconds.max(0.01),
        cpu_percent_per_stream: 100.0 * m.cpu_seconds / m.seconds / streams.max(1) as f64,
        rss_before_mib: mib(m.rss_before),
        rss_during_mib: mib(m.rss_during),
        rss_per_participant_kib: m.rss_during.saturating_sub(m.rss_before) as f64
            / 1024.0
            / participants.max(1) as f64,
        loss: if expected == 0 {
            0.0
        } else {
            1.0 - delivered as f64 / expected as f64
        },
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        subscribers_without_media: starved,
        unrecognised_packets: unrecognised,
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} participants, {} forwarded streams",
            self.scenario, self.participants, self.forwarded_streams
        )?;
        writeln!(
            f,
            "  joined and connected in      {:>10.1} s",
            self.join_seconds
        )?;
        writeln!(
            f,
            "  forwarded                    {:>10.0} packets/s ({} packets in {:.1} s)",
            self.forwarded_per_second, self.forwarded_packets, self.seconds
        )?;
        writeln!(
            f,
            "  server CPU                   {:>10.1} % of a core ({:.2} % per stream)",
            self.server_cpu_percent, self.cpu_percent_per_stream
        )?;
        writeln!(
            f,
            "  CPU per million packets      {:>10.2} s",
            self.cpu_seconds_per_million_packets
        )?;
        writeln!(
            f,
            "  packets per core-second      {:>10.0}",
            self.packets_per_core_second
        )?;
        writeln!(
            f,
            "  server memory                {:>10.1} MiB ({:.1} before; {:.0} KiB per participant)",
            self.rss_during_mib, self.rss_before_mib, self.rss_per_participant_kib
        )?;
        writeln!(
            f,
            "  loss                         {:>10.3} %",
            100.0 * self.loss
        )?;
        writeln!(
            f,
            "  latency p50 / p99            {:>10.2} / {:.2} ms",
            self.latency_p50_ms, self.latency_p99_ms
        )?;
        writeln!(
            f,
            "  subscribers without media    {:>10}",
            self.subscribers_without_media
        )?;
        write!(
            f,
            "  packets changed on the way   {:>10}",
            self.unrecognised_packets
        )
    }
}
