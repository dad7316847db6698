//! What a participant's session reports: connection, ICE, tracks offered,
//! packets, data channel messages, statistics and estimates.

use str0m::media::{Direction, MediaKind};
use str0m::{Event, IceConnectionState};

use super::subscribe::waiting_for_keyframes;
use super::{Participant, Polled, Propagated, Signals};
use crate::signal::MediaSignal;
use crate::track::Publication;

impl Participant {
    pub(super) fn handle_event(&mut self, event: Event, signals: &mut Signals) -> Polled {
        match event {
            Event::Connected => {
                tracing::debug!(parent: &self.span, "media connected");
                self.connected = true;
                let now = self.clock.unwrap_or(self.joined_at);
                self.connected_after
                    .get_or_insert(now.saturating_duration_since(self.joined_at));
                // Subscriptions negotiated before the transport came up got no
                // usable keyframe yet: ask for one now.
                let wanted =
                    waiting_for_keyframes(&self.subscriptions).map(|(publisher, mid, layer)| {
                        Propagated::KeyframeWanted {
                            publisher,
                            mid,
                            layer,
                        }
                    });
                self.pending.extend(wanted);
                signals.push_back((self.id, MediaSignal::Connected));
            }
            Event::IceConnectionStateChange(state) => {
                self.counters.on_ice_state(state);
                if state == IceConnectionState::Disconnected {
                    signals.push_back((self.id, MediaSignal::IceDisconnected))
                }
            }
            Event::MediaAdded(added) => {
                let ours = self
                    .subscriptions
                    .iter()
                    .any(|s| s.mid() == Some(added.mid));
                let incoming = matches!(added.direction, Direction::RecvOnly | Direction::SendRecv);
                // One camera and one microphone per participant: extra m-lines
                // would make every other browser negotiate (and receive) them.
                let duplicate = self.publications.iter().any(|p| p.kind == added.kind);
                if duplicate && incoming {
                    tracing::info!(parent: &self.span, mid = %added.mid, "extra published track ignored");
                }
                if added.direction == Direction::SendOnly && added.kind == MediaKind::Video && !ours
                {
                    self.spare_video.get_or_insert(added.mid);
                }
                if incoming && !ours && self.receive_only {
                    tracing::info!(parent: &self.span, mid = %added.mid, "receive-only participant's track not published");
                }
                if incoming && !ours && !duplicate && !self.receive_only {
                    self.publications
                        .push(Publication::new(added.mid, added.kind));
                    return Polled::Propagate(Propagated::Published {
                        origin: self.id,
                        mid: added.mid,
                        kind: added.kind,
                    });
                }
            }
            Event::RtpPacket(packet) => return self.incoming_rtp(packet),
            Event::ChannelOpen(id, label) => self.echo.on_open(id, &label),
            Event::ChannelData(d) => {
                let now = self.clock.unwrap_or(self.joined_at);
                if self.echo.admits(d.id, d.data.len(), now) {
                    if let Some(mut channel) = self.rtc.channel(d.id) {
                        // Full (the page stopped reading): the probe is lost.
                        let _ = channel.write(d.binary, &d.data);
                    }
                }
            }
            Event::MediaIngressStats(stats) => self.counters.on_ingress(stats),
            Event::MediaEgressStats(stats) => self.counters.on_egress(stats),
            Event::EgressBitrateEstimate(_) | Event::PeerStats(_) => {
                let moved = match event {
                    Event::EgressBitrateEstimate(kind) => self.downlink.on_estimate(kind),
                    Event::PeerStats(stats) => {
                        self.counters.on_peer(&stats);
                        if let Some(loss) = stats.egress_loss_fraction {
                            self.downlink.on_loss(stats.timestamp, loss);
                        }
                        let latest = stats.bwe_tx.map(|b| b.as_u64());
                        latest.and_then(|b| self.downlink.on_latest(stats.timestamp, b))
                    }
                    _ => None,
                };
                if let Some(bps) = moved {
                    tracing::info!(parent: &self.span, estimate_kbps = bps / 1000, "downlink estimate");
                    self.adaptation.estimate_changes += 1;
                }
            }
            Event::KeyframeRequest(req) => {
                let sub = self.subscriptions.iter().find(|s| s.mid() == Some(req.mid));
                if let Some((sub, layer)) =
                    sub.and_then(|s| Some((s, s.forwarding.or(s.wanted())?)))
                {
                    return Polled::Propagate(Propagated::KeyframeWanted {
                        publisher: sub.origin,
                        mid: sub.source_mid,
                        layer,
                    });
                }
            }
            _ => {}
        }
        Polled::Nothing
    }
}
