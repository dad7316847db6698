//! The room polls only the sessions something reached, or whose timer is
//! due: in a fan-out, a datagram from one subscriber runs that subscriber's
//! session alone, and a packet from the publisher runs the publisher's and
//! then its subscribers'. Forwarding is unchanged.

use std::time::Duration;

use carecall_sfu::sim::SimCall;
use str0m::net::Receive;
use str0m::Input;

#[test]
fn only_the_sessions_something_reached_are_polled() {
    let mut call = SimCall::fan_out(10);
    for p in &mut call.peers {
        p.record = true;
    }
    call.settle(Duration::from_millis(500));
    let now = call.now;
    call.room.poll(now, |_| {});
    assert_eq!(
        call.room.sessions_to_poll(now),
        0,
        "all polled, none due yet"
    );

    // One subscriber's timer tick reaches the room: that session alone runs.
    let ids: Vec<_> = call.room.participant_ids().collect();
    call.room.handle_input(ids[3], Input::Timeout(now));
    assert_eq!(call.room.sessions_to_poll(now), 1);
    call.room.poll(now, |_| {});
    assert_eq!(call.room.sessions_to_poll(now), 0);

    // A datagram no session claims changes nothing.
    let garbage = [0u8; 20];
    let addr = "127.0.0.1:9".parse().unwrap();
    if let Ok(r) = Receive::new(str0m::net::Protocol::Udp, addr, addr, &garbage) {
        assert!(call.room.accepts(&Input::Receive(now, r)).is_none());
    }
    assert_eq!(call.room.sessions_to_poll(now), 0);

    // Later, timers come due again by themselves.
    assert!(call.room.sessions_to_poll(now + Duration::from_millis(200)) > 0);

    // And the publisher's keyframe still reaches every subscriber.
    call.send_video(0, &[7; 200], true);
    call.settle(Duration::from_millis(100));
    for (i, p) in call.peers.iter().enumerate().skip(1) {
        assert!(!p.received_video.is_empty(), "subscriber {i} got no video");
    }
}
