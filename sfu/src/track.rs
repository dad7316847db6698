//! What a participant publishes and what it receives from others.
//!
//! A subscription's life is an enum carrying its data, so an outgoing track that
//! is still being negotiated cannot be written to by mistake.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::Ssrc;

use crate::forward::{
    resend_window, Layer, LayerSelector, PictureRewriter, StreamRewriter, LAYER_COUNT,
    SHORTEST_WINDOW,
};
use crate::id::ParticipantId;
use crate::keyframe::KeyframeThrottle;

/// A track a participant sends to the SFU: one RTP stream, or one per
/// simulcast layer.
#[derive(Debug)]
pub(crate) struct Publication {
    pub mid: Mid,
    pub kind: MediaKind,
    pub layers: [LayerStream; LAYER_COUNT],
}

impl Publication {
    pub fn new(mid: Mid, kind: MediaKind) -> Self {
        Publication {
            mid,
            kind,
            layers: Default::default(),
        }
    }

    /// Each layer's bitrate now, `None` for a layer not being received. A
    /// video layer above a flowing one that delivers under
    /// [`MIN_LAYER_FPS`] counts as not received: its publisher's encoder is
    /// starved (thin upload or busy CPU), and a viewer switched to it would
    /// see a still picture while the lower layer moves.
    pub fn layer_rates(&self, now: Instant) -> [Option<u64>; LAYER_COUNT] {
        let mut rates: [Option<u64>; LAYER_COUNT] =
            std::array::from_fn(|i| self.layers[i].meter.rate(now, Layer::ALL[i]));
        if self.kind == MediaKind::Video {
            for i in 1..LAYER_COUNT {
                let lower_flows = rates[..i].iter().any(Option::is_some);
                if lower_flows && self.layers[i].meter.starved() {
                    rates[i] = None;
                }
            }
        }
        rates
    }
}

/// One incoming RTP stream of a publication.
#[derive(Debug, Default)]
pub(crate) struct LayerStream {
    /// Learned from the first packet.
    pub ssrc: Option<Ssrc>,
    /// The simulcast rid it came with, to address keyframe requests.
    pub rid: Option<Rid>,
    pub keyframes: KeyframeThrottle,
    pub meter: RateMeter,
    pub arrivals: Arrivals,
}

/// An incoming stream's packets as the network delivered them, before any
/// repair: a packet counts only if it arrived in order (its sequence number
/// above every one before it). A packet lost and then retransmitted, or
/// arriving after a later one, counts as lost, as it would for the call's
/// sound, which is never repaired. Arithmetic only: per-packet path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrivals {
    first: Option<u64>,
    highest: u64,
    in_order: u64,
    /// Runs of consecutive sequence numbers missing when a later one came:
    /// lost / runs is the mean run length, about 1 for random loss, more
    /// for a link that drops out now and then.
    runs: u64,
    /// What earlier streams of this layer counted (a new SSRC starts its
    /// own sequence numbers).
    earlier_expected: u64,
    earlier_in_order: u64,
}

impl Arrivals {
    /// Counts a packet with extended sequence number `seq`.
    pub fn record(&mut self, seq: u64) {
        match self.first {
            None => {
                self.first = Some(seq);
                self.highest = seq;
                self.in_order = 1;
            }
            Some(_) if seq > self.highest => {
                if seq > self.highest + 1 {
                    self.runs += 1;
                }
                self.highest = seq;
                self.in_order += 1;
            }
            Some(_) => {}
        }
    }

    /// The layer came back with another SSRC: keeps what was counted and
    /// starts again from the new stream's first packet.
    pub fn new_stream(&mut self) {
        self.earlier_expected = self.expected();
        self.earlier_in_order += self.in_order;
        *self = Arrivals {
            earlier_expected: self.earlier_expected,
            earlier_in_order: self.earlier_in_order,
            runs: self.runs,
            ..Arrivals::default()
        };
    }

    /// Packets sent from the first seen to the highest.
    pub fn expected(&self) -> u64 {
        self.earlier_expected + self.first.map_or(0, |f| self.highest - f + 1)
    }

    /// Of them, not there when they were due.
    pub fn lost(&self) -> u64 {
        self.expected() - self.earlier_in_order - self.in_order
    }

    /// Runs of missing packets among the lost (see `runs`).
    pub fn loss_runs(&self) -> u64 {
        self.runs
    }
}

/// A layer's bitrate and frame rate, measured over half-second windows and
/// smoothed.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    frames: u32,
    smoothed: Option<u64>,
    /// Frames per second × 100, smoothed.
    fps_x100: Option<u32>,
    last_packet: Option<Instant>,
}

