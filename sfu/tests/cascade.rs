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
    for p in &mut c.nodes[1].peers {
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
        c.nodes[0].send_layer(0, Some(rid), &payload, keyframes[i]);
    }
    c.settle(Duration::from_millis(33));
}

/// A simulcast publisher on node A, shown as a thumbnail by a viewer on B.
fn simulcast_shown_as_a_thumbnail_there() -> SimCascade {
    let mut c = publisher_here_viewers_there(1, true);
    let (publisher, viewer) = (c.nodes[0].peers[0].id, c.nodes[1].peers[0].id);
    c.nodes[1]
        .room
        .set_view(viewer, publisher, 120)
        .expect("viewer is on B");
    c
}

/// The layer of each video packet B's viewer `i` received.
fn layers_received(c: &SimCascade, i: usize) -> String {
    c.nodes[1].peers[i]
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
    assert_eq!(
        c.nodes[1].room.remote_participants(),
        [c.nodes[0].peers[0].id]
    );

    c.nodes[0].send_video(0, &[7; 200], true);
    for _ in 0..29 {
        c.settle(Duration::from_millis(33));
        c.nodes[0].send_video(0, &[7; 200], false);
    }
    for _ in 0..10 {
        c.nodes[0].send_audio(0, &[5; 60], &[], false);
    }
    c.settle(Duration::from_millis(100));
    for i in 0..2 {
        assert_eq!(
            c.nodes[1].peers[i].received_video.len(),
            30,
            "viewer {i}'s video"
        );
        assert_eq!(
            c.nodes[1].peers[i].received_audio.len(),
            10,
            "viewer {i}'s audio"
        );
    }
    // Once across, whatever the number of viewers there.
    assert_eq!(c.packets_crossed, [40, 0]);
}

#[test]
fn only_the_layers_the_far_viewers_take_cross_and_a_switch_up_crosses_with_its_keyframe() {
    let mut c = simulcast_shown_as_a_thumbnail_there();
    let (publisher, viewer) = (c.nodes[0].peers[0].id, c.nodes[1].peers[0].id);
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
    let before = c.nodes[0].peers[0].layer_keyframe_requests;
    c.nodes[1]
        .room
        .set_view(viewer, publisher, 720)
        .expect("viewer is on B");
    let mut n = 30;
    while !layers_received(&c, 0).ends_with('f') && n < 150 {
        // The camera sends a keyframe only when asked.
        let asked = c.nodes[0].peers[0].layer_keyframe_requests[2] > before[2];
        send_layers(&mut c, n, [false, false, asked && n % 5 == 0]);
        n += 1;
    }
    let after = c.nodes[0].peers[0].layer_keyframe_requests;
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
        c.nodes[1].peers[0].received_video[first_full][1] & 0x01,
        0,
        "switched at a delta frame"
    );
    // Seamless on B's viewer: one sequence without gaps.
    let headers = &c.nodes[1].peers[0].received_headers;
    for pair in headers.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "sequence gap: {headers:?}");
    }
}

