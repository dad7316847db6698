//! The media a load peer publishes: a real VP8 clip in the three simulcast
//! layers a browser sends (`clip/cam180.ivf`, `cam360.ivf`, `cam720.ivf`,
//! 2 s at 25 frames/s, made once by `clip/make.sh`) and 2 s of Opus encoded
//! by libopus at start from a synthetic voice, both looped with rewritten
//! sequence numbers, timestamps and picture ids. Every packet stays
//! decodable, so nothing in the payload can say who sent it or when: each
//! packet is known by a fingerprint of its bytes instead, and the sender's
//! [`SendLog`] says when it last went out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// The camera clip's layers as ffmpeg wrote them, lowest first, with the
/// RTP stream id (rid) a browser gives each (see `signalling/client/call.js`).
const CAMERA: [(&str, &[u8]); 3] = [
    ("q", include_bytes!("../clip/cam180.ivf")),
    ("h", include_bytes!("../clip/cam360.ivf")),
    ("f", include_bytes!("../clip/cam720.ivf")),
];

/// Layers of the camera clip.
pub const LAYERS: usize = CAMERA.len();

/// A participant's streams: audio, then each video layer.
pub const STREAMS: usize = 1 + LAYERS;

/// The top layer's index in [`Clip::layers`]: what a peer publishing one
/// layer sends.
pub const TOP: usize = LAYERS - 1;

/// Most codec bytes in one VP8 packet (a browser keeps RTP under ~1200 bytes).
const VIDEO_CHUNK: usize = 1100;

/// Opus packets in one loop: 2 s of 20 ms frames, as long as the camera's.
const AUDIO_PACKETS: usize = 100;

/// One VP8 frame, cut into packet payloads without their descriptor.
pub struct Frame {
    /// A keyframe: a subscriber can start here.
    pub key: bool,
    /// The codec bytes of each packet.
    pub chunks: Vec<Bytes>,
    /// This frame's first packet's place among its layer's packets.
    pub first: usize,
}

/// Which packet of the loop a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Video (else audio).
    pub video: bool,
    /// Its video layer, an index in [`Clip::layers`] (0 for audio).
    pub layer: usize,
    /// Its place among the loop's packets of its stream.
    pub index: usize,
}

impl Slot {
    /// Packet `index` of the audio loop.
    pub fn audio(index: usize) -> Slot {
        Slot {
            video: false,
            layer: 0,
            index,
        }
    }

    /// Packet `index` of video layer `layer`'s loop.
    pub fn video(layer: usize, index: usize) -> Slot {
        Slot {
            video: true,
            layer,
            index,
        }
    }
}

/// One simulcast layer of the camera clip.
pub struct Layer {
    /// Its RTP stream id.
    pub rid: &'static str,
    /// Its height in pixels: a tile this tall is sent this layer.
    pub height: u32,
    /// 25 frames a second; the first is a keyframe.
    pub frames: Vec<Frame>,
    /// Its packets in one loop.
    pub packets: usize,
}

/// The loop every load peer sends.
pub struct Clip {
    /// One Opus packet per 20 ms.
    pub audio: Vec<Bytes>,
    /// The camera's layers, lowest first; each has the same frames.
    pub layers: Vec<Layer>,
    /// Fingerprint to packet.
    slots: HashMap<u64, Slot>,
}

/// The clip, read and encoded once per process.
pub fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(Clip::load)
}

impl Clip {
    fn load() -> Clip {
        let layers: Vec<Layer> = CAMERA
            .iter()
            .map(|(rid, ivf)| Layer::load(rid, ivf))
            .collect();
        let frames = layers[0].frames.len();
        assert!(
            layers.iter().all(|l| l.frames.len() == frames),
            "the clip's layers must have the same frames"
        );
        let audio = voice();
        let mut slots = HashMap::new();
        let mut add = |p: &Bytes, slot| {
            let clash = slots.insert(fingerprint(p), slot);
            assert!(clash.is_none(), "two packets of the clip are the same");
        };
        for (layer, l) in layers.iter().enumerate() {
            let packets = l.frames.iter().flat_map(|f| &f.chunks);
            for (index, p) in packets.enumerate() {
                add(p, Slot::video(layer, index));
            }
        }
        for (index, p) in audio.iter().enumerate() {
            add(p, Slot::audio(index));
        }
        Clip {
            audio,
            layers,
            slots,
        }
    }

