//! What a run measured, worked out from the tallies taken at the start and
//! end of the measured window, and shown on one screen or as JSON.

use std::time::Duration;

use serde::Serialize;

use crate::clip::{LAYERS, STREAMS};

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
    /// Server memory of its own (heap, stacks: not code pages) added per
    /// participant, KiB.
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
    /// Video packets that reached subscribers in the window, per simulcast
    /// layer, lowest first (q, h, f).
    pub video_packets_by_layer: [u64; LAYERS],
    /// What the publishers sent in the window over what they should have
    /// (one audio packet per 20 ms tick each): below 1 the load tool could
    /// not keep up, and the row measures the generator, not the server.
    pub generator_kept_up: f64,
    /// The load tool's own CPU over the window, percent of one core: near
    /// 100 × the cores it runs on (one, pinned beside a server on two) it
    /// is the bottleneck, and its late receiving reads as loss and latency.
    pub generator_cpu_percent: f64,
    /// carecall nodes the rooms ran on (two when they span nodes).
    pub nodes: usize,
    /// Send-to-receive time of the streams to and from each room's
    /// specialist, median, ms: the streams that cross between nodes when
    /// the rooms span two, so the relay's added latency is this less the
    /// same figure on one node.
    pub specialist_latency_p50_ms: f64,
    /// The same, 99th percentile.
    pub specialist_latency_p99_ms: f64,
    /// Packets the nodes relayed to each other per second (each once per
    /// node pair, whatever the viewers there).
    pub relay_packets_per_second: f64,
    /// Their RTP bits per second.
    pub relay_bits_per_second: f64,
    /// Relayed packets the nodes dropped in the window.
    pub relay_dropped: f64,
}

/// The load tool's publishers send one audio packet per 20 ms tick.
const TICKS_PER_SECOND: f64 = 50.0;

/// One participant, as a report reads it.
pub(crate) struct Participant<'a> {
    /// How receivers name its streams.
    pub key: &'a str,
    pub room: &'a str,
    pub publishes: bool,
    /// Its room's specialist (on the far node when rooms span two).
    pub specialist: bool,
    /// What it received.
    pub received: &'a crate::peer::Received,
}

/// The raw material of a report.
pub(crate) struct Measured<'a> {
    pub scenario: String,
    pub members: &'a [Participant<'a>],
    /// carecall nodes in the run.
    pub nodes: usize,
    /// What the nodes relayed to each other in the window.
    pub relayed: crate::relay::Crossed,
    /// Arrivals per member and stream at the window's start and end.
    pub before: &'a [Vec<((String, String), usize)>],
    pub after: &'a [Vec<((String, String), usize)>],
    /// The counters of the audio and each video layer's packets each
    /// member sent in the window: `[first, past the last)`.
    pub sent: &'a [[(u64, u64); STREAMS]],
    pub seconds: f64,
    pub cpu_seconds: f64,
    /// The load tool's own CPU seconds in the window.
    pub tool_cpu_seconds: f64,
    pub rss_before: crate::proc::Memory,
    pub rss_during: crate::proc::Memory,
    pub joined_in: Duration,
}

