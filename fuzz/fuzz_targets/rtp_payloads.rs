//! The RTP payload readers the forwarding path uses: VP8 and H.264
//! keyframe starts, and the newest block of redundant audio (RED).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let vp8 = carecall_sfu::vp8_keyframe_start(data);
    let h264 = carecall_sfu::h264_keyframe_start(data);
    if let Some((_, at)) = carecall_sfu::red_primary(data) {
        assert!(at <= data.len(), "RED block past the payload");
    }
    std::hint::black_box((vp8, h264));
});
