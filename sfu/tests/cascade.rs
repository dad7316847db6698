//! One call on two nodes, in simulated time: a room on each node, real
//! DTLS-SRTP sessions to each node's browsers, and the relay between the
//! rooms through its byte format.

use std::time::Duration;

use carecall_sfu::cascade::{Control, LinkId};
use carecall_sfu::forward::Layer;
use carecall_sfu::sim::{SimCall, SimCascade};
use carecall_sfu::{MediaSignal, ParticipantId};
use str0m::media::MediaKind;

const RIDS: [&str; 3] = ["q", "h", "f"];

/// A publisher (id 1) on node A, `viewers` viewers on node B (ids 11 on).
fn publisher_here_viewers_there(viewers: usize, simulcast: bool) -> SimCascade {
    let mut a = SimCall::builder(1);
    if simulcast {
        a = a.simulcast();
    }
    let b = SimCall::builder(viewers).publishers(0).first_id(11).build();
    let mut c = SimCascade::new(a.build(), b);
    for p in &mut c.b.peers {
        p.record = true;
    }
    c.settle(Duration::from_millis(300));
    c
}

/// One frame on every simulcast layer of A's publisher (a packet each),
/// keyframes where asked; the payload's first byte names the layer.
fn send_layers(c: &mut SimCascade, n: u8, keyframes: [bool; 3]) {
    for (i, rid) in RIDS.iter().enumerate() {
        let mut payload = [rid.as_bytes()[0]; 100];
        payload[1] = n;
        c.a.send_layer(0, Some(rid), &payload, keyframes[i]);
    }
    c.settle(Duration::from_millis(33));
}

/// The layer of each video packet B's viewer `i` received.
fn layers_received(c: &SimCascade, i: usize) -> String {
    c.b.peers[i]
        .received_video
        .iter()
        .map(|p| p[2] as char)
        .collect()
}

#[test]
fn a_camera_on_one_node_reaches_viewers_on_the_other_crossing_once() {
    let mut c = publisher_here_viewers_there(2, false);
    let published = c
        .controls_crossed
        .iter()
        .filter(|(from, m)| *from == 0 && matches!(m, Control::Published { .. }))
        .count();
    assert_eq!(
        published, 2,
        "audio and video announced: {:?}",
        c.controls_crossed
    );
    assert_eq!(c.b.room.remote_participants(), [c.a.peers[0].id]);

    c.a.send_video(0, &[7; 200], true);
    for _ in 0..29 {
        c.settle(Duration::from_millis(33));
        c.a.send_video(0, &[7; 200], false);
    }
    for _ in 0..10 {
        c.a.send_audio(0, &[5; 60], &[], false);
    }
    c.settle(Duration::from_millis(100));
    for i in 0..2 {
        assert_eq!(c.b.peers[i].received_video.len(), 30, "viewer {i}'s video");
        assert_eq!(c.b.peers[i].received_audio.len(), 10, "viewer {i}'s audio");
    }
    // Once across, whatever the number of viewers there.
    assert_eq!(c.packets_crossed, [40, 0]);
}

#[test]
fn only_the_layers_the_far_viewers_take_cross_and_a_switch_up_crosses_with_its_keyframe() {
    let mut c = publisher_here_viewers_there(1, true);
    let (publisher, viewer) = (c.a.peers[0].id, c.b.peers[0].id);
    c.b.room
        .set_view(viewer, publisher, 120)
        .expect("viewer is on B");
    for n in 0..30 {
        send_layers(&mut c, n, [n % 10 == 0; 3]);
    }
    let thumbnail = layers_received(&c, 0);
    assert!(
        !thumbnail.is_empty() && thumbnail.chars().all(|ch| ch == 'q'),
        "thumbnail received {thumbnail:?}"
    );
    let wants: Vec<_> = c
        .controls_crossed
        .iter()
        .filter_map(|(from, m)| match m {
            Control::Want { ceiling, .. } if *from == 1 => Some(*ceiling),
            _ => None,
        })
        .collect();
    assert_eq!(
        wants.last(),
        Some(&Some(Layer::QUARTER)),
        "B asks for q only: {wants:?}"
    );
    let crossed_before = c.packets_crossed[0];
    // 30 frames of three layers were sent; about a third crossed.
    assert!(
        crossed_before < 45,
        "{crossed_before} packets crossed for a thumbnail"
    );

    // The tile grows on B: B asks for f, f starts crossing, and once B has
    // measured it the viewer switches up at a keyframe of f asked across.
    let before = c.a.peers[0].layer_keyframe_requests;
    c.b.room
        .set_view(viewer, publisher, 720)
        .expect("viewer is on B");
    let mut n = 30;
    while !layers_received(&c, 0).ends_with('f') && n < 150 {
        // The camera sends a keyframe only when asked.
        let asked = c.a.peers[0].layer_keyframe_requests[2] > before[2];
        send_layers(&mut c, n, [false, false, asked && n % 5 == 0]);
        n += 1;
    }
    let after = c.a.peers[0].layer_keyframe_requests;
    assert!(
        after[2] > before[2],
        "no keyframe of f asked across: {before:?} → {after:?}"
    );
    assert!(
        c.controls_crossed.iter().any(|(from, m)| *from == 1
            && matches!(m, Control::Keyframe { layer, .. } if *layer == Layer::FULL)),
        "the keyframe request did not cross"
    );
    for n in n..n + 10 {
        send_layers(&mut c, n, [false; 3]);
    }
    let received = layers_received(&c, 0);
    assert!(
        received.ends_with(&"f".repeat(11)),
        "viewer received {received:?}"
    );
    let first_full = received.find('f').expect("switched");
    assert_eq!(
        c.b.peers[0].received_video[first_full][1] & 0x01,
        0,
        "switched at a delta frame"
    );
    // Seamless on B's viewer: one sequence without gaps.
    let headers = &c.b.peers[0].received_headers;
    for pair in headers.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "sequence gap: {headers:?}");
    }
}

