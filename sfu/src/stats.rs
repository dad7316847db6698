//! Per-participant media statistics for the admin plane: what each browser
//! sends and receives, how its link behaves, which video layers it gets.
//!
//! str0m reports statistics per stream every stats interval; a participant's
//! [`MediaCounters`] keeps the latest report of each stream and sums them
//! when the admin plane asks. Nothing here runs per packet.

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};
use str0m::IceConnectionState;

use crate::bandwidth::AdaptationStats;
use crate::forward::Layer;
use crate::id::{ParticipantId, RoomId};

/// One participant's media as the admin plane shows it. Totals count since
/// the participant's media connected; rates are over the last stats interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticipantStats {
    /// Who.
    pub participant: ParticipantId,
    /// Where.
    pub room: RoomId,
    /// Media bytes and RTP packets from this participant's browser.
    pub received_bytes: u64,
    /// See `received_bytes`.
    pub received_packets: u64,
    /// Media bytes and RTP packets to this participant's browser.
    pub sent_bytes: u64,
    /// See `sent_bytes`.
    pub sent_packets: u64,
    /// Bit/s from and to the browser over the last stats interval, all
    /// traffic (media, RTCP, retransmissions, probes).
    pub receive_bps: u64,
    /// See `receive_bps`.
    pub send_bps: u64,
    /// Packets the browser reports lost on their way to it (RTCP receiver
    /// reports, all streams).
    pub sent_packets_lost: u64,
    /// The largest loss fraction among this participant's published streams
    /// in the SFU's latest receiver reports.
    pub receive_loss: f32,
    /// The largest interarrival jitter among its published streams.
    pub receive_jitter: Duration,
    /// Round-trip time to the browser, from ICE consent checks or RTCP.
    pub rtt: Option<Duration>,
    /// NACKs and PLIs this participant's browser sent (it lost packets or a
    /// picture on the way to it).
    pub nacks_received: u64,
    /// See `nacks_received`.
    pub plis_received: u64,
    /// NACKs and PLIs the SFU sent to this participant (its uploads lost
    /// packets, or a viewer needed a keyframe).
    pub nacks_sent: u64,
    /// See `nacks_sent`.
    pub plis_sent: u64,
    /// Transport of the selected ICE pair: "udp" or "tcp"; through the
    /// embedded TURN server "relay-udp", "relay-tcp" or "relay-tls".
    pub transport: Option<&'static str>,
    /// The browser's address on the selected ICE pair (a TURN relay's, when
    /// relayed).
    pub remote: Option<std::net::SocketAddr>,
    /// Times its media path was lost (ICE disconnected) and came back: a
    /// Wi-Fi drop or a NAT rebinding that the call survived.
    pub reconnects: u32,
    /// Packets of this participant's uploads due so far (every stream, from
    /// its first packet to its latest), and of them, lost on the way in
    /// before any repair: the network's own loss.
    pub upload_expected: u64,
    /// See `upload_expected`.
    pub upload_lost: u64,
    /// Runs of consecutive packets among `upload_lost`: lost / runs near 1
    /// is random loss, 2 or more a link that drops out.
    pub upload_loss_runs: u64,
    /// ICE restarts its browser made (after an address change, or a path
    /// it could not get back by waiting).
    pub ice_restarts: u32,
    /// The downlink estimate and the adaptation counters.
    pub adaptation: AdaptationStats,
    /// Each video this participant receives.
    pub video_layers: Vec<ReceivedVideo>,
    /// From its browser's first offer to media connected (ICE and DTLS).
    pub connected_after: Option<Duration>,
    /// From when it first had someone's video to receive (its join, or the
    /// first camera in the call after it) to the first video forwarded to it
    /// (a keyframe): the SFU's share of the time to the first picture.
    pub first_video_after: Option<Duration>,
}

/// How long a video counts as starting at a viewer, from its first forwarded
/// picture: the SFU shows the first layer to arrive at once, and a sender's
/// encoder adds its higher layers only as its estimate ramps up, which takes
/// a few seconds.
pub const VIDEO_START_UP: Duration = Duration::from_secs(10);

/// One video a participant receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedVideo {
    /// Whose video.
    pub origin: ParticipantId,
    /// The layer forwarded now (`None`: paused or not started).
    pub layer: Option<Layer>,
    /// Within [`VIDEO_START_UP`] of its first picture (or none yet): a low
    /// layer now is the start of the video, not a sign of a poor link.
    pub starting: bool,
}

/// The latest per-stream reports of one participant, kept until asked for.
#[derive(Debug, Default)]
pub(crate) struct MediaCounters {
    ingress: Vec<((Mid, Option<Rid>), MediaIngressStats)>,
    egress: Vec<((Mid, Option<Rid>), MediaEgressStats)>,
    rtt: Option<Duration>,
    transport: Option<&'static str>,
    remote: Option<std::net::SocketAddr>,
    /// Total bytes each way at the previous peer report, for the rates.
    last_peer: Option<(Instant, u64, u64)>,
    receive_bps: u64,
    send_bps: u64,
    /// ICE lost its path and has not found one again yet.
    ice_lost: bool,
    reconnects: u32,
    ice_restarts: u32,
}

