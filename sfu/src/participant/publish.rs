//! The participant as a publisher: its incoming RTP, which layer each
//! stream is, and keyframe requests to its browser.

use std::time::Instant;

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{RtpPacket, Ssrc, Vp8Descriptor};

use crate::packet::MediaPacket;
use crate::track::LayerStream;
use str0m::Rtc;

use super::{Participant, Polled};
use crate::forward::{vp8_picture_numbers, Layer, PictureNumbers};
use crate::id::ParticipantId;

/// What the publisher's side reads from a packet once, for all its
/// subscribers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learnt {
    /// A subscriber may start here: any audio packet, or the first packet
    /// of a video keyframe.
    pub start_point: bool,
    /// The VP8 picture numbers, when the packet carries them.
    pub vp8: Option<(Vp8Descriptor, PictureNumbers)>,
}

/// Something one participant's session produced that concerns the others.
// Boxing the packet would allocate once per packet on the forwarding path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Propagated {
    /// A new published track: every other participant subscribes to it.
    Published {
        origin: ParticipantId,
        mid: Mid,
        kind: MediaKind,
    },
    /// An RTP packet of a published track.
    Rtp {
        origin: ParticipantId,
        mid: Mid,
        layer: Layer,
        params: PayloadParams,
        learnt: Learnt,
        packet: MediaPacket,
    },
    /// A subscriber wants a keyframe of one layer of a publisher's track.
    KeyframeWanted {
        publisher: ParticipantId,
        mid: Mid,
        layer: Layer,
    },
}

impl Participant {
    pub(super) fn incoming_rtp(&mut self, packet: RtpPacket) -> Polled {
        let Some((index, layer)) = self.find_layer(packet.header.ssrc) else {
            return Polled::Nothing;
        };
        let packet = MediaPacket::from(packet);
        let pt = packet.pt;
        let codecs = self.rtc.codec_config();
        let Some(params) = codecs
            .find(|p| p.pt() == pt || p.red() == Some(pt))
            .copied()
        else {
            return Polled::Nothing;
        };
        let publication = &mut self.publications[index];
        let learnt = receive(
            &mut publication.layers[layer.index()],
            params.spec().codec,
            &packet,
        );
        Polled::Propagate(Propagated::Rtp {
            origin: self.id,
            mid: publication.mid,
            layer,
            params,
            learnt,
            packet,
        })
    }

    /// The publication and layer an incoming SSRC belongs to, learned from
    /// str0m's stream (mid and simulcast rid) on its first packet.
    fn find_layer(&mut self, ssrc: Ssrc) -> Option<(usize, Layer)> {
        for (i, p) in self.publications.iter().enumerate() {
            for layer in Layer::ALL {
                if p.layers[layer.index()].ssrc == Some(ssrc) {
                    return Some((i, layer));
                }
            }
        }
        let mut direct = self.rtc.direct_api();
        let stream = direct.stream_rx(&ssrc)?;
        let (mid, rid) = (stream.mid(), stream.rid());
        let Some(layer) = Layer::from_rid(rid.as_deref()) else {
            tracing::debug!(parent: &self.span, %mid, ?rid, "unknown simulcast rid ignored");
            return None;
        };
        let i = self.publications.iter().position(|p| p.mid == mid)?;
        let stream = &mut self.publications[i].layers[layer.index()];
        if stream.ssrc.is_some() {
            stream.arrivals.new_stream();
        }
        stream.ssrc = Some(ssrc);
        stream.rid = rid;
        self.new_layer_seen = true;
        tracing::debug!(parent: &self.span, %mid, %layer, %ssrc, "incoming layer");
        Some((i, layer))
    }

    /// Asks this participant's browser for a keyframe of one layer of a
    /// published track, coalesced by that layer's throttle.
    pub fn request_keyframe(&mut self, mid: Mid, layer: Layer, now: Instant) {
        let span = &self.span;
        let Some(publication) = self.publications.iter_mut().find(|p| p.mid == mid) else {
            return;
        };
        let stream = &mut publication.layers[layer.index()];
        if stream.keyframes.request(now) {
            tracing::debug!(parent: span, %mid, %layer, "keyframe requested");
            send_pli(&mut self.rtc, mid, stream.rid);
        }
    }

    /// Sends keyframe requests that the throttle deferred; returns the earliest
    /// time one is still waiting for.
    pub fn handle_deferred_keyframes(&mut self, now: Instant) -> Option<Instant> {
        let span = &self.span;
        let mut next: Option<Instant> = None;
        for publication in &mut self.publications {
            for layer in Layer::ALL {
                let stream = &mut publication.layers[layer.index()];
                if stream.keyframes.poll_deferred(now) {
                    tracing::debug!(parent: span, mid = %publication.mid, %layer, "deferred keyframe requested");
                    send_pli(&mut self.rtc, publication.mid, stream.rid);
                }
                if let Some(t) = stream.keyframes.deferred_until() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        next
    }
}

/// Counts a packet of one published stream, local or relayed, and reads
/// once what its subscribers need of it.
pub(crate) fn receive(stream: &mut LayerStream, codec: Codec, packet: &MediaPacket) -> Learnt {
    stream
        .meter
        .record(packet.arrival, packet.size, packet.marker);
    stream.arrivals.record(packet.seq);
    let start_point = !codec.is_video() || crate::track::starts_keyframe(codec, &packet.payload);
    if start_point && codec.is_video() {
        stream.keyframes.keyframe_seen();
    }
    let vp8 = match codec {
        Codec::Vp8 => vp8_picture_numbers(&packet.payload),
        _ => None,
    };
    Learnt { start_point, vp8 }
}

fn send_pli(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) {
    if let Some(stream) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
        stream.request_keyframe(KeyframeRequestKind::Pli);
    }
}
