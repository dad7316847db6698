//! Entry points for the coverage-guided fuzz targets in `fuzz/`: each takes
//! bytes a stranger could send and runs them through a parser the crate
//! does not otherwise make public. Not part of the crate's interface; built
//! only with the `fuzzing` feature.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// TURN stream framing (RFC 8656 §12.5 over TCP and TLS): bytes taken as
/// frames.
pub fn turn_stream_frames(data: &[u8]) -> usize {
    crate::turn::edge::frames_for_fuzzing(data)
}

/// RFC 4571 framing of ICE over TCP, `data` arriving in reads of `chunk`
/// bytes: bytes framed.
pub fn ice_tcp_frames(data: &[u8], chunk: usize) -> usize {
    crate::io::tcp::frames_for_fuzzing(data, chunk)
}

/// The recorder's VP8 frame assembly: `data` cut into packets (a length
/// byte, a marker bit, then the payload), pushed in order and popped as
/// frames; the frames and their bytes.
pub fn vp8_recording(data: &[u8]) -> (usize, usize) {
    let mut assembler = crate::recording::vp8::Vp8Assembler::new();
    let t0 = Instant::now();
    let mut rest = data;
    let mut seq = 0u64;
    while let [len, flags, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let payload: Arc<[u8]> = tail[..n].into();
        let marker = flags & 1 != 0;
        let rtp_time = u64::from(flags >> 1) * 3000;
        assembler.push(seq, rtp_time, marker, t0, payload);
        rest = &tail[n..];
        seq += 1 + u64::from(flags & 0x80 != 0);
    }
    let (mut frames, mut bytes) = (0, 0);
    while let Some(f) = assembler.pop(t0 + Duration::from_secs(5)) {
        frames += 1;
        bytes += f.data.len();
    }
    (frames, bytes)
}
