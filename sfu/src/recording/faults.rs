//! The recorder against what a real network does to a stream: real VP8 (made
//! by ffmpeg's libvpx) and real Opus, packetised as a browser would, then
//! lost, reordered, duplicated, paused and switched to another layer on the
//! way in. The file must still decode without one error in ffmpeg.
//! Needs `ffmpeg` and `ffprobe` (tests/run.sh installs them).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opus::{Application, Channels, Encoder};
use str0m::media::Mid;

use super::mix::{AudioMixer, FRAME};
use super::recorder::Recorder;
use super::sealed::PlainFile;
use super::tap::TapPacket;
use super::webm::WebmWriter;
use crate::forward::Layer;
use crate::id::ParticipantId;

/// VP8 frames of a test pattern, from an IVF file ffmpeg writes.
fn vp8_frames(dir: &Path, size: &str, seconds: u32) -> Vec<(bool, Vec<u8>)> {
    let ivf = dir.join(format!("{size}.ivf"));
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=15"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-deadline",
            "realtime",
            "-b:v",
            "400k",
        ])
        .arg(&ivf)
        .status()
        .expect("ffmpeg is installed (tests/run.sh installs it)");
    assert!(made.success(), "ffmpeg could not make test VP8");
    let bytes = std::fs::read(&ivf).unwrap();
    let mut at = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let mut frames = Vec::new();
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let frame = bytes[at + 12..at + 12 + len].to_vec();
        frames.push((frame[0] & 1 == 0, frame));
        at += 12 + len;
    }
    frames
}

