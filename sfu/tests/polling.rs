//! The room polls only the sessions something reached, or whose timer is
//! due: in a fan-out, a datagram from one subscriber runs that subscriber's
//! session alone, and a packet from the publisher runs the publisher's and
//! then its subscribers'. Forwarding is unchanged. While a burst of
//! datagrams is taken, only the sessions fed are polled; each subscriber
//! then sends the whole burst from one poll.

use std::time::Duration;

use carecall_sfu::sim::{Frame, SimCall};
use str0m::net::Receive;
use str0m::Input;

/// A publisher and ten subscribers who keep what they receive, settled.
fn recorded_fan_out_to_ten() -> SimCall {
    let mut call = SimCall::fan_out(10);
    for p in &mut call.peers {
        p.record = true;
    }
    call.settle(Duration::from_millis(500));
    call
}

#[test]
fn only_the_sessions_something_reached_are_polled() {
    let mut call = recorded_fan_out_to_ten();
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

    // A well-formed STUN check for a username no session has changes nothing.
    let stranger = stun_binding_request(b"nobody:x");
    let addr = "127.0.0.1:9".parse().unwrap();
    let r = Receive::new(str0m::net::Protocol::Udp, addr, addr, &stranger)
        .expect("a STUN binding request parses");
    assert!(call.room.accepts(&Input::Receive(now, r)).is_none());
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

#[test]
fn a_burst_reaches_each_subscriber_from_one_poll() {
    let mut call = recorded_fan_out_to_ten();
    call.send_video(0, &[7; 200], true);
    call.settle(Duration::from_millis(100));
    let before: Vec<usize> = call.peers.iter().map(|p| p.received_video.len()).collect();
    assert!(before[1..].iter().all(|&n| n > 0), "keyframe forwarded");
    let now = call.now;
    call.room.poll(now, |_| {});
    assert_eq!(call.room.sessions_to_poll(now), 0);

    // A six-packet frame arrives as one burst and is taken datagram by datagram.
    let frame = Frame {
        rid: None,
        payload: &[9; 200],
        keyframe: false,
        packets: 6,
    };
    call.queue_frame(0, frame);
    call.take_from(0);
    assert_eq!(call.rtp_sent_between(), 0, "no subscriber polled mid-burst");
    assert!(
        call.room.sessions_to_poll(now) >= 10,
        "every subscriber was handed the frame and waits for one poll"
    );

    // One poll then sends each subscriber all six.
    call.pump();
    for (i, p) in call.peers.iter().enumerate().skip(1) {
        assert_eq!(p.received_video.len() - before[i], 6, "subscriber {i}");
    }
}

/// An ICE connectivity check (a STUN binding request, RFC 8445 §7.1) from
/// `username`, which must be a multiple of four bytes long, with a
/// MESSAGE-INTEGRITY no key signed.
fn stun_binding_request(username: &[u8]) -> Vec<u8> {
    assert_eq!(username.len() % 4, 0);
    let attributes: [(u16, &[u8]); 3] = [
        (0x0006, username),            // USERNAME
        (0x0024, &[0x6e, 0, 0, 0xff]), // PRIORITY
        (0x0008, &[0; 20]),            // MESSAGE-INTEGRITY
    ];
    let mut body = Vec::new();
    for (kind, value) in attributes {
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&body);
    m
}