    /// Which packet `payload` (as received, descriptor included) is, if it is
    /// one of the clip's, whole.
    pub fn identify(&self, video: bool, payload: &[u8]) -> Option<Slot> {
        let body = match video {
            true => payload.get(vp8_descriptor_len(payload)?..)?,
            false => payload,
        };
        self.slots
            .get(&fingerprint(body))
            .copied()
            .filter(|s| s.video == video)
    }
}

impl Layer {
    fn load(rid: &'static str, ivf: &[u8]) -> Layer {
        let mut frames = Vec::new();
        let mut first = 0;
        for bytes in ivf_frames(ivf) {
            let chunks: Vec<Bytes> = bytes
                .chunks(VIDEO_CHUNK)
                .map(Bytes::copy_from_slice)
                .collect();
            let n = chunks.len();
            frames.push(Frame {
                key: bytes[0] & 1 == 0,
                chunks,
                first,
            });
            first += n;
        }
        assert!(frames[0].key, "each layer must start on a keyframe");
        Layer {
            rid,
            height: u16::from_le_bytes([ivf[14], ivf[15]]).into(),
            frames,
            packets: first,
        }
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    // Every word of the packet, multiplied in (as FxHash does): a changed
    // byte anywhere changes it, at a tenth of SipHash's cost per byte, and
    // the receivers fingerprint every packet they get.
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut words = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

/// The frames of an IVF file.
fn ivf_frames(ivf: &[u8]) -> Vec<&[u8]> {
    let mut at = u16::from_le_bytes([ivf[6], ivf[7]]) as usize;
    let mut frames = Vec::new();
    while at + 12 <= ivf.len() {
        let len = u32::from_le_bytes(ivf[at..at + 4].try_into().unwrap()) as usize;
        frames.push(&ivf[at + 12..at + 12 + len]);
        at += 12 + len;
    }
    frames
}

/// The length of the VP8 payload descriptor (RFC 7741) `payload` starts with.
pub fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        len += if payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
    }
    len += usize::from(ext & 0x40 != 0) + usize::from(ext & 0x30 != 0);
    (len <= payload.len()).then_some(len)
}

/// A VP8 descriptor as a browser writes it: S on a frame's first packet and
/// a 15-bit picture id.
pub fn vp8_descriptor(start: bool, picture: u16) -> [u8; 4] {
    let id = (picture & 0x7fff) | 0x8000;
    [
        0x80 | if start { 0x10 } else { 0 },
        0x80,
        (id >> 8) as u8,
        id as u8,
    ]
}

/// 2 s of a voice-like sound (a gliding tone with its harmonics and a little
/// noise, so no two frames encode the same), in Opus at 32 kbit/s.
fn voice() -> Vec<Bytes> {
    use opus::{Application, Channels, Encoder};
    const RATE: f32 = 48_000.0;
    const FRAME: usize = 960;
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).expect("opus encoder");
    enc.set_bitrate(opus::Bitrate::Bits(32_000))
        .expect("opus bitrate");
    let mut noise = 0x2545_F491_u32;
    let mut phase = 0f32;
    let mut out = Vec::with_capacity(AUDIO_PACKETS);
    let mut pcm = [0f32; FRAME];
    let mut buf = [0u8; 1500];
    for n in 0..AUDIO_PACKETS {
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (n * FRAME + i) as f32 / RATE;
            let pitch = 140.0 + 40.0 * (t * 2.1).sin();
            phase += std::f32::consts::TAU * pitch / RATE;
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = (noise as f32 / u32::MAX as f32 - 0.5) * 0.02;
            let syllable = 0.5 + 0.5 * (t * 5.0).sin().abs();
            *s = syllable * (0.3 * phase.sin() + 0.15 * (2.0 * phase).sin()) + hiss;
        }
        let len = enc.encode_float(&pcm, &mut buf).expect("opus encode");
        out.push(Bytes::copy_from_slice(&buf[..len]));
    }
    out
}