/// Splits a frame into RTP payloads of at most 900 bytes (RFC 7741 descriptor
/// of one byte: S on the first).
fn packetise(frame: &[u8]) -> Vec<Vec<u8>> {
    frame
        .chunks(900)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

fn packet(
    video: bool,
    layer: Layer,
    seq: u64,
    rtp_time: u64,
    marker: bool,
    arrival: Instant,
    payload: Vec<u8>,
) -> TapPacket {
    TapPacket {
        origin: ParticipantId(7),
        mid: Mid::from(if video { "1" } else { "0" }),
        video,
        layer,
        seq,
        rtp_time,
        marker,
        arrival,
        red: false,
        payload: Arc::from(payload),
    }
}

/// A cheap deterministic coin.
struct Coin(u64);

impl Coin {
    fn flip(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < percent
    }
}

#[test]
fn loss_reordering_a_pause_and_a_layer_switch_do_not_corrupt_the_file() {
    let dir = tempfile_dir();
    let full = vp8_frames(&dir, "640x360", 6);
    let small = vp8_frames(&dir, "320x180", 4);
    let path = dir.join("faults.webm");
    let t0 = Instant::now();
    let writer = WebmWriter::new(PlainFile::create(&path).unwrap(), 0).unwrap();
    let (wishes_in, wishes) = channel();
    let mut recorder = Recorder::new(t0, writer, AudioMixer::new().unwrap(), wishes_in);
    let mut coin = Coin(0x9E37_79B9_7F4A_7C15);

    // Video: 6 s of the full layer with 3% loss, reordering and duplicates,
    // a 2 s pause, then 4 s of the small layer (a switch, new sequence space).
    let mut packets = Vec::new();
    // Each video frame in order: keyframe or not, and its packets' numbers.
    let mut frames_sent: Vec<(bool, std::ops::Range<u64>)> = Vec::new();
    // Each layer: its frames, first sequence number, first RTP time, start.
    let layers = [
        (&full, Layer::FULL, 1000u64, 90_000u64, 0u64),
        (&small, Layer::HALF, 50_000, 7_000_000, 8000),
    ];
    for (frames, layer, first_seq, first_rtp, start_ms) in layers {
        let mut seq = first_seq;
        for (i, (key, frame)) in frames.iter().enumerate() {
            let rtp = first_rtp + i as u64 * 6000;
            let arrival = t0 + Duration::from_millis(start_ms + i as u64 * 1000 / 15);
            let parts = packetise(frame);
            let last = parts.len() - 1;
            frames_sent.push((*key, seq..seq + parts.len() as u64));
            for (j, p) in parts.into_iter().enumerate() {
                packets.push(packet(true, layer, seq, rtp, j == last, arrival, p));
                seq += 1;
            }
        }
    }
    // Audio alongside: 12 s of Opus, 5% lost.
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let tone: Vec<i16> = (0..FRAME)
        .map(|i| ((i as f32 * 0.0573).sin() * 6000.0) as i16)
        .collect();
    let opus = enc.encode_vec(&tone, 1500).unwrap();
    for i in 0..600u64 {
        let arrival = t0 + Duration::from_millis(i * 20);
        packets.push(packet(
            false,
            Layer::FULL,
            i,
            10_000 + i * FRAME as u64,
            false,
            arrival,
            opus.clone(),
        ));
    }
    // The network: 4% of packets lost, of which half come back 150 ms
    // later (a retransmission), 2% duplicated, 5% of video overtaken.
    let mut arriving = Vec::new();
    let mut lost = 0;
    let (mut gone, mut late) = (HashSet::new(), HashSet::new());
    for mut p in packets {
        if coin.flip(4) {
            if coin.flip(50) {
                lost += 1;
                if p.video {
                    gone.insert(p.seq);
                }
                continue;
            }
            p.arrival += Duration::from_millis(150);
            if p.video {
                late.insert(p.seq);
            }
        }
        if coin.flip(2) {
            let copy = packet(
                p.video,
                p.layer,
                p.seq,
                p.rtp_time,
                p.marker,
                p.arrival,
                p.payload.to_vec(),
            );
            arriving.push(copy);
        }
        arriving.push(p);
    }
    arriving.sort_by_key(|p| p.arrival);
    let mut fed = 0;
    let mut held_back: Option<TapPacket> = None;
    for p in arriving {
        if p.video && held_back.is_none() && coin.flip(5) {
            held_back = Some(p);
            continue;
        }
        recorder.push(p).unwrap();
        fed += 1;
        if let Some(late) = held_back.take() {
            recorder.push(late).unwrap();
            fed += 1;
        }
    }
    let (duration_ms, tracks) = recorder.finish().unwrap();
    let asked = wishes.try_iter().count();
    println!("fed {fed} packets, {lost} lost for good; {asked} keyframe requests; duration {duration_ms} ms; tracks {tracks:?}");
    assert!(
        asked > 0,
        "lost frames must make the recorder ask for a keyframe"
    );
    assert_eq!(
        tracks.len(),
        3,
        "mixed audio, the participant's audio and video"
    );

    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        // Decoded frames keep the file's own millisecond times: with
        // ffmpeg's default (one tick per frame at a guessed rate) two
        // camera frames closer than a tick collide, whatever the file holds.
        .args(["-map", "0", "-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "ffmpeg decode errors:\n{errors}"
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let out = String::from_utf8_lossy(&probe.stdout);
    println!("ffprobe: {out}");
    assert!(
        probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let figures: Vec<f64> = out
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let (frames, duration) = (figures[0], figures[1]);
    // After a frame lost for good nothing is written until the next
    // keyframe (every 2 s here; a real camera sends one on request), so the
    // count is known from the losses. A retransmission 150 ms late is within
    // the 400 ms the assembler waits for a missing packet, so it is in time.
    let sent = frames_sent.len();
    let expected = frames_written(&frames_sent, |s| gone.contains(&s));
    let if_late_lost = frames_written(&frames_sent, |s| gone.contains(&s) || late.contains(&s));
    println!(
        "{frames} of {sent} frames in the file: expected {expected} \
         ({if_late_lost} had late retransmissions been lost), {duration} s"
    );
    assert_eq!(
        frames, expected as f64,
        "frames in the file, of {sent} sent"
    );
    assert!((duration - 12.0).abs() < 0.5, "duration {duration} s");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// How many of `frames` (keyframe or not, packet numbers) a recorder that
/// skips from a frame with a `missing` packet to the next keyframe writes.
fn frames_written(frames: &[(bool, std::ops::Range<u64>)], missing: impl Fn(u64) -> bool) -> usize {
    let mut broken = false;
    let mut written = 0;
    for (key, seqs) in frames {
        broken &= !key;
        if seqs.clone().any(&missing) {
            broken = true;
        }
        if !broken {
            written += 1;
        }
    }
    written
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("carecall-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
