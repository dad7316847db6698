//! Simulcast forwarding, in simulated time through real DTLS-SRTP sessions: a
//! publisher sends three layers, each viewer gets the one that fits its tile,
//! and a layer switch is seamless to the viewer's browser.

use std::time::Duration;

use carecall_sfu::forward::vp8_picture_numbers;
use carecall_sfu::sim::SimCall;
use carecall_sfu::MediaSignal;

const RIDS: [&str; 3] = ["q", "h", "f"];

/// One frame on every layer (a packet each), keyframes where asked. The
/// payload's first byte names the layer, the second counts frames.
fn send_frame(call: &mut SimCall, n: u8, keyframes: [bool; 3]) {
    for (i, rid) in RIDS.iter().enumerate() {
        let mut payload = [rid.as_bytes()[0]; 100];
        payload[1] = n;
        call.send_layer(0, Some(rid), &payload, keyframes[i]);
    }
    call.settle(Duration::from_millis(33));
}

/// The layer of each video packet peer `i` received (payload byte 2, after
/// the two-byte VP8 descriptor).
fn layers_received(call: &SimCall, i: usize) -> String {
    call.peers[i]
        .received_video
        .iter()
        .map(|p| p[2] as char)
        .collect()
}

#[test]
fn a_new_viewer_starts_on_the_first_keyframe_of_any_layer_then_moves_up() {
    let mut call = SimCall::simulcast(2);
    call.peers[1].record = true;
    // A second of delta frames: the viewer wants 720p, so the SFU asks for
    // its keyframe and forwards nothing undecodable meanwhile.
    for n in 0..30 {
        send_frame(&mut call, n, [false; 3]);
    }
    assert_eq!(layers_received(&call, 1), "");
    assert!(
        call.peers[0].layer_keyframe_requests[2] > 0,
        "no keyframe requested on the full layer: {:?}",
        call.peers[0].layer_keyframe_requests
    );

    // The quarter layer's keyframe comes first: the tile starts on it.
    send_frame(&mut call, 30, [true, false, false]);
    for n in 31..40 {
        send_frame(&mut call, n, [false; 3]);
    }
    assert_eq!(layers_received(&call, 1), "q".repeat(10));
    // The full layer's keyframe: the viewer moves up and stays there.
    send_frame(&mut call, 40, [false, false, true]);
    for n in 41..50 {
        send_frame(&mut call, n, [false, n % 3 == 0, false]);
    }
    // (Frame 40's quarter packet goes out before the full layer's keyframe.)
    assert_eq!(layers_received(&call, 1), "q".repeat(11) + &"f".repeat(10));
    let first_full = &call.peers[1].received_video[11];
    assert_eq!(first_full[1] & 0x01, 0, "the switch is not at a keyframe");

    // Seamless: one sequence without gaps, timestamps moving forward.
    let headers = &call.peers[1].received_headers;
    for pair in headers.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "sequence gap: {headers:?}");
        assert!(
            pair[1].1.wrapping_sub(pair[0].1) as i32 > 0,
            "timestamp went back: {headers:?}"
        );
    }
}

#[test]
fn a_thumbnail_viewer_gets_only_the_quarter_layer() {
    let mut call = SimCall::simulcast(3);
    for i in 1..3 {
        call.peers[i].record = true;
    }
    let (publisher, thumb) = (call.peers[0].id, call.peers[1].id);
    call.room
        .set_view(thumb, publisher, 120)
        .expect("viewer is in the room");
    for n in 0..30 {
        send_frame(&mut call, n, [n % 10 == 0; 3]);
    }
    let thumbnail = layers_received(&call, 1);
    assert!(
        !thumbnail.is_empty() && thumbnail.chars().all(|c| c == 'q'),
        "thumbnail received {thumbnail:?}"
    );
    // The other viewer shows the tile full size: 720p, after the first keyframes.
    let big = layers_received(&call, 2);
    assert!(
        big.ends_with(&"f".repeat(9)),
        "full-size tile received {big:?}"
    );
}

/// The layers the room told peer `i` to publish, in order.
fn publish_limits(call: &SimCall, i: usize) -> Vec<&'static str> {
    call.peers[i]
        .signals
        .iter()
        .filter_map(|s| match s {
            MediaSignal::PublishLayers { highest } => Some(*highest),
            _ => None,
        })
        .collect()
}

#[test]
fn layers_nobody_watches_are_paused_at_the_publisher_and_come_back_when_wanted() {
    let mut call = SimCall::simulcast(2);
    let (publisher, viewer) = (call.peers[0].id, call.peers[1].id);
    call.room
        .set_view(viewer, publisher, 120)
        .expect("viewer is in the room");
    // Four seconds of a thumbnail: not yet (the hold is five).
    for n in 0..120u32 {
        send_frame(&mut call, n as u8, [n % 30 == 0; 3]);
    }
    assert_eq!(publish_limits(&call, 0), Vec::<&str>::new());
    for n in 120..200u32 {
        send_frame(&mut call, n as u8, [n % 30 == 0; 3]);
    }
    assert_eq!(
        publish_limits(&call, 0),
        ["q"],
        "h and f paused after the hold"
    );
    // The viewer enlarges the tile: f is asked for within one layer pass.
    call.room
        .set_view(viewer, publisher, 720)
        .expect("viewer is in the room");
    send_frame(&mut call, 200, [false; 3]);
    assert_eq!(publish_limits(&call, 0), ["q", "f"]);
    // The other camera is watched full size: it keeps all its layers.
    assert_eq!(publish_limits(&call, 1), Vec::<&str>::new());
}

#[test]
fn picture_numbers_carry_on_across_a_layer_switch() {
    let mut call = SimCall::simulcast(2);
    call.picture_numbers = true;
    call.peers[1].record = true;
    // The viewer starts on the quarter layer's keyframe, then moves up at the
    // full layer's: each layer numbers its pictures on its own, far apart.
    send_frame(&mut call, 0, [true, false, false]);
    for n in 1..10 {
        send_frame(&mut call, n, [false; 3]);
    }
    send_frame(&mut call, 10, [false, false, true]);
    for n in 11..20 {
        send_frame(&mut call, n, [false; 3]);
    }
    let received: Vec<(char, u16, Option<u8>)> = call.peers[1]
        .received_video
        .iter()
        .map(|p| {
            let (_, n) = vp8_picture_numbers(p).expect("a numbered descriptor");
            // After the 6-byte descriptor and the VP8 header's first byte.
            (p[7] as char, n.picture_id, n.tl0)
        })
        .collect();
    let layers: String = received.iter().map(|r| r.0).collect();
    assert_eq!(layers, "q".repeat(11) + &"f".repeat(10), "{received:?}");
    // One picture after another, as if from one encoder: the receiver finds
    // each delta frame's reference.
    for pair in received.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(b.1, (a.1 + 1) & 0x7fff, "picture id: {received:?}");
        assert_eq!(
            b.2,
            a.2.map(|t| t.wrapping_add(1)),
            "TL0PICIDX: {received:?}"
        );
    }
    // The first layer kept the publisher's numbers (and wrapped with them).
    assert_eq!((received[0].1, received[0].2), (32_760, Some(250)));
}
