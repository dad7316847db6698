//! Turns one VP8 RTP stream back into whole frames for the recording file
//! (RFC 7741). Packets may arrive out of order (retransmissions come late);
//! a frame is written only once all its packets are here, and after a frame
//! is given up for lost nothing is written until the next keyframe, so the
//! file never holds a frame that refers to a missing one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a missing packet is waited for (a retransmission round trip or two).
const WAIT_FOR_MISSING: Duration = Duration::from_millis(400);

/// One packet of the stream, as the recorder keeps it.
struct Held {
    rtp_time: u64,
    arrival: Instant,
    marker: bool,
    starts_frame: bool,
    keyframe: bool,
    payload: Arc<[u8]>,
    data_at: usize,
}

/// A complete VP8 frame.
#[derive(Debug, PartialEq)]
pub struct Frame {
    /// RTP time of the frame, in 90 kHz ticks (extended, never wraps).
    pub rtp_time: u64,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// Decodable on its own.
    pub keyframe: bool,
    /// The frame's size, read from a keyframe's header.
    pub size: Option<(u16, u16)>,
    /// The VP8 bitstream.
    pub data: Vec<u8>,
}

/// Reassembles frames; see the module docs.
#[derive(Default)]
pub struct Vp8Assembler {
    held: BTreeMap<u64, Held>,
    /// The sequence number the next frame starts at, once in step.
    next: Option<u64>,
    /// Frames were lost: wait for a keyframe.
    broken: bool,
}

/// Where a VP8 payload's frame data starts, whether it starts a frame, and
/// whether that frame is a keyframe; `None` when malformed.
fn descriptor(payload: &[u8]) -> Option<(usize, bool, bool)> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            at += if *payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    let starts = first & 0x10 != 0 && first & 0x07 == 0;
    let keyframe = starts && payload.get(at)? & 0x01 == 0;
    (at < payload.len()).then_some((at, starts, keyframe))
}

/// A keyframe's width and height (RFC 6386 §9.1), scaling bits dropped.
fn keyframe_size(data: &[u8]) -> Option<(u16, u16)> {
    if data.get(3..6)? != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let w = u16::from_le_bytes([*data.get(6)?, *data.get(7)?]) & 0x3FFF;
    let h = u16::from_le_bytes([*data.get(8)?, *data.get(9)?]) & 0x3FFF;
    Some((w, h))
}

impl Vp8Assembler {
    /// A fresh stream: nothing is written before its first keyframe.
    pub fn new() -> Self {
        Vp8Assembler {
            broken: true,
            ..Default::default()
        }
    }

    /// True while frames are being dropped until a keyframe arrives: the
    /// recorder should ask the publisher for one.
    pub fn wants_keyframe(&self) -> bool {
        self.broken
    }

    /// Takes one packet. Garbage is ignored.
    pub fn push(
        &mut self,
        seq: u64,
        rtp_time: u64,
        marker: bool,
        arrival: Instant,
        payload: Arc<[u8]>,
    ) {
        let Some((data_at, starts_frame, keyframe)) = descriptor(&payload) else {
            return;
        };
        if self.next.is_some_and(|next| seq < next) || self.held.len() > 4096 {
            return; // already written or given up, or a flood
        }
        self.held.insert(
            seq,
            Held {
                rtp_time,
                arrival,
                marker,
                starts_frame,
                keyframe,
                payload,
                data_at,
            },
        );
    }

    /// The next complete frame, if one is ready at `now`.
    pub fn pop(&mut self, now: Instant) -> Option<Frame> {
        loop {
            if self.broken {
                // Start on the first keyframe held; drop what comes before it.
                let Some((&start, _)) = self.held.iter().find(|(_, h)| h.keyframe) else {
                    self.held
                        .retain(|_, h| now.duration_since(h.arrival) < WAIT_FOR_MISSING);
                    return None;
                };
                self.held = self.held.split_off(&start);
                self.next = Some(start);
                self.broken = false;
            }
            let next = self.next?;
            match self.complete_frame_at(next) {
                Some(end) => return Some(self.take_frame(next, end)),
                None => {
                    let oldest = self.held.values().map(|h| h.arrival).min()?;
                    if now.duration_since(oldest) < WAIT_FOR_MISSING {
                        return None;
                    }
                    // Given up: what is held cannot be decoded without what
                    // is lost, so drop the stuck frame and wait for a keyframe.
                    self.drop_frame_at(next);
                    self.broken = true;
                }
            }
        }
    }

    /// Drops the packets held for the frame at `start`: everything before
    /// the next frame start. Each give-up so removes what it gave up on, and
    /// the search for a keyframe cannot find the same stuck one again.
    fn drop_frame_at(&mut self, start: u64) {
        let next_start = self
            .held
            .range(start + 1..)
            .find(|(_, h)| h.starts_frame)
            .map(|(&seq, _)| seq);
        self.held = match next_start {
            Some(seq) => self.held.split_off(&seq),
            None => BTreeMap::new(),
        };
    }

