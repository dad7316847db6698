//! TURN over TCP and TLS: the stream cut into STUN messages and padded
//! ChannelData.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let framed = carecall_sfu::fuzzing::turn_stream_frames(data);
    assert!(framed <= data.len());
});
