//! Loss recovery through the SFU, in simulated time: a packet lost on either
//! leg (publisher → SFU, SFU → subscriber) is NACKed and retransmitted (RTX),
//! so the subscriber ends up with every packet.

use std::time::Duration;

use carecall_sfu::sim::SimCall;

fn send_frames(call: &mut SimCall, range: std::ops::Range<u8>) {
    for n in range {
        call.send_video(0, &[n; 100], n == 0);
        call.settle(Duration::from_millis(20));
    }
}

fn received(call: &SimCall, peer: usize) -> Vec<u8> {
    let mut got: Vec<u8> = call.peers[peer]
        .received_video
        .iter()
        .map(|p| p[2])
        .collect();
    got.sort_unstable();
    got.dedup();
    got
}

/// Sends 15 frames, losing one RTP packet after the fifth as `lose` arranges,
/// and returns what the subscriber ended up with.
fn frames_after_one_loss(lose: impl FnOnce(&mut SimCall)) -> Vec<u8> {
    let mut call = SimCall::new(2);
    call.peers[1].record = true;
    send_frames(&mut call, 0..5);
    lose(&mut call);
    send_frames(&mut call, 5..15);
    call.settle(Duration::from_millis(300));
    assert_eq!(
        (call.lose_next_rtp_to, call.lose_next_rtp_from),
        (None, None),
        "no packet was dropped: the test proved nothing"
    );
    received(&call, 1)
}

#[test]
fn packet_lost_to_the_subscriber_is_retransmitted_by_the_sfu() {
    let got = frames_after_one_loss(|call| call.lose_next_rtp_to = Some(1));
    assert_eq!(got, (0..15).collect::<Vec<u8>>());
}

#[test]
fn packet_lost_from_the_publisher_is_recovered_and_forwarded() {
    let got = frames_after_one_loss(|call| call.lose_next_rtp_from = Some(0));
    assert_eq!(got, (0..15).collect::<Vec<u8>>());
}
