//! The recording tap: the room's side of a recording. It sits on the
//! forwarding path, so it only chooses and hands over: for each camera, the
//! best layer that is flowing (switching at that layer's keyframe, like a
//! subscriber), and every audio packet. Handing over is a clone of the
//! payload's `Arc` into a bounded channel with pre-allocated slots: no copy,
//! no allocation, no lock; if the recorder falls behind, packets are counted
//! as dropped rather than slowing the call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::Mid;

use crate::forward::Layer;
use crate::id::ParticipantId;
use crate::packet::MediaPacket;

/// A layer counts as flowing if a packet came this recently.
const FLOWING: Duration = Duration::from_secs(1);

/// One packet handed to the recorder.
pub(crate) struct TapPacket {
    pub origin: ParticipantId,
    pub mid: Mid,
    pub video: bool,
    pub layer: Layer,
    pub seq: u64,
    pub rtp_time: u64,
    pub marker: bool,
    pub arrival: Instant,
    /// The payload is RFC 2198 redundant audio; the recorder unwraps it.
    pub red: bool,
    pub payload: Arc<[u8]>,
}

/// What [`RecordingTap::admit`] decides for one packet.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Record,
    Skip,
    /// Not yet: the recording switches to this layer at its next keyframe.
    WaitFor(Layer),
}

struct Camera {
    origin: ParticipantId,
    mid: Mid,
    current: Option<Layer>,
    seen: [Option<Instant>; 3],
    /// Sent in a codec the recording cannot hold (said once, in the log).
    left_out: bool,
}

/// See the module docs.
pub(crate) struct RecordingTap {
    packets: SyncSender<TapPacket>,
    wishes: Receiver<(ParticipantId, Mid)>,
    cameras: Vec<Camera>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RecordingTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingTap")
            .field("cameras", &self.cameras.len())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl RecordingTap {
    pub(crate) fn new(
        packets: SyncSender<TapPacket>,
        wishes: Receiver<(ParticipantId, Mid)>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        RecordingTap {
            packets,
            wishes,
            cameras: Vec::new(),
            dropped,
        }
    }

    /// Offers one forwarded packet; returns a layer of this camera whose
    /// keyframe the recording waits for, if any.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        origin: ParticipantId,
        mid: Mid,
        layer: Layer,
        params: &PayloadParams,
        start_point: bool,
        packet: &MediaPacket,
    ) -> Option<Layer> {
        let codec = params.spec().codec;
        match self.admit(now, origin, mid, layer, codec, start_point) {
            Admit::Skip => None,
            Admit::WaitFor(layer) => Some(layer),
            Admit::Record => {
                self.hand_over(TapPacket {
                    origin,
                    mid,
                    video: codec.is_video(),
                    layer,
                    seq: packet.seq,
                    rtp_time: packet.media_time,
                    marker: packet.marker,
                    arrival: packet.arrival,
                    red: params.red() == Some(packet.pt),
                    payload: packet.payload.clone(),
                });
                None
            }
        }
    }

    /// Whether a packet of `codec` on `origin`'s track `mid`, `layer`, goes
    /// to the recorder: all audio; for each camera only its best flowing
    /// layer, switched to at a `start_point` (a keyframe).
    fn admit(
        &mut self,
        now: Instant,
        origin: ParticipantId,
        mid: Mid,
        layer: Layer,
        codec: Codec,
        start_point: bool,
    ) -> Admit {
        if !codec.is_video() {
            return Admit::Record;
        }
        let at = match self
            .cameras
            .iter()
            .position(|c| c.origin == origin && c.mid == mid)
        {
            Some(at) => at,
            None => {
                self.cameras.push(Camera {
                    origin,
                    mid,
                    current: None,
                    seen: [None; 3],
                    left_out: false,
                });
                self.cameras.len() - 1
            }
        };
        let camera = &mut self.cameras[at];
        if codec != Codec::Vp8 {
            // The WebM written here carries VP8 only (docs/decisions.md,
            // "Video codec: VP8 first"); the SFU's answers make every
            // browser that can send VP8 send it.
            if !camera.left_out {
                camera.left_out = true;
                tracing::warn!(participant = %origin, ?codec, "camera left out of the recording: only VP8 video is recorded");
            }
            return Admit::Skip;
        }
        camera.seen[layer.index()] = Some(now);
        if camera.current == Some(layer) {
            return Admit::Record;
        }
        let best = Layer::ALL
            .into_iter()
            .rev()
            .find(|l| camera.seen[l.index()].is_some_and(|t| now.duration_since(t) < FLOWING));
        if best != Some(layer) {
            Admit::Skip
        } else if !start_point {
            Admit::WaitFor(layer)
        } else {
            camera.current = Some(layer);
            Admit::Record
        }
    }

