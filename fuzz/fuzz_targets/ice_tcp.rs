//! ICE over TCP (RFC 4571): a stream of length-prefixed packets, arriving
//! in reads of any size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let framed = carecall_sfu::fuzzing::ice_tcp_frames(data, usize::from(chunk) * 7 + 1);
    assert!(framed <= data.len());
});