/// How many packets `received` holds per stream: one side of a window, in
/// the shape [`Measured::before`] takes.
pub(crate) fn arrived(received: &crate::peer::Received) -> Vec<((String, String), usize)> {
    let r = received.lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .map(|(k, a)| (k.clone(), a.counters.len()))
        .collect()
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

/// Of one stream's arrivals per layer (`got`), the layer most were on
/// (the top one if none arrived).
fn main_layer(got: &[u64]) -> usize {
    let most = got.iter().copied().max().unwrap_or(0);
    match most {
        0 => got.len() - 1,
        _ => got.iter().rposition(|n| *n == most).unwrap_or(0),
    }
}

pub(crate) fn measure(m: Measured<'_>) -> Report {
    let mut forwarded = 0u64;
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut unrecognised = 0u64;
    let mut streams = 0usize;
    let mut starved = 0usize;
    let mut latencies: Vec<u32> = Vec::new();
    let mut specialist_latencies: Vec<u32> = Vec::new();
    let mut by_layer = [0u64; LAYERS];
    for (r, receiver) in m.members.iter().enumerate() {
        let arrivals = receiver.received.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = false;
        for (p, publisher) in m.members.iter().enumerate() {
            if p == r || !publisher.publishes || publisher.room != receiver.room {
                continue;
            }
            let (publisher, crosses) = (publisher.key, publisher.specialist != receiver.specialist);
            for (kind, sent) in [("audio", &m.sent[p][..1]), ("video", &m.sent[p][1..])] {
                let key = (publisher.to_string(), kind.to_owned());
                let (from, to) = (count(&m.before[r], &key), count(&m.after[r], &key));
                let got = to.saturating_sub(from) as u64;
                streams += 1;
                forwarded += got;
                missing |= got == 0;
                let Some(a) = arrivals.get(&key) else {
                    expected += sent.last().map_or(0, |(first, end)| end - first);
                    continue;
                };
                let window = from.min(a.counters.len())..to.min(a.counters.len());
                latencies.extend_from_slice(&a.latency_us[window.clone()]);
                if crosses {
                    specialist_latencies.extend_from_slice(&a.latency_us[window.clone()]);
                }
                unrecognised += a.unrecognised;
                // A subscriber is sent one layer of each camera: loss is
                // counted on the one it got most of in the window.
                let mut got = [0u64; LAYERS];
                for l in &a.layers[window] {
                    got[usize::from(*l)] += 1;
                }
                if kind == "video" {
                    for (all, n) in by_layer.iter_mut().zip(got) {
                        *all += n;
                    }
                }
                let layer = main_layer(&got[..sent.len()]);
                let (first, end) = sent[layer];
                expected += end - first;
                // Loss counts what was sent in the window and never
                // arrived, however late (the run waits for stragglers).
                let sent_then = |(c, l): (&u32, &u8)| {
                    usize::from(*l) == layer && (first..end).contains(&u64::from(*c))
                };
                delivered += a
                    .counters
                    .iter()
                    .zip(&a.layers)
                    .filter(|p| sent_then(*p))
                    .count() as u64;
            }
        }
        starved += usize::from(missing);
    }
    latencies.sort_unstable();
    specialist_latencies.sort_unstable();
    let publishers = m.members.iter().filter(|p| p.publishes).count();
    let ticks: u64 = (m.members.iter().zip(m.sent))
        .filter(|(p, _)| p.publishes)
        .map(|(_, sent)| sent[0].1 - sent[0].0)
        .sum();
    let due = publishers as f64 * m.seconds * TICKS_PER_SECOND;
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
        rss_before_mib: mib(m.rss_before.resident),
        rss_during_mib: mib(m.rss_during.resident),
        rss_per_participant_kib: m
            .rss_during
            .anonymous
            .saturating_sub(m.rss_before.anonymous) as f64
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
        video_packets_by_layer: by_layer,
        generator_kept_up: if due > 0.0 { ticks as f64 / due } else { 1.0 },
        generator_cpu_percent: 100.0 * m.tool_cpu_seconds / m.seconds.max(0.01),
        nodes: m.nodes,
        specialist_latency_p50_ms: percentile(&specialist_latencies, 0.5),
        specialist_latency_p99_ms: percentile(&specialist_latencies, 0.99),
        relay_packets_per_second: m.relayed.packets / m.seconds.max(0.01),
        relay_bits_per_second: 8.0 * m.relayed.bytes / m.seconds.max(0.01),
        relay_dropped: m.relayed.dropped,
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
            "  server memory                {:>10.1} MiB ({:.1} before; {:.0} KiB of its own per participant)",
            self.rss_during_mib, self.rss_before_mib, self.rss_per_participant_kib
        )?;
        let [q, h, full] = self.video_packets_by_layer;
        writeln!(
            f,
            "  video layers q / h / f       {:>10} / {} / {} packets",
            q, h, full
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
        if self.nodes > 1 {
            writeln!(
                f,
                "  relayed between {} nodes      {:>10.0} packets/s ({:.2} Mbit/s; {} dropped)",
                self.nodes,
                self.relay_packets_per_second,
                self.relay_bits_per_second / 1e6,
                self.relay_dropped
            )?;
        }
        writeln!(
            f,
            "  specialist latency p50 / p99 {:>10.2} / {:.2} ms",
            self.specialist_latency_p50_ms, self.specialist_latency_p99_ms
        )?;
        writeln!(
            f,
            "  subscribers without media    {:>10}",
            self.subscribers_without_media
        )?;
        writeln!(
            f,
            "  packets changed on the way   {:>10}",
            self.unrecognised_packets
        )?;
        write!(
            f,
            "  load tool sent               {:>10.1} % of what it should (its CPU {:.0} % of a core)",
            100.0 * self.generator_kept_up,
            self.generator_cpu_percent
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::peer::{Arrivals, Received};

    #[test]
    fn loss_is_counted_on_the_layer_a_subscriber_was_sent() {
        let (publisher, viewer): (Received, Received) = (Arc::default(), Arc::default());
        let before = [arrived(&publisher), arrived(&viewer)];
        {
            let mut got = viewer.lock().unwrap();
            let audio = got.entry(("p".into(), "audio".into())).or_default();
            audio.counters = (0..10).collect();
            audio.layers = vec![0; 10];
            audio.latency_us = vec![1_000; 10];
            // Two stray low-layer packets, then the top layer with one
            // packet (17) missing.
            let video: &mut Arrivals = got.entry(("p".into(), "video".into())).or_default();
            video.counters = [0, 1]
                .into_iter()
                .chain((10..20).filter(|c| *c != 17))
                .collect();
            video.layers = [0, 0].into_iter().chain([2; 9]).collect();
            video.latency_us = vec![2_000; 11];
        }
        let after = [arrived(&publisher), arrived(&viewer)];
        // Audio 0..10, and each layer's counters 0..2, 0..5 and 10..20.
        let sent = [[(0, 10), (0, 2), (0, 5), (10, 20)], [(0, 0); STREAMS]];
        let r = measure(Measured {
            scenario: "test".into(),
            members: &[
                Participant {
                    key: "p",
                    room: "r",
                    publishes: true,
                    specialist: true,
                    received: &publisher,
                },
                Participant {
                    key: "v",
                    room: "r",
                    publishes: false,
                    specialist: false,
                    received: &viewer,
                },
            ],
            nodes: 2,
            relayed: crate::relay::Crossed {
                packets: 40.0,
                bytes: 20_000.0,
                dropped: 0.0,
            },
            before: &before,
            after: &after,
            sent: &sent,
            seconds: 1.0,
            cpu_seconds: 0.5,
            tool_cpu_seconds: 0.25,
            rss_before: Default::default(),
            rss_during: Default::default(),
            joined_in: Duration::ZERO,
        });
        assert_eq!(r.forwarded_streams, 2);
        assert_eq!(r.forwarded_packets, 21);
        assert_eq!(r.video_packets_by_layer, [2, 0, 9]);
        // 1 of the top layer's 10 and none of the audio's 10.
        assert!((r.loss - 1.0 / 20.0).abs() < 1e-9, "{}", r.loss);
        assert_eq!(r.subscribers_without_media, 0);
        // The viewer and the specialist's camera are on different nodes.
        assert_eq!((r.specialist_latency_p50_ms, r.latency_p50_ms), (2.0, 2.0));
        assert_eq!(
            (r.relay_packets_per_second, r.relay_bits_per_second),
            (40.0, 160_000.0)
        );
        // One publisher sent 10 of the 50 audio packets a second is due.
        assert!(
            (r.generator_kept_up - 0.2).abs() < 1e-9,
            "{}",
            r.generator_kept_up
        );
    }
}