    /// Hands a packet to the recorder without waiting: counted as dropped
    /// if the recorder's queue is full.
    fn hand_over(&self, packet: TapPacket) {
        if let Err(TrySendError::Full(_)) = self.packets.try_send(packet) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keyframes the recorder asked for since the last call: (camera owner,
    /// track, the layer being recorded).
    pub(crate) fn keyframe_wishes(&mut self, mut wish: impl FnMut(ParticipantId, Mid, Layer)) {
        while let Ok((origin, mid)) = self.wishes.try_recv() {
            if let Some(c) = self
                .cameras
                .iter()
                .find(|c| c.origin == origin && c.mid == mid)
            {
                if let Some(layer) = c.current {
                    wish(origin, mid, layer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, sync_channel};

    use super::*;

    fn tap(slots: usize) -> (RecordingTap, Receiver<TapPacket>, Arc<AtomicU64>) {
        let (packets, recorder) = sync_channel(slots);
        let (_, wishes) = channel();
        let dropped = Arc::new(AtomicU64::new(0));
        (
            RecordingTap::new(packets, wishes, dropped.clone()),
            recorder,
            dropped,
        )
    }

    fn packet(seq: u64) -> TapPacket {
        TapPacket {
            origin: ParticipantId(1),
            mid: Mid::from("1"),
            video: true,
            layer: Layer::FULL,
            seq,
            rtp_time: 0,
            marker: false,
            arrival: Instant::now(),
            red: false,
            payload: Arc::from(&[0u8; 4][..]),
        }
    }

    #[test]
    fn the_best_flowing_layer_is_recorded_from_its_keyframe() {
        let (mut tap, _rx, _) = tap(8);
        let (p, mid, t0) = (ParticipantId(1), Mid::from("1"), Instant::now());
        let mut admit = |at: u64, layer, key| {
            tap.admit(
                t0 + Duration::from_millis(at),
                p,
                mid,
                layer,
                Codec::Vp8,
                key,
            )
        };
        // The small layer alone: waited for until its keyframe, then kept.
        assert_eq!(
            admit(0, Layer::QUARTER, false),
            Admit::WaitFor(Layer::QUARTER)
        );
        assert_eq!(admit(10, Layer::QUARTER, true), Admit::Record);
        assert_eq!(admit(20, Layer::QUARTER, false), Admit::Record);
        // The full layer appears: the small one goes on until its keyframe.
        assert_eq!(admit(30, Layer::FULL, false), Admit::WaitFor(Layer::FULL));
        assert_eq!(admit(40, Layer::QUARTER, false), Admit::Record);
        assert_eq!(admit(50, Layer::FULL, true), Admit::Record);
        assert_eq!(admit(60, Layer::QUARTER, false), Admit::Skip);
        // The full layer stops for a second: the small one is best again.
        assert_eq!(admit(1100, Layer::QUARTER, true), Admit::Record);
        assert_eq!(admit(1110, Layer::FULL, false), Admit::WaitFor(Layer::FULL));
    }

    #[test]
    fn audio_is_always_recorded_and_video_other_than_vp8_never() {
        let (mut tap, _rx, _) = tap(8);
        let (p, t0) = (ParticipantId(1), Instant::now());
        let audio = tap.admit(t0, p, Mid::from("0"), Layer::FULL, Codec::Opus, false);
        assert_eq!(audio, Admit::Record);
        let h264 = tap.admit(t0, p, Mid::from("1"), Layer::FULL, Codec::H264, true);
        assert_eq!(h264, Admit::Skip);
    }

    #[test]
    fn a_full_queue_counts_packets_as_dropped_without_waiting() {
        let (tap, rx, dropped) = tap(2);
        for seq in 0..5 {
            tap.hand_over(packet(seq));
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        let kept: Vec<u64> = rx.try_iter().map(|p| p.seq).collect();
        assert_eq!(kept, [0, 1]);
    }
}