/// When each packet of the loop last went out from one sender, and which
/// one it was (counting every packet of its stream the sender sent). Shared
/// in the process by the sender and every receiver of its media.
pub struct SendLog {
    audio: Vec<Sent>,
    /// Per layer.
    video: Vec<Vec<Sent>>,
}

#[derive(Default)]
struct Sent {
    /// The counter + 1: 0 until the slot is first sent.
    counter: AtomicU64,
    at_us: AtomicU64,
}

impl SendLog {
    fn new(clip: &Clip) -> SendLog {
        let slots = |n| (0..n).map(|_| Sent::default()).collect();
        SendLog {
            audio: slots(clip.audio.len()),
            video: clip.layers.iter().map(|l| slots(l.packets)).collect(),
        }
    }

    /// Notes that packet `counter` of its stream, slot `slot`, goes out now.
    pub fn sent(&self, slot: Slot, counter: u64, at_us: u64) {
        let s = self.slot(slot);
        s.at_us.store(at_us, Ordering::Relaxed);
        s.counter.store(counter + 1, Ordering::Release);
    }

    /// The counter and send time of the last packet sent in `slot`, if any.
    pub fn last(&self, slot: Slot) -> Option<(u64, u64)> {
        let s = self.slot(slot);
        let counter = s.counter.load(Ordering::Acquire).checked_sub(1)?;
        Some((counter, s.at_us.load(Ordering::Relaxed)))
    }

    fn slot(&self, slot: Slot) -> &Sent {
        match slot.video {
            true => &self.video[slot.layer][slot.index],
            false => &self.audio[slot.index],
        }
    }
}

/// The send log of the participant receivers know as `owner`.
pub fn send_log(owner: &str) -> Arc<SendLog> {
    static LOGS: OnceLock<Mutex<HashMap<String, Arc<SendLog>>>> = OnceLock::new();
    let mut logs = LOGS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    logs.entry(owner.to_owned())
        .or_insert_with(|| Arc::new(SendLog::new(clip())))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_of_the_clip_is_known_by_its_bytes() {
        let c = clip();
        let top = &c.layers[TOP];
        assert_eq!(top.frames.len(), 50);
        assert!(top.packets > 50, "frames are cut into packets");
        assert!(
            c.layers[0].packets < top.packets,
            "the low layer is smaller"
        );
        let first = &top.frames[0].chunks[0];
        let mut sent = vp8_descriptor(true, 32_767).to_vec();
        sent.extend_from_slice(first);
        assert_eq!(c.identify(true, &sent), Some(Slot::video(TOP, 0)));
        let low = [
            &vp8_descriptor(false, 9)[..],
            &c.layers[0].frames[3].chunks[0],
        ]
        .concat();
        let index = c.layers[0].frames[3].first;
        assert_eq!(c.identify(true, &low), Some(Slot::video(0, index)));
        assert_eq!(c.identify(false, &c.audio[7]), Some(Slot::audio(7)));
        sent.push(0);
        assert_eq!(c.identify(true, &sent), None, "a changed packet is not");
    }

    #[test]
    fn a_send_log_knows_the_last_packet_sent_in_each_slot() {
        let log = SendLog::new(clip());
        let slot = Slot::audio(0);
        assert_eq!(log.last(slot), None, "nothing sent yet");
        log.sent(slot, 0, 0);
        assert_eq!(log.last(slot), Some((0, 0)), "sent at the clock's start");
        log.sent(slot, 100, 2_000_000);
        assert_eq!(log.last(slot), Some((100, 2_000_000)), "the next loop");
    }

    #[test]
    fn descriptors_of_every_shape_are_skipped() {
        assert_eq!(vp8_descriptor_len(&[0x10, 9]), Some(1));
        assert_eq!(vp8_descriptor_len(&vp8_descriptor(true, 5)), Some(4));
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80, 0x05, 9]), Some(3));
        assert_eq!(vp8_descriptor_len(&[0x90, 0xe0, 0x80, 1, 7, 0x20]), Some(6));
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80]), None);
    }
}
