//! A text frame on the signalling socket (WebSocket text is UTF-8).
#![no_main]

use carecall_signalling::protocol::parse_client_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_message(text) {
        Ok(message) => assert!(!format!("{message:?}").is_empty()),
        // An error never quotes much of what was sent.
        Err(e) => assert!(e.to_string().len() < 400, "{e}"),
    }
});
