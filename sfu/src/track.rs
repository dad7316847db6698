//! What a participant publishes and what it receives from others.
//!
//! A subscription's life is an enum carrying its data, so an outgoing track that
//! is still being negotiated cannot be written to by mistake.

use str0m::format::{Codec, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;

use crate::forward::SeqRewriter;
use crate::id::ParticipantId;
use crate::keyframe::KeyframeThrottle;

/// A track a participant sends to the SFU.
#[derive(Debug)]
pub(crate) struct Publication {
    pub mid: Mid,
    pub kind: MediaKind,
    /// The incoming SSRC, learned from the first packet.
    pub ssrc: Option<Ssrc>,
    pub keyframes: KeyframeThrottle,
}

/// Where one outgoing copy of another participant's track stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriptionState {
    /// Wanted, not yet in an SDP offer.
    ToOpen,
    /// Offered to the browser; waiting for its answer.
    Negotiating(Mid),
    /// Negotiated: packets flow on this SSRC.
    Open { mid: Mid, ssrc: Ssrc },
    /// The publisher left; the m-line must be stopped in the next offer.
    ToStop(Mid),
    /// Stop offered; removed when the answer arrives.
    NegotiatingStop(Mid),
}

/// One participant's copy of another participant's track.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub origin: ParticipantId,
    pub source_mid: Mid,
    pub kind: MediaKind,
    pub state: SubscriptionState,
    /// Video only starts at a keyframe: delta frames before it cannot be decoded.
    pub awaiting_keyframe: bool,
    pub seq: SeqRewriter,
    /// Publisher PT to this subscriber's PT, learned per codec (browsers number
    /// codecs differently, e.g. VP8 is 96 in Chromium and 120 in Firefox).
    pt_map: [(Pt, Pt); 4],
    pt_len: usize,
}

impl Subscription {
    pub fn new(origin: ParticipantId, source_mid: Mid, kind: MediaKind) -> Self {
        Subscription {
            origin,
            source_mid,
            kind,
            state: SubscriptionState::ToOpen,
            awaiting_keyframe: kind == MediaKind::Video,
            seq: SeqRewriter::default(),
            pt_map: [(Pt::from(0), Pt::from(0)); 4],
            pt_len: 0,
        }
    }

    /// The outgoing mid, once one has been negotiated.
    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            SubscriptionState::ToOpen => None,
            SubscriptionState::Negotiating(m)
            | SubscriptionState::Open { mid: m, .. }
            | SubscriptionState::ToStop(m)
            | SubscriptionState::NegotiatingStop(m) => Some(m),
        }
    }

    /// This subscriber's PT for the publisher's codec, matched once and cached.
    pub fn outgoing_pt(
        &mut self,
        params: &PayloadParams,
        lookup: impl FnOnce(&PayloadParams) -> Option<Pt>,
    ) -> Option<Pt> {
        let incoming = params.pt();
        if let Some((_, out)) = self.pt_map[..self.pt_len]
            .iter()
            .find(|(i, _)| *i == incoming)
        {
            return Some(*out);
        }
        let out = lookup(params)?;
        if self.pt_len < self.pt_map.len() {
            self.pt_map[self.pt_len] = (incoming, out);
            self.pt_len += 1;
        }
        Some(out)
    }
}

/// True when `payload` starts a keyframe of `codec`. Codecs we cannot parse are
/// treated as always startable rather than never (a frozen tile is worse than a
/// briefly corrupt one).
pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => crate::codec::vp8_keyframe_start(payload),
        Codec::H264 => crate::codec::h264_keyframe_start(payload),
        _ => true,
    }
}