/// At most this many streams are kept each way: a participant has a few
/// tracks per other participant, and a misbehaving browser cannot grow this.
const MAX_STREAMS: usize = 256;

impl MediaCounters {
    pub fn on_peer(&mut self, s: &PeerStats) {
        if let Some((at, rx, tx)) = self.last_peer {
            let secs = s.timestamp.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let per_sec =
                    |now: u64, was: u64| (now.saturating_sub(was) as f64 * 8.0 / secs) as u64;
                self.receive_bps = per_sec(s.peer_bytes_rx, rx);
                self.send_bps = per_sec(s.peer_bytes_tx, tx);
            }
        }
        self.last_peer = Some((s.timestamp, s.peer_bytes_rx, s.peer_bytes_tx));
        let pair = s.selected_candidate_pair.as_ref();
        self.rtt = pair
            .and_then(|p| p.current_round_trip_time)
            .or(s.rtt)
            .or(self.rtt);
        if let Some(p) = pair {
            self.remote = Some(p.remote.addr);
            self.transport = Some(match p.protocol {
                str0m::net::Protocol::Udp => "udp",
                _ => "tcp",
            });
        }
    }

    /// The latest round trip to the browser, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Counts a reconnect each time ICE comes back after losing its path.
    pub fn on_ice_state(&mut self, state: IceConnectionState) {
        match state {
            IceConnectionState::Disconnected => self.ice_lost = true,
            IceConnectionState::Connected | IceConnectionState::Completed if self.ice_lost => {
                self.ice_lost = false;
                self.reconnects += 1;
            }
            _ => {}
        }
    }

    /// Counts an ICE restart. The path it finds counts as a reconnect.
    pub fn on_ice_restart(&mut self) {
        self.ice_restarts += 1;
        self.ice_lost = true;
    }

    pub fn on_ingress(&mut self, s: MediaIngressStats) {
        keep(&mut self.ingress, (s.mid, s.rid), s);
    }

    pub fn on_egress(&mut self, s: MediaEgressStats) {
        keep(&mut self.egress, (s.mid, s.rid), s);
    }

    /// Sums the streams into `out`. `kind_of` tells a published stream's
    /// kind, for its RTP clock (jitter is reported in clock units).
    pub fn fill(&self, out: &mut ParticipantStats, kind_of: impl Fn(Mid) -> Option<MediaKind>) {
        for (_, s) in &self.ingress {
            out.received_bytes += s.bytes;
            out.received_packets += s.packets;
            out.nacks_sent += s.nacks;
            out.plis_sent += s.plis + s.firs;
            out.receive_loss = out.receive_loss.max(s.loss.unwrap_or(0.0));
            let clock = match kind_of(s.mid) {
                Some(MediaKind::Audio) => 48_000.0,
                _ => 90_000.0,
            };
            let jitter = Duration::from_secs_f64(f64::from(s.jitter) / clock);
            out.receive_jitter = out.receive_jitter.max(jitter);
        }
        for (_, s) in &self.egress {
            out.sent_bytes += s.bytes;
            out.sent_packets += s.packets;
            out.nacks_received += s.nacks;
            out.plis_received += s.plis + s.firs;
            out.sent_packets_lost += s.remote.as_ref().map_or(0, |r| r.packets_lost);
        }
        out.receive_bps = self.receive_bps;
        out.send_bps = self.send_bps;
        out.rtt = self.rtt;
        out.transport = self.transport;
        out.remote = self.remote;
        out.reconnects = self.reconnects;
        out.ice_restarts = self.ice_restarts;
    }
}

fn keep<T>(streams: &mut Vec<((Mid, Option<Rid>), T)>, key: (Mid, Option<Rid>), value: T) {
    match streams.iter().position(|(k, _)| *k == key) {
        Some(i) => streams[i].1 = value,
        None if streams.len() < MAX_STREAMS => streams.push((key, value)),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_is_a_lost_path_found_again() {
        let mut c = MediaCounters::default();
        let reconnects = |c: &MediaCounters| {
            let mut out = ParticipantStats::default();
            c.fill(&mut out, |_| None);
            out.reconnects
        };
        c.on_ice_state(IceConnectionState::Checking);
        c.on_ice_state(IceConnectionState::Connected);
        assert_eq!(reconnects(&c), 0, "the first connection is not a reconnect");
        c.on_ice_state(IceConnectionState::Disconnected);
        assert_eq!(reconnects(&c), 0, "still lost");
        c.on_ice_state(IceConnectionState::Checking);
        c.on_ice_state(IceConnectionState::Completed);
        c.on_ice_state(IceConnectionState::Connected);
        assert_eq!(reconnects(&c), 1);
        c.on_ice_state(IceConnectionState::Disconnected);
        c.on_ice_state(IceConnectionState::Connected);
        assert_eq!(reconnects(&c), 2);
        // A restart while the path still looked up: its new path counts too.
        c.on_ice_restart();
        c.on_ice_state(IceConnectionState::Checking);
        c.on_ice_state(IceConnectionState::Connected);
        assert_eq!(reconnects(&c), 3);
        let mut out = ParticipantStats::default();
        c.fill(&mut out, |_| None);
        assert_eq!(out.ice_restarts, 1);
    }
}