    /// If the frame starting at `start` is all here, the sequence number of its last packet.
    fn complete_frame_at(&self, start: u64) -> Option<u64> {
        let first = self.held.get(&start)?;
        if !first.starts_frame {
            return None;
        }
        let mut seq = start;
        loop {
            let h = self.held.get(&seq)?;
            if h.rtp_time != first.rtp_time {
                return None;
            }
            if h.marker {
                return Some(seq);
            }
            seq += 1;
        }
    }

    fn take_frame(&mut self, start: u64, end: u64) -> Frame {
        let mut data = Vec::new();
        let mut first = None;
        for seq in start..=end {
            let h = self.held.remove(&seq).expect("checked complete");
            data.extend_from_slice(&h.payload[h.data_at..]);
            first.get_or_insert((h.rtp_time, h.arrival, h.keyframe));
        }
        let (rtp_time, arrival, keyframe) = first.expect("at least one packet");
        self.next = Some(end + 1);
        let size = keyframe.then(|| keyframe_size(&data)).flatten();
        Frame {
            rtp_time,
            arrival,
            keyframe,
            size,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `vp8_recording` fuzz target (`fuzz/artifacts`): a
    /// keyframe cut off right after its start code read past its end and
    /// ended the recording.
    #[test]
    fn a_keyframe_cut_after_its_start_code_has_no_size() {
        assert_eq!(keyframe_size(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]), None);
        assert_eq!(
            keyframe_size(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 7]),
            None
        );
        assert_eq!(
            keyframe_size(&[0, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]),
            Some((640, 360))
        );
        // The fuzzer's input: one packet, a whole frame of 6 bytes.
        let mut a = Vp8Assembler::new();
        let t0 = Instant::now();
        let payload: Arc<[u8]> = [16u8, 0, 2, 104, 157, 1, 42][..].into();
        a.push(0, 0, true, t0, payload);
        let frame = a
            .pop(t0 + std::time::Duration::from_secs(5))
            .expect("a frame");
        assert!(frame.keyframe);
        assert_eq!(frame.size, None);
    }

    /// A one-byte descriptor (S set for a frame start) and a VP8 frame tag.
    fn packet(start: bool, key: bool, body: u8) -> Arc<[u8]> {
        let descriptor = if start { 0x10 } else { 0x00 };
        let tag = if key { 0x00 } else { 0x01 };
        Arc::from(vec![descriptor, tag, body, body])
    }

    #[test]
    fn frames_wait_for_late_packets_and_loss_waits_for_a_keyframe() {
        let t0 = Instant::now();
        let mut a = Vp8Assembler::new();
        // A delta frame before any keyframe is not written.
        a.push(1, 0, true, t0, packet(true, false, 1));
        assert_eq!(a.pop(t0), None);
        assert!(a.wants_keyframe());
        // A keyframe in two packets, the second arriving first.
        a.push(3, 3000, true, t0, packet(false, false, 3));
        a.push(2, 3000, false, t0, packet(true, true, 2));
        let key = a.pop(t0).unwrap();
        assert!(key.keyframe);
        assert_eq!(key.data, [0x00, 2, 2, 0x01, 3, 3]);
        // Seq 4 is lost; 5 is the next frame. It waits, then is dropped.
        a.push(5, 9000, true, t0, packet(true, false, 5));
        assert_eq!(a.pop(t0 + Duration::from_millis(100)), None);
        assert_eq!(a.pop(t0 + Duration::from_millis(500)), None);
        assert!(a.wants_keyframe());
        // The next keyframe puts it back in step.
        a.push(6, 12000, true, t0, packet(true, true, 6));
        assert!(a.pop(t0 + Duration::from_millis(500)).unwrap().keyframe);
        assert!(!a.wants_keyframe());
    }

    #[test]
    fn a_keyframe_missing_a_packet_for_good_is_given_up_once() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(500);
        let mut a = Vp8Assembler::new();
        // A keyframe whose second packet (seq 11) never comes; before the
        // fix, pop() went back to this same keyframe forever.
        a.push(10, 3000, false, t0, packet(true, true, 10));
        a.push(12, 3000, true, t0, packet(false, false, 12));
        assert_eq!(a.pop(t0), None);
        assert_eq!(a.pop(later), None);
        assert!(a.wants_keyframe());
        // Delta frames after it are not written; the next keyframe is.
        a.push(13, 6000, true, later, packet(true, false, 13));
        a.push(14, 9000, true, later, packet(true, true, 14));
        let key = a.pop(later).unwrap();
        assert!(key.keyframe);
        assert_eq!(key.rtp_time, 9000);
        assert_eq!(a.pop(later), None);
    }
}
