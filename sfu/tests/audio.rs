//! Redundant audio (RED, RFC 2198), in simulated time through real DTLS-SRTP
//! sessions: a subscriber that negotiated RED gets the publisher's packets
//! whole, under its own RED payload type; one that did not gets each
//! packet's primary block as plain Opus.

use std::time::Instant;

use carecall_sfu::sim::SimCall;
use carecall_sfu::{MediaSignal, ParticipantId, Room, RoomId};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

#[test]
fn redundant_audio_reaches_red_subscribers_whole_and_others_unwrapped() {
    let mut call = SimCall::redundant_audio(3, 2);
    for i in 1..3 {
        call.peers[i].record = true;
    }
    let opus = |call: &SimCall, i: usize| {
        let c = call.peers[i].rtc.codec_config();
        let opus = c.iter().find(|p| p.spec().codec == Codec::Opus).copied();
        opus.expect("Opus negotiated")
    };
    let (with, without) = (opus(&call, 1), opus(&call, 2));
    let red = with.red().map(|r| *r);
    assert!(red.is_some() && without.red().is_none(), "RED as set up");
    let opus_plain = *without.pt();

    for n in 1..=10u8 {
        call.send_audio(0, &[n; 30], &[n - 1; 30], true);
        call.settle(std::time::Duration::from_millis(20));
    }

    let with_red = &call.peers[1].received_audio;
    assert_eq!(
        with_red.len(),
        10,
        "RED subscriber got {} packets",
        with_red.len()
    );
    for (k, (pt, payload)) in with_red.iter().enumerate() {
        let n = k as u8 + 1;
        assert_eq!(Some(*pt), red, "RED subscriber's payload type");
        assert_eq!(payload.len(), 5 + 60, "RED payload kept whole");
        assert_eq!(&payload[5..35], &[n - 1; 30], "redundant block");
        assert_eq!(&payload[35..], &[n; 30], "primary block");
    }
    let plain = &call.peers[2].received_audio;
    assert_eq!(
        plain.len(),
        10,
        "plain subscriber got {} packets",
        plain.len()
    );
    for (k, (pt, payload)) in plain.iter().enumerate() {
        assert_eq!(*pt, opus_plain, "plain subscriber's payload type");
        assert_eq!(&payload[..], &[k as u8 + 1; 30], "primary block only");
    }
}

#[test]
fn the_answer_negotiates_opus_fec_and_red() {
    let now = Instant::now();
    let mut browser = Rtc::builder().enable_opus(true, true).build(now);
    let addr = "127.0.1.1:5000".parse().expect("address");
    browser.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
    let mut api = browser.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _) = api.apply().expect("an offer");
    let mut room = Room::new(RoomId("fec".into()));
    let server = Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap();
    room.connect(now, ParticipantId(1), &offer.to_sdp_string(), &[server])
        .expect("offer accepted");
    let answer = std::iter::from_fn(|| room.poll_signal())
        .find_map(|(_, s)| match s {
            MediaSignal::Answer(sdp) => Some(sdp),
            _ => None,
        })
        .expect("an answer");
    let fmtp = |codec: &str| {
        let pt = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(codec))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{codec} not in the answer:\n{answer}"))
            .to_owned();
        let prefix = format!("a=fmtp:{pt} ");
        answer
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or("")
            .to_owned()
    };
    assert!(fmtp(" opus/48000/2").contains("useinbandfec=1"), "{answer}");
    assert!(
        fmtp(" red/48000/2").contains("/"),
        "RED names its primary: {answer}"
    );
}
