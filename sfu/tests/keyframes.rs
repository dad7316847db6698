//! Keyframe rules, in simulated time through real DTLS-SRTP sessions: a
//! subscriber's video starts at a keyframe, and the SFU asks the publisher for
//! one instead of waiting for the next periodic keyframe.

use std::time::Duration;

use carecall_sfu::sim::SimCall;

#[test]
fn subscriber_video_starts_at_a_keyframe_requested_from_the_publisher() {
    let mut call = SimCall::new(2);
    call.peers[1].record = true;
    let requests_before = call.peers[0].keyframe_requests;

    // Delta frames only: nothing is forwarded, and the publisher is asked for a keyframe.
    for n in 0..10u8 {
        call.send_video(0, &[n; 100], false);
        call.settle(Duration::from_millis(33));
    }
    assert!(
        call.peers[1].received_video.is_empty(),
        "delta frames before a keyframe were forwarded"
    );
    assert!(
        call.peers[0].keyframe_requests > requests_before,
        "the publisher was never asked for a keyframe"
    );

    // The keyframe and everything after it arrive, in order.
    call.send_video(0, &[100; 100], true);
    call.settle(Duration::from_millis(33));
    for n in 101..110u8 {
        call.send_video(0, &[n; 100], false);
        call.settle(Duration::from_millis(33));
    }
    let got: Vec<u8> = call.peers[1].received_video.iter().map(|p| p[2]).collect();
    assert_eq!(got, (100..110).collect::<Vec<u8>>());
    assert_eq!(
        call.peers[1].received_video[0][1] & 0x01,
        0,
        "first forwarded frame is not a keyframe"
    );
}

#[test]
fn keyframe_requests_are_coalesced_per_track() {
    let mut call = SimCall::new(4);
    let before = call.peers[0].keyframe_requests;
    // Three subscribers waiting, 20 delta packets within 100 ms: one request, not sixty.
    for n in 0..20u8 {
        call.send_video(0, &[n; 100], false);
        call.settle(Duration::from_millis(5));
    }
    let sent = call.peers[0].keyframe_requests - before;
    assert!(
        (1..=2).contains(&sent),
        "{sent} keyframe requests for one track in 100 ms"
    );
}
