//! What another node sends over the relay between nodes: control messages
//! and packet datagrams. Whatever decodes must encode back to the same bytes.
#![no_main]

use std::time::Instant;

use carecall_sfu::cascade::wire::{decode_message, decode_packet, encode_message, encode_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_message(data) {
        let mut out = Vec::new();
        encode_message(&m, &mut out);
        assert_eq!(&out[2..], data);
    }
    if let Ok((channel, p)) = decode_packet(data, Instant::now()) {
        let mut out = Vec::new();
        encode_packet(channel, &p, &mut out);
        assert_eq!(out, data);
    }
});