#[test]
fn a_viewer_on_the_far_node_waits_for_a_keyframe_asked_across() {
    let mut c = publisher_here_viewers_there(1, false);
    for _ in 0..10 {
        c.a.send_video(0, &[7; 200], false);
        c.settle(Duration::from_millis(33));
    }
    assert!(
        c.b.peers[0].received_video.is_empty(),
        "a delta frame reached a new viewer"
    );
    assert!(
        c.a.peers[0].keyframe_requests > 0,
        "no keyframe asked across"
    );
    assert!(c
        .controls_crossed
        .iter()
        .any(|(from, m)| *from == 1 && matches!(m, Control::Keyframe { .. })));
    c.a.send_video(0, &[7; 200], true);
    c.settle(Duration::from_millis(33));
    assert_eq!(
        c.b.peers[0].received_video.len(),
        1,
        "the keyframe did not reach B's viewer"
    );
}

#[test]
fn whoever_leaves_one_node_leaves_the_other_and_a_lost_link_takes_its_participants() {
    let a = SimCall::builder(2).build();
    let b = SimCall::builder(1).first_id(11).build();
    let mut c = SimCascade::new(a, b);
    c.settle(Duration::from_millis(300));
    let (first, second, far) = (c.a.peers[0].id, c.a.peers[1].id, c.b.peers[0].id);
    assert_eq!(c.b.room.remote_participants(), [first, second]);
    assert_eq!(c.a.room.remote_participants(), [far]);

    c.a.room.remove(first);
    c.settle(Duration::from_millis(100));
    assert_eq!(c.b.room.remote_participants(), [second]);
    assert!(c
        .controls_crossed
        .iter()
        .any(|(from, m)| *from == 0 && *m == Control::Left { origin: first }));

    // Packets from the far side stop meaning anything once its link is gone.
    c.a.room.unspan(LinkId(1));
    assert!(c.a.room.remote_participants().is_empty());
    assert!(!c.a.room.spans_nodes());
    c.b.send_video(0, &[7; 200], true);
    c.settle(Duration::from_millis(100));
    assert!(c.a.room.remote_participants().is_empty());
}

#[test]
fn a_far_node_cannot_speak_for_participants_it_does_not_host() {
    let mut c = publisher_here_viewers_there(1, false);
    let (local, far) = (c.a.peers[0].id, c.b.peers[0].id);
    let now = c.a.now;
    let video = MediaKind::Video;
    // Over a link the room does not span to: ignored.
    c.a.room.handle_relay_control(
        now,
        LinkId(9),
        Control::Published {
            origin: ParticipantId(99),
            mid: "9".into(),
            kind: video,
        },
    );
    assert!(c.a.room.remote_participants().is_empty());
    // A publication in the name of A's own participant: ignored.
    let control = Control::Published {
        origin: local,
        mid: "9".into(),
        kind: video,
    };
    c.a.room.handle_relay_control(now, LinkId(1), control);
    assert!(c.a.room.remote_participants().is_empty());
    // A real one is taken.
    let control = Control::Published {
        origin: far,
        mid: "9".into(),
        kind: video,
    };
    c.a.room.handle_relay_control(now, LinkId(1), control);
    assert_eq!(c.a.room.remote_participants(), [far]);
}

#[test]
fn a_far_participant_is_described_before_its_tracks_and_its_leaving_is_told() {
    let mut a = SimCall::builder(1).build();
    let (home, info) = (a.peers[0].id, r#"{"name":"Rose Court","role":"home"}"#);
    a.room.announce(home, info);
    let b = SimCall::builder(1).first_id(11).build();
    let mut c = SimCascade::new(a, b);
    c.settle(Duration::from_millis(300));
    let signals = &c.b.peers[0].signals;
    let described = signals.iter().position(|s| {
        matches!(s, MediaSignal::RemotePeer { participant, info: i } if *participant == home && &**i == info)
    });
    let first_track = signals
        .iter()
        .position(|s| matches!(s, MediaSignal::Track { participant, .. } if *participant == home));
    assert!(
        described.is_some(),
        "B's browser was not told who is on A: {signals:?}"
    );
    assert!(
        first_track.is_some(),
        "no track of A's participant reached B: {signals:?}"
    );
    assert!(
        described < first_track,
        "a track came before its owner: {signals:?}"
    );

    c.a.room.remove(home);
    c.settle(Duration::from_millis(50));
    assert!(c.b.peers[0]
        .signals
        .iter()
        .any(|s| matches!(s, MediaSignal::RemoteLeft { participant } if *participant == home)));
    assert!(c.b.room.remote_participants().is_empty());
}
