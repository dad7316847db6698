//! The room's instructions per forwarded datagram in a room of three, for
//! `benches/instructions.sh`. The script runs this binary under callgrind,
//! counting only the room's own work: the datagrams it takes
//! (`SimCall::receive_at_room`: media, and the browsers' reports and
//! feedback) and its polls (`Room::poll`), not the simulated browsers. It
//! runs it twice, without and with the counted frames (the first argument
//! says how many), and takes the difference: the warm-up is the same in
//! both. An instruction count does not move with the machine's load, where
//! a timing on this shared machine moves by a third: it is how a change to
//! the forwarding path (ours or str0m's) is judged.
//!
//! The call is the care-home shape: three participants, each sending one
//! frame every 40 ms on three simulcast layers (1, 2 and 6 packets of
//! 1,100 bytes) and sent the other two's top layer.

use carecall_sfu::sim::SimCall;

/// A typical 720p VP8 packet payload size.
const PAYLOAD: [u8; 1100] = [0x42; 1100];
/// Frames before counting: joins, first keyframes and layer choice.
const WARM_UP: u32 = 100;

fn main() {
    let frames: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut call = SimCall::simulcast(3);
    for n in 0..WARM_UP {
        call.send_simulcast_frames(&PAYLOAD, 6, n == 0);
    }
    let before = call.transmitted;
    for _ in 0..frames {
        call.send_simulcast_frames(&PAYLOAD, 6, false);
    }
    let forwarded = call.transmitted - before;
    let due = u64::from(frames) * 3 * 2 * 6;
    assert!(forwarded >= due, "{forwarded} forwarded, {due} due");
    println!("forwarded {forwarded}");
}
