//! The participant as a subscriber: what it receives of others' tracks,
//! and the forwarding of each packet to it.

use std::sync::Arc;

use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite};

use super::{Learnt, Participant};
use crate::forward::{vp8_patch, Layer, RESEND_PACKETS, RESEND_RATIO_CAP};
use crate::id::ParticipantId;
use crate::packet::MediaPacket;
use crate::track::{OutgoingPt, Subscription, SubscriptionState};

/// What became of one packet offered to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Written to the subscriber's stream.
    Sent,
    /// Not for this subscriber (not subscribed, not negotiated yet, not connected).
    Skipped,
    /// Dropped because the subscriber waits for a keyframe of this layer: the
    /// publisher must be asked for one, or the subscriber's tile stays black.
    NeedsKeyframe(Layer),
}

impl Participant {
    /// Subscribes to another participant's track (negotiated on the next poll).
    pub fn subscribe(&mut self, origin: ParticipantId, mid: Mid, kind: MediaKind) {
        let mut sub = Subscription::new(origin, mid, kind);
        if kind == MediaKind::Video {
            sub.view_height = self.views.get(origin);
            let now = self.clock.unwrap_or(self.joined_at).max(self.joined_at);
            self.video_wanted_since.get_or_insert(now);
        }
        self.subscriptions.push(sub);
    }

    /// Stops every subscription to a participant who left.
    pub fn unsubscribe_from(&mut self, origin: ParticipantId) {
        self.views.remove(origin);
        self.subscriptions.retain_mut(|s| {
            if s.origin != origin {
                return true;
            }
            match s.state {
                SubscriptionState::ToOpen => false,
                SubscriptionState::Negotiating(m) | SubscriptionState::Open { mid: m, .. } => {
                    s.state = SubscriptionState::ToStop(m);
                    true
                }
                _ => true,
            }
        });
    }

    /// Writes another participant's packet to this participant, if subscribed.
    /// Video starts at a keyframe, of the wanted layer or, while nothing is
    /// shown yet, of a lower one; until one comes, packets are dropped and the
    /// caller is told to ask the publisher for a keyframe.
    /// Allocation-free: the payload is shared, the state is preallocated.
    pub fn forward(
        &mut self,
        origin: ParticipantId,
        source_mid: Mid,
        layer: Layer,
        params: &PayloadParams,
        learnt: Learnt,
        packet: &MediaPacket,
    ) -> Forwarded {
        let span = &self.span;
        if !self.connected {
            return Forwarded::Skipped;
        }
        let Some(sub) = self
            .subscriptions
            .iter_mut()
            .find(|s| s.origin == origin && s.source_mid == source_mid)
        else {
            return Forwarded::Skipped;
        };
        let SubscriptionState::Open { ssrc, .. } = sub.state else {
            return Forwarded::Skipped;
        };
        let wanted = sub.wanted();
        if wanted.is_none() {
            // Paused: nothing of this track fits the subscriber's link.
            sub.forwarding = None;
            return Forwarded::Skipped;
        }
        let spec = params.spec();
        let Learnt { start_point, vp8 } = learnt;
        if Some(layer) != sub.forwarding {
            // With no picture on screen (just joined, or resuming), a lower
            // layer's keyframe starts the tile at once; the wanted layer
            // takes over at its own keyframe.
            let starts_early = sub.forwarding.is_none() && Some(layer) < wanted;
            if Some(layer) != wanted && !starts_early {
                return Forwarded::Skipped;
            }
            if !start_point {
                return match starts_early {
                    true => Forwarded::Skipped,
                    false => Forwarded::NeedsKeyframe(layer),
                };
            }
            tracing::debug!(parent: span, %origin, from = ?sub.forwarding, to = %layer, "layer switched");
            sub.forwarding = Some(layer);
            sub.first_forwarded.get_or_insert(packet.arrival);
            if !self.video_started && sub.kind == MediaKind::Video {
                let since = self.video_wanted_since.unwrap_or(self.joined_at);
                let after = packet.arrival.saturating_duration_since(since);
                self.first_video_after = Some(after);
            }
            self.video_started |= sub.kind == MediaKind::Video;
            sub.rewriter.start_source(
                packet.seq,
                packet.rtp_time,
                packet.arrival,
                spec.clock_rate.get(),
            );
            match vp8 {
                Some((_, numbers)) => sub.pictures.start_source(numbers),
                None => sub.pictures.start_unnumbered(),
            }
        }
        let incoming = packet.pt;
        let codecs = self.rtc.codec_config();
        let Some(out) = sub.outgoing_pt(incoming, || outgoing_pt(codecs, params, incoming)) else {
            return Forwarded::Skipped;
        };
        let (pt, payload) = match (out.incoming_red, out.red) {
            (true, Some(red)) if self.send_red => (red, packet.payload.clone()),
            (true, _) => {
                // A tight link, or no RED negotiated: the primary block alone.
                let Some((_, start)) = crate::codec::red_primary(&packet.payload) else {
                    return Forwarded::Skipped;
                };
                (out.pt, Arc::from(&packet.payload[start..]))
            }
            (false, _) => (out.pt, packet.payload.clone()),
        };
        let Some((seq, ts)) = sub
            .rewriter
            .rewrite(packet.seq, packet.rtp_time, packet.arrival)
        else {
            return Forwarded::Skipped;
        };
        let renumbered = vp8.and_then(|(d, n)| vp8_patch(&d, sub.pictures.rewrite(seq, n)?));
        let nackable = sub.kind == MediaKind::Video;
        let resize = match nackable && start_point {
            true => sub.resend_window_change(layer, self.counters.rtt()),
            false => None,
        };
        if let Some(window) = resize {
            tracing::debug!(parent: span, %origin, %layer, ?window, "resend window");
        }
        self.advance_clock(packet.arrival);
        let mut direct = self.rtc.direct_api();
        let Some(tx) = direct.stream_tx(&ssrc) else {
            return Forwarded::Skipped;
        };
        let ext = ExtensionValues {
            audio_level: packet.audio_level,
            voice_activity: packet.voice_activity,
            video_orientation: packet.video_orientation,
            ..Default::default()
        };
        let mut write = RtpWrite::new(pt, seq.into(), ts, packet.arrival, payload)
            .marker(packet.marker)
            .ext_vals(ext)
            .nackable(nackable);
        if let Some(patch) = renumbered {
            write = write.vp8_patch(patch);
        }
        if let Some(window) = resize {
            tx.set_rtx_cache(RESEND_PACKETS, window, RESEND_RATIO_CAP);
        }
        tx.write_rtp(write);
        Forwarded::Sent
    }
}

/// How a publisher's packets of payload type `incoming` go out to a
/// subscriber whose codecs are `codecs`: matched on the codec, not the number
/// (browsers number codecs differently).
fn outgoing_pt(codecs: &CodecConfig, params: &PayloadParams, incoming: Pt) -> Option<OutgoingPt> {
    let matched = codecs.match_params(*params)?;
    let incoming_red = params.red() == Some(incoming);
    Some(OutgoingPt {
        pt: matched.pt(),
        red: matched.red().filter(|_| incoming_red),
        incoming_red,
    })
}

/// Open video subscriptions that wait for the first keyframe of their layer.
pub(super) fn waiting_for_keyframes(
    subs: &[Subscription],
) -> impl Iterator<Item = (ParticipantId, Mid, Layer)> + '_ {
    subs.iter().filter(|s| s.is_open_video()).filter_map(|s| {
        let layer = s.wanted()?;
        (s.forwarding != Some(layer)).then_some((s.origin, s.source_mid, layer))
    })
}
