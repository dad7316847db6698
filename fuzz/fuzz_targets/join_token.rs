//! Join tokens: as sent (forged, truncated), and signed with the hub's key
//! so the claims behind a valid signature are read too.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use carecall_signalling::LinkSigner;
use libfuzzer_sys::fuzz_target;
use ring::hmac;

const SECRET: &[u8] = b"a fuzzing secret of 32 bytes ...";

fuzz_target!(|data: &[u8]| {
    let Some((&how, data)) = data.split_first() else {
        return;
    };
    let signer = LinkSigner::new(SECRET);
    let token = if how & 1 == 0 {
        String::from_utf8_lossy(data).into_owned()
    } else {
        let body = URL_SAFE_NO_PAD.encode(data);
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    if let Ok(claims) = signer.verify(&token, 1_800_000_000) {
        // What verifies signs again to a token that verifies.
        let again = signer.sign(&claims).expect("valid claims sign");
        assert_eq!(signer.verify(&again, 1_800_000_000).as_ref(), Ok(&claims));
    }
});
