//! An SDP offer through the SFU's participant path, measured first as the
//! media server does.
#![no_main]

use std::time::Instant;

use carecall_sfu::{ParticipantId, Room, RoomId, SdpLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let id = ParticipantId(1);
    if SdpLimits::CALL.check(id, sdp).is_err() {
        return;
    }
    let mut room = Room::new(RoomId("fuzz".into()));
    let answered = room.connect(Instant::now(), id, sdp, &[]).is_ok();
    std::hint::black_box(answered);
});
