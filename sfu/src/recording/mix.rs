//! The consultation's mixed audio: every participant's Opus decoded, summed on
//! one timeline and encoded again, so a listener hears the whole conversation
//! on one track. Sans-IO: packets go in at their place on the timeline (in
//! 48 kHz samples since the recording began), mixed frames come out once
//! late packets can no longer change them.

use std::collections::{HashMap, VecDeque};

use opus::{Application, Channels, Decoder, Encoder};

use crate::id::ParticipantId;

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;

/// How far behind the newest arrival the mix is made: packets later than
/// this are left out of the mix (they are still in their own track).
pub const MIX_DELAY: u64 = 48 * 400;

/// The longest Opus packet: 120 ms.
const MAX_DECODED: usize = 48 * 120;

struct Source {
    decoder: Decoder,
    last_seq: Option<u64>,
}

/// One mixed 20 ms Opus frame.
#[derive(Debug)]
pub struct MixedFrame {
    /// Where the frame starts, in samples since the recording began.
    pub at: u64,
    /// The Opus packet.
    pub packet: Vec<u8>,
}

/// Mixes participants' audio; see the module docs.
pub struct AudioMixer {
    sources: HashMap<ParticipantId, Source>,
    encoder: Encoder,
    /// Sums not yet encoded; `sums[0]` is sample `base`.
    sums: VecDeque<i32>,
    base: u64,
    decoded: Vec<i16>,
    frame: Vec<i16>,
    pre_skip: u16,
}

/// Why the mixer could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("Opus encoder for the mixed track: {0}")]
pub struct MixerError(#[from] opus::Error);

impl AudioMixer {
    /// A mixer whose timeline starts at sample 0.
    pub fn new() -> Result<Self, MixerError> {
        let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(48_000))?;
        let pre_skip = encoder.get_lookahead()?.clamp(0, i32::from(u16::MAX)) as u16;
        Ok(AudioMixer {
            sources: HashMap::new(),
            encoder,
            sums: VecDeque::new(),
            base: 0,
            decoded: vec![0; MAX_DECODED],
            frame: vec![0; FRAME],
            pre_skip,
        })
    }

    /// The mixed track's pre-skip (the encoder's look-ahead), for its header.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Adds one participant's Opus packet whose first sample belongs at `at`.
    /// A single lost packet before it is recovered from the packet's in-band
    /// FEC when it carries some. Undecodable packets are skipped.
    pub fn push(&mut self, origin: ParticipantId, seq: u64, at: u64, packet: &[u8]) {
        let source = match self.sources.entry(origin) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Ok(decoder) = Decoder::new(48_000, Channels::Mono) else {
                    return;
                };
                e.insert(Source {
                    decoder,
                    last_seq: None,
                })
            }
        };
        let one_lost = source.last_seq.is_some_and(|last| seq == last + 2);
        source.last_seq = Some(source.last_seq.map_or(seq, |last| last.max(seq)));
        if one_lost {
            if let Ok(n) = source
                .decoder
                .decode(packet, &mut self.decoded[..FRAME], true)
            {
                add(
                    &mut self.sums,
                    self.base,
                    at.saturating_sub(n as u64),
                    &self.decoded[..n],
                );
            }
        }
        if let Ok(n) = source.decoder.decode(packet, &mut self.decoded, false) {
            add(&mut self.sums, self.base, at, &self.decoded[..n]);
        }
    }

    /// Mixed frames that are ready when the newest arrival is at `now`
    /// (samples since the recording began).
    pub fn poll(&mut self, now: u64, out: &mut Vec<MixedFrame>) {
        while self.base + FRAME as u64 + MIX_DELAY <= now {
            self.encode_one(out);
        }
    }

    /// Everything left, at the end of the recording.
    pub fn flush(&mut self, out: &mut Vec<MixedFrame>) {
        while !self.sums.is_empty() {
            self.encode_one(out);
        }
    }

    fn encode_one(&mut self, out: &mut Vec<MixedFrame>) {
        for (i, sample) in self.frame.iter_mut().enumerate() {
            let sum = self.sums.get(i).copied().unwrap_or(0);
            *sample = sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        let drain = FRAME.min(self.sums.len());
        self.sums.drain(..drain);
        let mut packet = vec![0u8; 1500];
        if let Ok(n) = self.encoder.encode(&self.frame, &mut packet) {
            packet.truncate(n);
            out.push(MixedFrame {
                at: self.base,
                packet,
            });
        }
        self.base += FRAME as u64;
    }
}

/// Adds `pcm` into `sums` (which starts at sample `base`) at sample `at`;
/// what falls before `base` was already mixed and is dropped.
fn add(sums: &mut VecDeque<i32>, base: u64, at: u64, pcm: &[i16]) {
    let skip = base.saturating_sub(at) as usize;
    if skip >= pcm.len() {
        return;
    }
    let start = (at.max(base) - base) as usize;
    // Bounded: a packet claiming to be far in the future is not given memory.
    if start > 48_000 * 10 {
        return;
    }
    let end = start + pcm.len() - skip;
    if sums.len() < end {
        sums.resize(end, 0);
    }
    for (slot, &s) in sums.range_mut(start..end).zip(&pcm[skip..]) {
        *slot += i32::from(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * freq * std::f32::consts::TAU / 48_000.0).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn two_voices_on_one_timeline_come_out_as_one_continuous_track() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        let mut mixer = AudioMixer::new().unwrap();
        let a = ParticipantId(1);
        let b = ParticipantId(2);
        let pcm = tone(440.0, FRAME);
        let packet = enc.encode_vec(&pcm, 1500).unwrap();
        let mut out = Vec::new();
        // One second from each; b starts 200 ms later and loses one packet.
        for i in 0..50u64 {
            mixer.push(a, i, i * FRAME as u64, &packet);
            if i != 20 {
                mixer.push(b, i, 9600 + i * FRAME as u64, &packet);
            }
            mixer.poll((i + 1) * FRAME as u64, &mut out);
        }
        // Held back by the mix delay, then flushed at the end.
        assert_eq!(
            out.len() as u64,
            (50 * FRAME as u64 - MIX_DELAY) / FRAME as u64
        );
        mixer.flush(&mut out);
        let times: Vec<u64> = out.iter().map(|f| f.at).collect();
        let expected: Vec<u64> = (0..times.len() as u64).map(|i| i * FRAME as u64).collect();
        assert_eq!(times, expected);
        // a's second plus b's 200 ms offset: 1.2 s of mix.
        assert_eq!(out.len(), 60);
        assert!(out.iter().all(|f| !f.packet.is_empty()));
    }
}
