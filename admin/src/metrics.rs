//! Prometheus `/metrics`: the process, the calls, and each participant's media.
//!
//! Each scrape renders a fresh registry from a snapshot of the media plane and
//! of who is present, so a participant's series exist exactly while it is in
//! a call: nothing to remove when it leaves, nothing left behind if a leave is
//! missed. Per-participant labels are the room, the participant's id for this
//! call and its role; ids are never reused, and series go with the call.

use carecall_sfu::ParticipantStats;

use crate::join_times::JoinTimes;
use carecall_signalling::Role;
use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// What one scrape shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Everyone present in signalling: room, participant id, role.
    pub members: Vec<(String, carecall_sfu::ParticipantId, Role)>,
    /// The media plane's statistics, one entry per participant with media.
    pub media: Vec<ParticipantStats>,
    /// Clients refused at the public surfaces: (surface, reason, count).
    pub refusals: Vec<(&'static str, &'static str, u64)>,
    /// Tasks alive on the async runtime (sockets, sessions, timers): one
    /// that only ever rises is a leak.
    pub runtime_tasks: usize,
    /// TURN requests answered with an error since start: (reason, count).
    pub turn_failures: Vec<(&'static str, u64)>,
    /// Joins whose media never connected before they left, by role.
    pub never_connected: Vec<(Role, u64)>,
    /// Each TLS listener's certificate expiry (Unix seconds).
    pub certificates: Vec<(&'static str, u64)>,
    /// What crossed this node's relay to the hub's others, if it has one.
    pub relay: Option<carecall_sfu::RelayCounts>,
}

/// A TLS certificate the hub serves (HTTPS, TURN over TLS), for its expiry
/// gauge: renewals that fail are seen weeks before browsers refuse it.
pub trait ServedCertificate: Send + Sync {
    /// The listener, as a metric label: `https`, `turn`.
    fn listener(&self) -> &'static str;
    /// When the certificate served now expires.
    fn expires(&self) -> Option<std::time::SystemTime>;
}

impl Snapshot {
    /// The rooms with someone in them, sorted.
    pub fn rooms(&self) -> Vec<&str> {
        carecall_signalling::Presence::rooms_of(&self.members)
    }

    /// The media statistics of one member, if its media is up.
    pub fn media_of(
        &self,
        room: &str,
        participant: carecall_sfu::ParticipantId,
    ) -> Option<&ParticipantStats> {
        self.media
            .iter()
            .find(|s| s.participant == participant && s.room.0 == room)
    }
}

/// Label names of every per-participant series.
const WHO: [&str; 3] = ["room", "participant", "role"];

/// Renders `snapshot` in Prometheus' text format, with the join-time
/// histograms and the images taken.
pub fn render(
    snapshot: &Snapshot,
    join_times: &JoinTimes,
    stored: StoreCounts,
    queue: &crate::queue_metrics::QueueReading,
    images: &crate::ImageMetrics,
) -> Result<String, prometheus::Error> {
    let registry = Registry::new();
    queue.register(&registry)?;
    for series in images.collectors() {
        registry.register(series)?;
    }
    let gauge = |name: &str, help: &str, value: u64| -> Result<(), prometheus::Error> {
        let g = IntGauge::new(name, help)?;
        g.set(value as i64);
        registry.register(Box::new(g))
    };
    gauge(
        "carecall_hook_events_waiting",
        "Record-hook deliveries not yet taken by their endpoint.",
        stored.waiting,
    )?;
    gauge(
        "carecall_hook_dead_letters",
        "Record-hook deliveries given up on, waiting for an admin.",
        stored.dead_letters,
    )?;
    gauge(
        "carecall_recordings_stored_bytes",
        "Bytes of finished recordings on disk, until retention deletes them.",
        stored.recording_bytes,
    )?;
    render_nodes(&registry, &stored.nodes)?;
    for histogram in join_times.collectors() {
        registry.register(histogram)?;
    }
    let build = IntGaugeVec::new(
        Opts::new("carecall_build_info", "The running carecall's version."),
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(build))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;

    let refused = IntCounterVec::new(
        Opts::new(
            "carecall_limit_refusals_total",
            "Clients refused by a limit on a public surface (docs/security.md), by surface and reason.",
        ),
        &["surface", "reason"],
    )?;
    for (surface, reason, n) in &snapshot.refusals {
        refused.with_label_values(&[surface, reason]).inc_by(*n);
    }
    registry.register(Box::new(refused))?;

    if let Some(relay) = &snapshot.relay {
        register_relay(&registry, relay)?;
    }

    let turn_failures = IntCounterVec::new(
        Opts::new(
            "carecall_turn_failures_total",
            "TURN requests answered with an error, by reason (docs/metrics.md).",
        ),
        &["reason"],
    )?;
    for (reason, n) in &snapshot.turn_failures {
        turn_failures.with_label_values(&[reason]).inc_by(*n);
    }
    registry.register(Box::new(turn_failures))?;

    let never = IntCounterVec::new(
        Opts::new(
            "carecall_joins_never_connected_total",
            "Participants who joined and left without their media ever connecting, by role.",
        ),
        &["role"],
    )?;
    for (role, n) in &snapshot.never_connected {
        never.with_label_values(&[&role.to_string()]).inc_by(*n);
    }
    registry.register(Box::new(never))?;

    let expiry = IntGaugeVec::new(
        Opts::new(
            "carecall_certificate_expiry_timestamp_seconds",
            "When the certificate each TLS listener serves now expires (Unix time).",
        ),
        &["listener"],
    )?;
    for (listener, at) in &snapshot.certificates {
        expiry.with_label_values(&[listener]).set(*at as i64);
    }
    registry.register(Box::new(expiry))?;

    let tasks = IntGauge::new(
        "carecall_runtime_alive_tasks",
        "Tasks alive on the async runtime (sockets, sessions, timers).",
    )?;
    tasks.set(snapshot.runtime_tasks as i64);
    registry.register(Box::new(tasks))?;

    let rooms = IntGauge::new("carecall_rooms", "Calls with at least one participant.")?;
    rooms.set(snapshot.rooms().len() as i64);
    registry.register(Box::new(rooms))?;
    let present = IntGaugeVec::new(
        Opts::new("carecall_participants", "Participants in calls, by role."),
        &["role"],
    )?;
    for role in [
        Role::Home,
        Role::Operator,
        Role::Clinician,
        Role::Specialist,
        Role::Observer,
    ] {
        let n = snapshot.members.iter().filter(|m| m.2 == role).count();
        present
            .with_label_values(&[&role.to_string()])
            .set(n as i64);
    }
    registry.register(Box::new(present))?;

    let series = ParticipantSeries::new()?;
    for (room, id, role) in &snapshot.members {
        // Without media (joining or leaving this instant): no series.
        if let Some(stats) = snapshot.media_of(room, *id) {
            series.observe(&[room, &id.to_string(), &role.to_string()], stats);
        }
    }
    series.register(&registry)?;

    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Each node's state and load, by node id: every node's `/metrics` shows
/// them all, so one scrape finds a node lost.
fn render_nodes(
    registry: &Registry,
    nodes: &[crate::nodes::NodeStatus],
) -> Result<(), prometheus::Error> {
    let family = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help), &["node"])?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let up = family(
        "carecall_node_up",
        "1 while the node's heartbeat is current, 0 once it stopped or was lost.",
    )?;
    let lost = family(
        "carecall_node_lost",
        "1 once the node has been silent for 6 s without saying it was stopping: killed, crashed or cut off.",
    )?;
    let silent = family(
        "carecall_node_heartbeat_age_seconds",
        "Seconds since the node's last heartbeat.",
    )?;
    let rooms = family(
        "carecall_node_rooms",
        "Calls on the node at its last heartbeat.",
    )?;
    let people = family(
        "carecall_node_participants",
        "Participants on the node at its last heartbeat.",
    )?;
    for n in nodes {
        let id = [n.id.as_str()];
        up.with_label_values(&id)
            .set(i64::from(n.state == crate::nodes::NodeState::Live));
        lost.with_label_values(&id)
            .set(i64::from(n.state == crate::nodes::NodeState::Lost));
        silent.with_label_values(&id).set(n.silent_s as i64);
        rooms.with_label_values(&id).set(n.rooms as i64);
        people.with_label_values(&id).set(n.participants as i64);
    }
    Ok(())
}

