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
use str0m::rtp::RtpPacket;

use crate::forward::Layer;
use crate::id::ParticipantId;

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

struct Camera {
    origin: ParticipantId,
    mid: Mid,
    current: Option<Layer>,
    seen: [Option<Instant>; 3],
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
        packet: &RtpPacket,
    ) -> Option<Layer> {
        let codec = params.spec().codec;
        let video = codec.is_video();
        if video && codec != Codec::Vp8 {
            return None; // WebM carries VP8 here; other codecs are not recorded.
        }
        if video {
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
                    });
                    self.cameras.len() - 1
                }
            };
            let camera = &mut self.cameras[at];
            camera.seen[layer.index()] = Some(now);
            let best = Layer::ALL
                .into_iter()
                .rev()
                .find(|l| camera.seen[l.index()].is_some_and(|t| now.duration_since(t) < FLOWING));
            if camera.current != Some(layer) {
                if best != Some(layer) {
                    return None;
                }
                if !start_point {
                    return Some(layer);
                }
                camera.current = Some(layer);
            }
        }
        let red = params.red() == Some(packet.header.payload_type);
        let sent = self.packets.try_send(TapPacket {
            origin,
            mid,
            video,
            layer,
            seq: *packet.seq_no,
            rtp_time: packet.time.numer(),
            marker: packet.header.marker,
            arrival: packet.timestamp,
            red,
            payload: packet.payload.clone(),
        });
        if let Err(TrySendError::Full(_)) = sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        None
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
