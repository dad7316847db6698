//! The recorder's VP8 frame assembly from packets in any state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (frames, bytes) = carecall_sfu::fuzzing::vp8_recording(data);
    assert!(
        bytes <= data.len(),
        "{frames} frames of {bytes} bytes from {}",
        data.len()
    );
});