/// What the database holds that operators watch: record-hook deliveries by
/// state, the recordings' disk use, and the hub's nodes.
#[derive(Debug, Clone, Default)]
pub struct StoreCounts {
    /// Hook deliveries waiting for delivery or a retry.
    pub waiting: u64,
    /// Hook deliveries given up on.
    pub dead_letters: u64,
    /// Bytes of finished recordings not yet deleted.
    pub recording_bytes: u64,
    /// Every node of the hub (one, unless several share a PostgreSQL).
    pub nodes: Vec<crate::nodes::NodeStatus>,
}

/// Reads a total from a participant's statistics.
type Count = fn(&ParticipantStats) -> u64;
/// Reads a level, if known.
type Level = fn(&ParticipantStats) -> Option<f64>;

/// The per-participant metric families.
struct ParticipantSeries {
    counters: Vec<(IntCounterVec, Count)>,
    gauges: Vec<(GaugeVec, Level)>,
    layers: IntGaugeVec,
    transport: IntGaugeVec,
}

impl ParticipantSeries {
    fn new() -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &WHO);
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &WHO);
        let counters: Vec<(IntCounterVec, Count)> = vec![
            (
                counter(
                    "carecall_participant_received_bytes_total",
                    "Media bytes received from the participant's browser.",
                )?,
                |s| s.received_bytes,
            ),
            (
                counter(
                    "carecall_participant_received_packets_total",
                    "RTP packets received from the participant's browser.",
                )?,
                |s| s.received_packets,
            ),
            (
                counter(
                    "carecall_participant_sent_bytes_total",
                    "Media bytes sent to the participant's browser.",
                )?,
                |s| s.sent_bytes,
            ),
            (
                counter(
                    "carecall_participant_sent_packets_total",
                    "RTP packets sent to the participant's browser.",
                )?,
                |s| s.sent_packets,
            ),
            (
                counter(
                    "carecall_participant_sent_packets_lost_total",
                    "Packets the participant's browser reports lost on the way to it.",
                )?,
                |s| s.sent_packets_lost,
            ),
            (
                counter(
                    "carecall_participant_nacks_received_total",
                    "Retransmission requests from the participant's browser.",
                )?,
                |s| s.nacks_received,
            ),
            (
                counter(
                    "carecall_participant_plis_received_total",
                    "Keyframe requests from the participant's browser.",
                )?,
                |s| s.plis_received,
            ),
            (
                counter(
                    "carecall_participant_nacks_sent_total",
                    "Retransmission requests sent to the participant's browser.",
                )?,
                |s| s.nacks_sent,
            ),
            (
                counter(
                    "carecall_participant_plis_sent_total",
                    "Keyframe requests sent to the participant's browser.",
                )?,
                |s| s.plis_sent,
            ),
            (
                counter(
                    "carecall_participant_layer_switches_total",
                    "Video layer switches in what the participant receives.",
                )?,
                |s| s.adaptation.layer_switches,
            ),
            (
                counter(
                    "carecall_participant_video_pauses_total",
                    "Times video to the participant was paused to keep the sound clear.",
                )?,
                |s| s.adaptation.video_pauses,
            ),
            (
                counter(
                    "carecall_participant_reconnects_total",
                    "Times the participant's media path was lost and found again.",
                )?,
                |s| u64::from(s.reconnects),
            ),
            (
                counter(
                    "carecall_participant_ice_restarts_total",
                    "ICE restarts the participant's browser made (an address change, a lost path).",
                )?,
                |s| u64::from(s.ice_restarts),
            ),
        ];
        let gauges: Vec<(GaugeVec, Level)> = vec![
            (
                gauge(
                    "carecall_participant_receive_bytes_per_second",
                    "Traffic from the participant's browser over the last seconds.",
                )?,
                |s| Some(s.receive_bps as f64 / 8.0),
            ),
            (
                gauge(
                    "carecall_participant_send_bytes_per_second",
                    "Traffic to the participant's browser over the last seconds.",
                )?,
                |s| Some(s.send_bps as f64 / 8.0),
            ),
            (
                gauge(
                    "carecall_participant_receive_loss_ratio",
                    "Worst loss fraction among the participant's uploads.",
                )?,
                |s| Some(f64::from(s.receive_loss)),
            ),
            (
                gauge(
                    "carecall_participant_receive_jitter_seconds",
                    "Worst interarrival jitter among the participant's uploads.",
                )?,
                |s| Some(s.receive_jitter.as_secs_f64()),
            ),
            (
                gauge(
                    "carecall_participant_rtt_seconds",
                    "Round-trip time to the participant's browser.",
                )?,
                |s| s.rtt.map(|r| r.as_secs_f64()),
            ),
            (
                gauge(
                    "carecall_participant_quality_level",
                    "The dashboard's badge: 0 green, 1 amber, 2 red (see docs/admin.md).",
                )?,
                |s| Some(crate::quality::badge(s).0 as u8 as f64),
            ),
            (
                gauge(
                    "carecall_participant_downlink_estimate_bytes_per_second",
                    "Estimated bandwidth to the participant's browser.",
                )?,
                |s| s.adaptation.estimate_bps.map(|b| b as f64 / 8.0),
            ),
        ];
        let mut with_origin = WHO.to_vec();
        with_origin.push("origin");
        let layers = IntGaugeVec::new(
            Opts::new(
                "carecall_participant_video_layer_height_pixels",
                "Nominal height of the video layer forwarded to the participant, per sender; 0 while paused.",
            ),
            &with_origin,
        )?;
        let mut with_transport = WHO.to_vec();
        with_transport.push("transport");
        let transport = IntGaugeVec::new(
            Opts::new(
                "carecall_participant_transport_info",
                "The participant's media transport (selected ICE pair).",
            ),
            &with_transport,
        )?;
        Ok(ParticipantSeries {
            counters,
            gauges,
            layers,
            transport,
        })
    }

    fn observe(&self, who: &[&str; 3], s: &ParticipantStats) {
        for (metric, value) in &self.counters {
            metric.with_label_values(who).inc_by(value(s));
        }
        for (metric, value) in &self.gauges {
            if let Some(v) = value(s) {
                metric.with_label_values(who).set(v);
            }
        }
        for video in &s.video_layers {
            let origin = video.origin.to_string();
            let labels = [who[0], who[1], who[2], &origin];
            let height = video.layer.map_or(0, |l| l.nominal_height());
            self.layers
                .with_label_values(&labels)
                .set(i64::from(height));
        }
        if let Some(t) = s.transport {
            let labels = [who[0], who[1], who[2], t];
            self.transport.with_label_values(&labels).set(1);
        }
    }

    fn register(self, registry: &Registry) -> Result<(), prometheus::Error> {
        let mut all: Vec<Box<dyn Collector>> = Vec::new();
        all.extend(self.counters.into_iter().map(|(m, _)| Box::new(m) as _));
        all.extend(self.gauges.into_iter().map(|(m, _)| Box::new(m) as _));
        all.push(Box::new(self.layers));
        all.push(Box::new(self.transport));
        all.into_iter().try_for_each(|m| registry.register(m))
    }
}