/// Frames per second under which an upper video layer counts as starved. A
/// healthy layer runs at the camera's rate (15-30 fps); a starved one was
/// seen at 0.3 fps on an 800 kbit/s upload.
pub(crate) const MIN_LAYER_FPS: u32 = 3;

/// How long one measurement window lasts.
const RATE_WINDOW: Duration = Duration::from_millis(500);

/// A layer with no packet for this long is taken as stopped (the publisher's
/// encoder dropped it for lack of upload bandwidth or CPU, or was told to).
const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);

impl RateMeter {
    /// Counts one packet; `frame_end` is its RTP marker bit (the last packet
    /// of a video frame). Arithmetic only: this is on the per-packet path.
    pub fn record(&mut self, at: Instant, bytes: usize, frame_end: bool) {
        let start = *self.window_start.get_or_insert(at);
        let elapsed = at.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let micros = elapsed.as_micros().max(1) as u64;
            let sample = self.bytes * 8 * 1_000_000 / micros;
            self.smoothed = Some(self.smoothed.map_or(sample, |r| (r * 3 + sample) / 4));
            let fps = (u64::from(self.frames) * 100 * 1_000_000 / micros) as u32;
            self.fps_x100 = Some(self.fps_x100.map_or(fps, |f| (f * 3 + fps) / 4));
            self.window_start = Some(at);
            self.bytes = 0;
            self.frames = 0;
        }
        self.bytes += bytes as u64;
        self.frames += u32::from(frame_end);
        self.last_packet = Some(at);
    }

    /// Whether the stream, measured for at least one window, delivers fewer
    /// than [`MIN_LAYER_FPS`] frames per second.
    pub fn starved(&self) -> bool {
        self.fps_x100.is_some_and(|f| f < MIN_LAYER_FPS * 100)
    }

    /// The bitrate, or `None` when the stream has stopped. Before the first
    /// window closes, the layer's nominal rate stands in.
    pub fn rate(&self, now: Instant, layer: Layer) -> Option<u64> {
        let last = self.last_packet?;
        if now.saturating_duration_since(last) > LAYER_TIMEOUT {
            return None;
        }
        Some(self.smoothed.unwrap_or_else(|| nominal_rate(layer)))
    }
}

/// The bitrate the browser client asks its encoder for, per layer (see
/// `docs/adaptation.md` and `client/call.js`).
pub(crate) fn nominal_rate(layer: Layer) -> u64 {
    [150_000, 500_000, 1_500_000][layer.index()]
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
    /// The height in device pixels at which the subscriber shows this video,
    /// when it has said.
    pub view_height: Option<u32>,
    pub selector: LayerSelector,
    /// The layer this viewer would take if the publisher sent every layer
    /// (tile size and budget alone): tells the publisher what to encode.
    pub wish: Option<Layer>,
    /// The layer whose packets are being forwarded now. Switching starts only
    /// at a keyframe of the new layer: its delta frames are undecodable alone.
    pub forwarding: Option<Layer>,
    /// When the first picture of this video was forwarded.
    pub first_forwarded: Option<Instant>,
    pub rewriter: StreamRewriter,
    /// VP8 picture numbering, continuous across layer switches like `rewriter`.
    pub pictures: PictureRewriter,
    /// How long the send stream keeps video packets for resending now.
    resend_window: Option<Duration>,
    /// Publisher PT to this subscriber's PT, learned per codec (browsers number
    /// codecs differently, e.g. VP8 is 96 in Chromium and 120 in Firefox).
    pt_map: [(Pt, OutgoingPt); 6],
    pt_len: usize,
}

impl Subscription {
    pub fn new(origin: ParticipantId, source_mid: Mid, kind: MediaKind) -> Self {
        Subscription {
            origin,
            source_mid,
            kind,
            state: SubscriptionState::ToOpen,
            view_height: None,
            selector: LayerSelector::default(),
            wish: None,
            forwarding: None,
            first_forwarded: None,
            rewriter: StreamRewriter::default(),
            pictures: PictureRewriter::default(),
            resend_window: None,
            pt_map: [(
                Pt::from(0),
                OutgoingPt {
                    pt: Pt::from(0),
                    red: None,
                    incoming_red: false,
                },
            ); 6],
            pt_len: 0,
        }
    }

    /// The send stream `ssrc` on `mid` is negotiated; str0m opened it with
    /// [`SHORTEST_WINDOW`] for resending.
    pub fn open(&mut self, mid: Mid, ssrc: Ssrc) {
        self.state = SubscriptionState::Open { mid, ssrc };
        self.resend_window = Some(SHORTEST_WINDOW);
    }