#[test]
fn a_viewer_on_the_far_node_waits_for_a_keyframe_asked_across() {
    let mut c = publisher_here_viewers_there(1, false);
    for _ in 0..10 {
        c.nodes[0].send_video(0, &[7; 200], false);
        c.settle(Duration::from_millis(33));
    }
    assert!(
        c.nodes[1].peers[0].received_video.is_empty(),
        "a delta frame reached a new viewer"
    );
    assert!(
        c.nodes[0].peers[0].keyframe_requests > 0,
        "no keyframe asked across"
    );
    assert!(c
        .controls_crossed
        .iter()
        .any(|(from, m)| *from == 1 && matches!(m, Control::Keyframe { .. })));
    c.nodes[0].send_video(0, &[7; 200], true);
    c.settle(Duration::from_millis(33));
    assert_eq!(
        c.nodes[1].peers[0].received_video.len(),
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
    let (first, second, far) = (
        c.nodes[0].peers[0].id,
        c.nodes[0].peers[1].id,
        c.nodes[1].peers[0].id,
    );
    assert_eq!(c.nodes[1].room.remote_participants(), [first, second]);
    assert_eq!(c.nodes[0].room.remote_participants(), [far]);

    c.nodes[0].room.remove(first);
    c.settle(Duration::from_millis(100));
    assert_eq!(c.nodes[1].room.remote_participants(), [second]);
    assert!(c
        .controls_crossed
        .iter()
        .any(|(from, m)| *from == 0 && *m == Control::Left { origin: first }));

    // The link goes, on both sides (as a lost QUIC connection reads): each
    // node's participants leave the other's call, and nothing more crosses.
    for p in &mut c.nodes[0].peers {
        p.record = true;
    }
    c.nodes[1].send_video(0, &[7; 200], true);
    c.settle(Duration::from_millis(100));
    assert_eq!(
        c.nodes[0].peers[1].received_video.len(),
        1,
        "before: B's video reaches A"
    );
    c.nodes[0].room.unspan(LinkId(1));
    c.nodes[1].room.unspan(LinkId(0));
    assert!(c.nodes[0].room.remote_participants().is_empty());
    assert!(c.nodes[1].room.remote_participants().is_empty());
    assert!(!c.nodes[0].room.spans_nodes() && !c.nodes[1].room.spans_nodes());
    let crossed = c.packets_crossed[1];
    for _ in 0..5 {
        c.nodes[1].send_video(0, &[7; 200], false);
        c.settle(Duration::from_millis(33));
    }
    let told = c.nodes[1].peers[0]
        .signals
        .iter()
        .any(|s| matches!(s, MediaSignal::RemoteLeft { participant } if *participant == second));
    assert!(told, "B's browser was not told A's participant left");
    assert_eq!(c.packets_crossed[1], crossed, "packets crossed a lost link");
    assert_eq!(
        c.nodes[0].peers[1].received_video.len(),
        1,
        "after: nothing more"
    );
}

/// A room on three nodes: A hosts it, B and C span to it. C's viewer gets
/// B's camera through A (each packet crossing each link once), B's camera
/// is asked for a keyframe C's viewer needs, through A, and C knows who B's
/// participant is.
#[test]
fn a_room_on_three_nodes_is_a_star_through_the_node_hosting_it() {
    let a = SimCall::builder(1).publishers(0).build();
    let mut b = SimCall::builder(1).first_id(11).build();
    let publisher = b.peers[0].id;
    b.room.announce(publisher, r#"{"name":"Dr Skin"}"#);
    let c_node = SimCall::builder(1).publishers(0).first_id(21).build();
    let mut c = SimCascade::star(a, vec![b, c_node]);
    for node in &mut c.nodes {
        node.peers[0].record = true;
    }
    c.settle(Duration::from_millis(300));
    assert_eq!(c.nodes[2].room.remote_participants(), [publisher]);
    let described = c.nodes[2].peers[0].signals.iter().any(
        |s| matches!(s, MediaSignal::RemotePeer { participant, .. } if *participant == publisher),
    );
    assert!(described, "C's browser was not told who B's participant is");

    // Delta frames only: C's viewer (and A's) wait, and B's camera is asked
    // for a keyframe.
    for _ in 0..10 {
        c.nodes[1].send_video(0, &[7; 200], false);
        c.settle(Duration::from_millis(33));
    }
    assert!(c.nodes[2].peers[0].received_video.is_empty());
    assert!(
        c.nodes[1].peers[0].keyframe_requests > 0,
        "no keyframe asked of B"
    );
    let (from_b, from_a) = (c.packets_crossed[1], c.packets_crossed[0]);
    c.nodes[1].send_video(0, &[7; 200], true);
    for _ in 0..9 {
        c.settle(Duration::from_millis(33));
        c.nodes[1].send_video(0, &[7; 200], false);
    }
    c.settle(Duration::from_millis(100));
    for (node, name) in [(0, "A"), (2, "C")] {
        assert_eq!(
            c.nodes[node].peers[0].received_video.len(),
            10,
            "{name}'s viewer"
        );
    }
    assert_eq!(
        c.packets_crossed[1] - from_b,
        10,
        "B to A: each packet once"
    );
    assert_eq!(
        c.packets_crossed[0] - from_a,
        10,
        "A to C: each packet once"
    );
    assert_eq!(c.packets_crossed[2], 0, "C publishes nothing");
}

/// A far viewer's wishes count in what a camera is asked to encode: a
/// thumbnail on B keeps A's camera to its lowest layer, and a far listener
/// (sound) does not hold the camera at 720p.
#[test]
fn far_viewers_wishes_limit_what_the_camera_encodes() {
    let mut c = simulcast_shown_as_a_thumbnail_there();
    // Six seconds of a thumbnail: past the five-second hold.
    for n in 0..200u32 {
        send_layers(&mut c, n as u8, [n % 30 == 0; 3]);
    }
    let limits: Vec<&str> = c.nodes[0].peers[0]
        .signals
        .iter()
        .filter_map(|s| match s {
            MediaSignal::PublishLayers { highest } => Some(*highest),
            _ => None,
        })
        .collect();
    assert_eq!(limits, ["q"], "A's camera was not limited to its thumbnail");
}

#[test]
fn a_far_node_cannot_speak_for_participants_it_does_not_host() {
    let mut c = publisher_here_viewers_there(1, false);
    let (local, far) = (c.nodes[0].peers[0].id, c.nodes[1].peers[0].id);
    let now = c.nodes[0].now;
    let video = MediaKind::Video;
    // Over a link the room does not span to: ignored.
    c.nodes[0].room.handle_relay_control(
        now,
        LinkId(9),
        Control::Published {
            origin: ParticipantId(99),
            mid: "9".into(),
            kind: video,
        },
    );
    assert!(c.nodes[0].room.remote_participants().is_empty());
    // A publication in the name of A's own participant: ignored.
    let control = Control::Published {
        origin: local,
        mid: "9".into(),
        kind: video,
    };
    c.nodes[0]
        .room
        .handle_relay_control(now, LinkId(1), control);
    assert!(c.nodes[0].room.remote_participants().is_empty());
    // A real one is taken.
    let control = Control::Published {
        origin: far,
        mid: "9".into(),
        kind: video,
    };
    c.nodes[0]
        .room
        .handle_relay_control(now, LinkId(1), control);
    assert_eq!(c.nodes[0].room.remote_participants(), [far]);
}

#[test]
fn a_far_participant_is_described_before_its_tracks_and_its_leaving_is_told() {
    let mut a = SimCall::builder(1).build();
    let (home, info) = (a.peers[0].id, r#"{"name":"Rose Court","role":"home"}"#);
    a.room.announce(home, info);
    let b = SimCall::builder(1).first_id(11).build();
    let mut c = SimCascade::new(a, b);
    c.settle(Duration::from_millis(300));
    let signals = &c.nodes[1].peers[0].signals;
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

    c.nodes[0].room.remove(home);
    c.settle(Duration::from_millis(50));
    assert!(c.nodes[1].peers[0]
        .signals
        .iter()
        .any(|s| matches!(s, MediaSignal::RemoteLeft { participant } if *participant == home)));
    assert!(c.nodes[1].room.remote_participants().is_empty());
}

/// A link lost and made again (as the relay does after a network cut):
/// spanned again, the far camera's video reaches the viewer once more.
#[test]
fn a_room_spanned_again_after_a_lost_link_carries_the_far_camera_again() {
    let mut c = publisher_here_viewers_there(1, false);
    c.nodes[0].send_video(0, &[7; 200], true);
    c.settle(Duration::from_millis(100));
    assert_eq!(
        c.nodes[1].peers[0].received_video.len(),
        1,
        "before the loss"
    );

    c.nodes[0].room.unspan(LinkId(1));
    c.nodes[1].room.unspan(LinkId(0));
    // Long enough for the viewer's stopped track to be renegotiated away
    // and the camera's layers to drop to nobody watching.
    for _ in 0..60 {
        c.nodes[0].send_video(0, &[7; 200], false);
        c.settle(Duration::from_millis(100));
    }
    assert_eq!(
        c.nodes[1].peers[0].received_video.len(),
        1,
        "nothing while lost"
    );

    c.nodes[1].room.span_to(LinkId(0));
    c.nodes[0].room.span_to(LinkId(1));
    c.pump();
    c.settle(Duration::from_millis(500));
    assert_eq!(
        c.nodes[1].room.remote_participants(),
        [c.nodes[0].peers[0].id]
    );
    for n in 0..30 {
        c.nodes[0].send_video(0, &[7; 200], n % 10 == 0);
        c.settle(Duration::from_millis(33));
    }
    let got = c.nodes[1].peers[0].received_video.len();
    assert!(got > 10, "{got} video packets after the link came back");
}

/// A viewer on B whose link fits no video layer: its video is paused, yet
/// B still asks A for the camera's lowest layer. A local camera's lowest
/// layer always flows; without the far one's packets B could not measure
/// the layer a probe would resume the video on, and the video would stay
/// paused for good (seen after a lost link: the viewer's estimate had
/// fallen to its sound alone while nothing crossed).
#[test]
fn a_far_viewer_whose_link_fits_no_layer_still_asks_for_the_lowest() {
    use carecall_sfu::sim::LinkModel;
    let a = SimCall::builder(1).simulcast().build();
    let b = (SimCall::builder(1).publishers(0).first_id(11))
        .estimating_bandwidth()
        .build();
    let mut c = SimCascade::new(a, b);
    let publisher = c.nodes[0].peers[0].id;
    c.nodes[1].set_downlink(0, LinkModel::limited(60_000, Duration::from_millis(20)));
    for n in 0..300u32 {
        send_layers(&mut c, n as u8, [n % 30 == 0; 3]);
    }
    let paused = c.nodes[1].peers[0]
        .signals
        .iter()
        .any(|s| matches!(s, MediaSignal::VideoPaused { paused: true, .. }));
    assert!(paused, "the viewer's video was not paused on 60 kbit/s");
    let camera = c.controls_crossed.iter().find_map(|(_, m)| match m {
        Control::Published { origin, mid, kind } if *origin == publisher => {
            (*kind == MediaKind::Video).then_some(*mid)
        }
        _ => None,
    });
    let video_wish = c
        .controls_crossed
        .iter()
        .rev()
        .find_map(|(from, m)| match m {
            Control::Want {
                origin,
                mid,
                ceiling,
            } if *from == 1 && *origin == publisher && Some(*mid) == camera => Some(*ceiling),
            _ => None,
        });
    assert_eq!(
        video_wish,
        Some(Some(Layer::QUARTER)),
        "{:?}",
        c.controls_crossed
    );
}

/// What each node's browser was told of `by`'s recording on another node,
/// in order: when it started (Unix seconds), or `None` when it stopped.
fn recording_told(c: &SimCascade, node: usize, by: ParticipantId) -> Vec<Option<u64>> {
    let signals = c.nodes[node].peers[0].signals.iter();
    signals
        .filter_map(|s| match s {
            MediaSignal::RemoteRecording { by: who, since } if *who == by => Some(*since),
            _ => None,
        })
        .collect()
}

/// A recording on one node takes every participant's media, relayed
/// included: a star of three nodes (A hosting, B and C spanning to it), a
/// clinician on C records, and the browsers on A and on B (through A) are
/// told when it starts and stops, when C's link goes, and, spanned again,
/// that it runs. A node cannot say that someone it does not host records.
#[test]
fn a_recording_on_one_node_is_told_to_the_browsers_on_the_others() {
    let a = SimCall::builder(1).publishers(0).build();
    let mut b = SimCall::builder(1).publishers(0).first_id(11).build();
    let on_b = b.peers[0].id;
    b.room.announce(on_b, r#"{"name":"Dr Skin"}"#);
    let c_node = SimCall::builder(1).first_id(21).build();
    let mut c = SimCascade::star(a, vec![b, c_node]);
    c.settle(Duration::from_millis(300));
    let clinician = c.nodes[2].peers[0].id;
    let since = 1_796_000_000;

    c.nodes[2].room.announce_recording(clinician, Some(since));
    c.settle(Duration::from_millis(50));
    c.nodes[2].room.announce_recording(clinician, None);
    c.settle(Duration::from_millis(50));
    for node in [0, 1] {
        assert_eq!(
            recording_told(&c, node, clinician),
            [Some(since), None],
            "node {node}"
        );
    }
    assert!(
        recording_told(&c, 2, clinician).is_empty(),
        "C's own browser is told by its signalling"
    );

    // Started again, then C's link is lost: it no longer takes anyone on
    // A or B.
    c.nodes[2]
        .room
        .announce_recording(clinician, Some(since + 60));
    c.settle(Duration::from_millis(50));
    c.nodes[0].room.unspan(LinkId(2));
    c.nodes[2].room.unspan(LinkId(0));
    c.settle(Duration::from_millis(50));
    let again = [Some(since), None, Some(since + 60), None];
    for node in [0, 1] {
        assert_eq!(recording_told(&c, node, clinician), again, "node {node}");
    }

    // Spanned again: told at once that it runs.
    c.nodes[2].room.span_to(LinkId(0));
    c.nodes[0].room.span_to(LinkId(2));
    c.pump();
    c.settle(Duration::from_millis(50));
    for node in [0, 1] {
        let told = recording_told(&c, node, clinician);
        assert_eq!(
            told.last(),
            Some(&Some(since + 60)),
            "node {node}: {told:?}"
        );
    }

    // C cannot say that B's participant records, nor someone never
    // announced.
    let stranger = ParticipantId(999);
    let before = recording_told(&c, 0, on_b).len();
    c.nodes[2].room.announce_recording(on_b, Some(since));
    c.nodes[2].room.announce_recording(stranger, Some(since));
    c.settle(Duration::from_millis(50));
    assert_eq!(recording_told(&c, 0, on_b).len(), before);
    assert!(recording_told(&c, 0, stranger).is_empty());
}

/// The consent to record a clinician noted on one node is the call's: a
/// star of three nodes (A hosting, B and C spanning to it), consent noted
/// on C reaches the browsers on A and on B (through A), and an older entry
/// heard later changes nothing; C's link lost, it stands, and a link to A
/// made again is told it at once.
#[test]
fn the_consent_noted_on_one_node_is_told_on_the_others() {
    let a = SimCall::builder(1).publishers(0).build();
    let b = SimCall::builder(1).publishers(0).first_id(11).build();
    let c_node = SimCall::builder(1).first_id(21).build();
    let mut c = SimCascade::star(a, vec![b, c_node]);
    c.settle(Duration::from_millis(300));
    let clinician = c.nodes[2].peers[0].id;
    let entry = r#"{"given":true,"by":"resident","how":"verbal"}"#;
    let consent_told = |c: &SimCascade, node: usize| -> usize {
        let signals = c.nodes[node].peers[0].signals.iter();
        signals
            .filter(|s| matches!(s, MediaSignal::RemoteConsent { info } if &**info == entry))
            .count()
    };

    c.nodes[2]
        .room
        .announce_consent(clinician, 1_796_000_060, entry);
    c.settle(Duration::from_millis(50));
    assert_eq!((consent_told(&c, 0), consent_told(&c, 1)), (1, 1));
    assert_eq!(
        consent_told(&c, 2),
        0,
        "C's own browser is told by its signalling"
    );
    // An older entry heard later (late across a relinked node) changes
    // nothing, anywhere.
    let older = r#"{"given":false,"by":"resident","how":"verbal"}"#;
    c.nodes[2]
        .room
        .announce_consent(clinician, 1_796_000_000, older);
    c.settle(Duration::from_millis(50));
    let older_told = c.nodes[0].peers[0]
        .signals
        .iter()
        .any(|s| matches!(s, MediaSignal::RemoteConsent { info } if &**info == older));
    assert!(!older_told, "an older consent replaced a newer one");

    // C's link goes; B's spans again: A tells B the consent at once (it
    // stands: it is the call's), and B, knowing it, tells its browser
    // nothing new.
    let consents_from_a = |c: &SimCascade| {
        let crossed = c.controls_crossed.iter();
        crossed
            .filter(|(from, m)| {
                *from == 0 && matches!(m, Control::Consent { at, .. } if *at == 1_796_000_060)
            })
            .count()
    };
    let before = consents_from_a(&c);
    c.nodes[0].room.unspan(LinkId(2));
    c.nodes[2].room.unspan(LinkId(0));
    c.nodes[0].room.unspan(LinkId(1));
    c.nodes[1].room.unspan(LinkId(0));
    c.settle(Duration::from_millis(50));
    c.nodes[1].room.span_to(LinkId(0));
    c.nodes[0].room.span_to(LinkId(1));
    c.pump();
    c.settle(Duration::from_millis(50));
    assert_eq!(consents_from_a(&c), before + 1, "told over the new link");
    assert_eq!(consent_told(&c, 1), 1, "nothing new for B's browser");
}