/// The relay between nodes (docs/metrics.md): packets and bytes each way,
/// drops, and links up.
fn register_relay(
    registry: &Registry,
    relay: &carecall_sfu::RelayCounts,
) -> Result<(), prometheus::Error> {
    let packets = IntCounterVec::new(
        Opts::new(
            "carecall_relay_packets_total",
            "Media packets relayed to (sent) or from (received) the hub's other nodes.",
        ),
        &["direction"],
    )?;
    packets
        .with_label_values(&["sent"])
        .inc_by(relay.packets_sent);
    packets
        .with_label_values(&["received"])
        .inc_by(relay.packets_received);
    registry.register(Box::new(packets))?;
    let bytes = IntCounterVec::new(
        Opts::new(
            "carecall_relay_bytes_total",
            "RTP bytes (header and payload) relayed to or from the hub's other nodes.",
        ),
        &["direction"],
    )?;
    bytes.with_label_values(&["sent"]).inc_by(relay.bytes_sent);
    bytes
        .with_label_values(&["received"])
        .inc_by(relay.bytes_received);
    registry.register(Box::new(bytes))?;
    let dropped = prometheus::IntCounter::new(
        "carecall_relay_dropped_total",
        "Relayed packets lost at this node: too big for the path, malformed, or for no open room.",
    )?;
    dropped.inc_by(relay.packets_dropped);
    registry.register(Box::new(dropped))?;
    let keyframes = IntCounterVec::new(
        Opts::new(
            "carecall_relay_keyframe_requests_total",
            "Keyframe requests sent to other nodes' cameras for viewers here (sent), or received for cameras here.",
        ),
        &["direction"],
    )?;
    keyframes
        .with_label_values(&["sent"])
        .inc_by(relay.keyframes_sent);
    keyframes
        .with_label_values(&["received"])
        .inc_by(relay.keyframes_received);
    registry.register(Box::new(keyframes))?;
    let links = IntGauge::new(
        "carecall_relay_links",
        "Links to the hub's other nodes now.",
    )?;
    links.set(relay.links as i64);
    registry.register(Box::new(links))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecall_sfu::{ParticipantId, RoomId};

    fn stats(id: u64, room: &str) -> ParticipantStats {
        ParticipantStats {
            participant: ParticipantId(id),
            room: RoomId(room.into()),
            received_bytes: 1000 * id,
            received_packets: 10 * id,
            receive_bps: 8000,
            ..ParticipantStats::default()
        }
    }

    #[test]
    fn each_present_participant_has_its_series_and_a_departed_one_none() {
        let snapshot = Snapshot {
            members: vec![
                ("ward-3".into(), ParticipantId(1), Role::Home),
                ("ward-3".into(), ParticipantId(2), Role::Clinician),
            ],
            // p3 has left signalling; its media is being torn down.
            media: vec![stats(1, "ward-3"), stats(2, "ward-3"), stats(3, "ward-3")],
            refusals: vec![("turn", "allocations_per_credential", 7)],
            runtime_tasks: 42,
            turn_failures: vec![("expired_credential", 3)],
            never_connected: vec![(Role::Home, 2)],
            certificates: vec![("turn", 1_930_348_800)],
            relay: Some(carecall_sfu::RelayCounts {
                packets_sent: 5,
                packets_received: 4,
                bytes_sent: 5000,
                bytes_received: 4000,
                packets_dropped: 1,
                keyframes_sent: 2,
                keyframes_received: 3,
                links: 1,
            }),
        };
        let text = render(
            &snapshot,
            &JoinTimes::default(),
            StoreCounts::default(),
            &Default::default(),
            &crate::ImageMetrics::default(),
        )
        .unwrap();
        assert!(text.contains(
            r#"carecall_participant_received_packets_total{participant="p1",role="home",room="ward-3"} 10"#
        ), "{text}");
        assert!(text.contains(
            r#"carecall_participant_received_bytes_total{participant="p2",role="clinician",room="ward-3"} 2000"#
        ));
        assert!(!text.contains(r#"participant="p3""#));
        assert!(text.contains("carecall_rooms 1"));
        assert!(text.contains("carecall_runtime_alive_tasks 42"));
        assert!(text.contains(
            r#"carecall_limit_refusals_total{reason="allocations_per_credential",surface="turn"} 7"#
        ), "{text}");
        assert!(text.contains(r#"carecall_participants{role="clinician"} 1"#));
        assert!(text.contains(r#"carecall_turn_failures_total{reason="expired_credential"} 3"#));
        assert!(text.contains(r#"carecall_joins_never_connected_total{role="home"} 2"#));
        assert!(text.contains(
            r#"carecall_certificate_expiry_timestamp_seconds{listener="turn"} 1930348800"#
        ));
        assert!(text.contains("carecall_build_info{version="));
        assert!(text.contains(r#"carecall_relay_packets_total{direction="sent"} 5"#));
        assert!(text.contains(r#"carecall_relay_bytes_total{direction="received"} 4000"#));
        assert!(text.contains("carecall_relay_dropped_total 1"));
        assert!(text.contains(r#"carecall_relay_keyframe_requests_total{direction="received"} 3"#));
        assert!(text.contains("carecall_relay_links 1"));
    }

    #[test]
    fn an_empty_server_still_renders() {
        let text = render(
            &Snapshot::default(),
            &JoinTimes::default(),
            StoreCounts::default(),
            &Default::default(),
            &crate::ImageMetrics::default(),
        )
        .unwrap();
        assert!(text.contains("carecall_rooms 0"));
        assert!(
            !text.contains("carecall_relay_"),
            "a node without a relay has no relay series"
        );
        assert!(!text.contains("carecall_participant_"));
    }
}