    /// The resend window for a keyframe of `layer` about to be sent over a
    /// round trip of `rtt`, when it differs from the stream's window now
    /// (see [`resend_window`]). Resizing empties the stream's cache, which
    /// a keyframe makes harmless.
    pub fn resend_window_change(
        &mut self,
        layer: Layer,
        rtt: Option<Duration>,
    ) -> Option<Duration> {
        let window = resend_window(layer, self.wanted(), rtt);
        (self.resend_window != Some(window)).then(|| {
            self.resend_window = Some(window);
            window
        })
    }

    /// A negotiated video subscription: the ones layers are chosen for.
    pub fn is_open_video(&self) -> bool {
        self.kind == MediaKind::Video && matches!(self.state, SubscriptionState::Open { .. })
    }

    /// The layer this subscriber should get: audio is one stream; video follows
    /// the selector (`None` while paused or not yet decided).
    pub fn wanted(&self) -> Option<Layer> {
        match self.kind {
            MediaKind::Audio => Some(Layer::FULL),
            MediaKind::Video => self.selector.target(),
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

    /// This subscriber's PT for an incoming PT, matched once and cached.
    pub fn outgoing_pt(
        &mut self,
        incoming: Pt,
        lookup: impl FnOnce() -> Option<OutgoingPt>,
    ) -> Option<OutgoingPt> {
        if let Some((_, out)) = self.pt_map[..self.pt_len]
            .iter()
            .find(|(i, _)| *i == incoming)
        {
            return Some(*out);
        }
        let out = lookup()?;
        if self.pt_len < self.pt_map.len() {
            self.pt_map[self.pt_len] = (incoming, out);
            self.pt_len += 1;
        }
        Some(out)
    }
}

/// How a publisher's packets of one payload type go out to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutgoingPt {
    /// The subscriber's number for the codec (for redundant audio: for the
    /// primary codec, used when the packet goes out unwrapped).
    pub pt: Pt,
    /// For redundant audio (RED): the subscriber's RED number, if it
    /// negotiated RED.
    pub red: Option<Pt>,
    /// The incoming packets are redundant audio.
    pub incoming_red: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_count_gaps_and_late_packets_as_lost() {
        let mut a = Arrivals::default();
        assert_eq!((a.expected(), a.lost()), (0, 0));
        // 100..=109 with 103 missing, 106 late (after 107), 103 repaired.
        for seq in [100, 101, 102, 104, 105, 107, 106, 108, 103, 109] {
            a.record(seq);
        }
        assert_eq!((a.expected(), a.lost(), a.loss_runs()), (10, 2, 2));
        // The layer restarts with another SSRC, numbered from far below.
        a.new_stream();
        for seq in [7, 8, 10] {
            a.record(seq);
        }
        assert_eq!((a.expected(), a.lost(), a.loss_runs()), (14, 3, 3));
        // A run of five missing is one run.
        for seq in [11, 17, 18] {
            a.record(seq);
        }
        assert_eq!((a.lost(), a.loss_runs()), (8, 4));
    }

    /// Feeds `layer` for 3 s: `fps` frames a second of 10 packets each.
    fn feed(p: &mut Publication, t0: Instant, layer: Layer, fps: u32) {
        let meter = &mut p.layers[layer.index()].meter;
        let frames = 3 * fps;
        for f in 0..frames {
            let at = t0 + Duration::from_millis(u64::from(f) * 1000 / u64::from(fps));
            for k in 0..10 {
                meter.record(at + Duration::from_micros(k * 100), 1000, k == 9);
            }
        }
        // A packet now and then keeps a starved layer alive, without frames.
        for ms in (0..3000).step_by(100) {
            meter.record(t0 + Duration::from_millis(ms), 200, false);
        }
    }

    #[test]
    fn a_starved_upper_layer_counts_as_not_received() {
        let t0 = Instant::now();
        let mut p = Publication::new(Mid::from("0"), MediaKind::Video);
        feed(&mut p, t0, Layer::QUARTER, 30);
        feed(&mut p, t0, Layer::HALF, 30);
        feed(&mut p, t0, Layer::FULL, 1);
        let now = t0 + Duration::from_millis(3000);
        let rates = p.layer_rates(now);
        assert!(rates[0].is_some() && rates[1].is_some(), "{rates:?}");
        assert_eq!(rates[2], None, "1 fps at 720p is not a layer to switch to");
        assert!(
            p.layers[2].meter.rate(now, Layer::FULL).is_some(),
            "still flowing"
        );
    }

    #[test]
    fn the_lowest_flowing_layer_stays_however_slow() {
        let t0 = Instant::now();
        let mut p = Publication::new(Mid::from("0"), MediaKind::Video);
        // A camera without simulcast, at 1 fps: still the only picture.
        feed(&mut p, t0, Layer::FULL, 1);
        let rates = p.layer_rates(t0 + Duration::from_millis(3000));
        assert!(p.layers[2].meter.starved());
        assert!(rates[2].is_some(), "{rates:?}");
    }
}
