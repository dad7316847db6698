//! Bandwidth estimation through real DTLS-SRTP sessions in simulated time: on a
//! perfect link the estimate to a subscriber grows past what its video needs.

use std::time::Duration;

use carecall_sfu::sim::SimCall;

#[test]
fn estimate_grows_on_a_clean_link() {
    let mut call = SimCall::estimating_bandwidth(2);
    call.send_video(0, &[0; 1000], true);
    for n in 0..2000u32 {
        let payload = [(n % 251) as u8; 1000];
        call.send_video(0, &payload, n % 100 == 0);
        call.settle(Duration::from_millis(5));
    }
    let stats = call.room.adaptation();
    println!("{stats:?}");
    let sub = stats
        .iter()
        .find(|(p, _)| *p == call.peers[1].id)
        .unwrap()
        .1;
    assert!(sub.estimate_bps.unwrap_or(0) > 2_000_000, "{sub:?}");
}
