//! One session's message handling without a socket: frames go into
//! [`Session::on_frame`], and what the session queued for the browser is
//! drained from its outbox. The state is real ([`AppState`] over a media
//! worker on loopback), so what reaches presence and the media plane is
//! what a server would do with it.

use std::net::Ipv4Addr;

use axum::extract::ws::CloseFrame;
use carecall_sfu::{MediaConfig, MediaServer, Refusals};
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::protocol::{Request, MAX_MESSAGE_BYTES};
use crate::{CarriedSession, LinkSigner, Role};

const SECRET: &[u8] = b"the link secret of the session unit tests";
const NAME: &str = "Rose Court";
/// How long a test waits for the media worker's thread to answer.
const MEDIA_WAIT: Duration = Duration::from_secs(5);

/// A browser's first offer: one Opus track, as Chrome would send it.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS s1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Wv3X\r\n\
a=ice-pwd:7yL2qv9Kd0fXbR4sT6uW8zA1\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 3D:9A:1C:5E:77:02:B4:8F:61:C0:AA:13:5D:E2:94:07:3B:6C:F1:28:9E:4D:A5:70:0B:D3:16:8A:C9:52:E4:1F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=msid:s1 a1\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:1001 cname:c1\r\n\
a=ssrc:1001 msid:s1 a1\r\n";

const CANDIDATE: &str = "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host";

fn media_plane() -> MediaServer {
    MediaServer::start(&MediaConfig {
        announce: vec![Ipv4Addr::LOCALHOST.into()],
        port: 0,
        tcp_port: None,
        workers: 1,
        estimate_bandwidth: false,
        relays: None,
        relay: None,
    })
    .expect("a media worker on loopback")
}

/// A server's state with `limits`, and the call events it emits.
fn server(limits: SocketLimits) -> (AppState, UnboundedReceiver<CallEvent>) {
    let (events, events_rx) = unbounded_channel();
    let state = AppState::new(LinkSigner::new(SECRET), media_plane(), Some(events))
        .with_limits(carecall_sfu::Live::new(limits), Refusals::default());
    (state, events_rx)
}

fn join_message(room: &str, role: Role) -> String {
    let claims = JoinClaims::lasting(room, role, NAME, Duration::from_secs(3600));
    let token = LinkSigner::new(SECRET).sign(&claims).expect("valid claims");
    format!(r#"{{"type":"join","v":1,"token":"{token}"}}"#)
}

fn json(message: serde_json::Value) -> String {
    message.to_string()
}

fn error(code: &str, message: &str) -> ServerMessage {
    ServerMessage::Error {
        code: code.into(),
        message: message.into(),
    }
}

fn peer(participant: ParticipantId, role: Role, audio: bool, video: bool) -> PeerInfo {
    PeerInfo {
        participant: participant.to_string(),
        name: NAME.into(),
        role,
        audio,
        video,
    }
}

/// One session with no socket attached: frames in, messages for the
/// browser out.
struct Browser {
    session: Session,
    mailboxes: Mailboxes,
    now: Instant,
}

impl Browser {
    fn connect(state: &AppState) -> Self {
        let now = Instant::now();
        let (session, mailboxes) = Session::new(state.clone(), None, now);
        Browser {
            session,
            mailboxes,
            now,
        }
    }

    /// Connects and joins `room`, past the `joined` message and the call's
    /// consent to record (none yet).
    fn join(state: &AppState, room: &str, role: Role) -> Self {
        let mut browser = Browser::connect(state);
        assert_eq!(
            browser.text(&join_message(room, role)),
            ControlFlow::Continue(())
        );
        let replies = browser.replies();
        assert!(
            matches!(
                replies.as_slice(),
                [
                    ServerMessage::Joined { .. },
                    ServerMessage::Consent { consent: None }
                ]
            ),
            "{replies:?}"
        );
        browser
    }

    fn frame(&mut self, message: Message) -> ControlFlow<()> {
        self.session
            .on_frame(Some(Ok(message)), self.now, &mut self.mailboxes.media_tx)
    }

    fn text(&mut self, text: &str) -> ControlFlow<()> {
        self.frame(Message::Text(text.into()))
    }

    /// Everything queued for the browser so far.
    fn replies(&mut self) -> Vec<ServerMessage> {
        std::iter::from_fn(|| self.mailboxes.outbox.try_recv().ok()).collect()
    }

    fn closing(&self) -> Option<(u16, String)> {
        self.session.closing.clone()
    }

    fn id(&self) -> ParticipantId {
        self.session.joined.as_ref().expect("joined").id
    }

    fn joined(&self) -> &Joined {
        self.session.joined.as_ref().expect("joined")
    }

    /// The next signal the media plane sends this participant, relayed.
    async fn relay_media_signal(&mut self) -> ControlFlow<()> {
        let signal = tokio::time::timeout(MEDIA_WAIT, self.mailboxes.media.recv())
            .await
            .expect("the media plane answers in time")
            .expect("the media plane's signals are open");
        self.session.handle_media(signal)
    }
}

/// After `gone`'s session ended: `stayer` is told once, the room holds
/// `stayer` alone, and the one leave recorded is `gone`'s.
fn assert_left(
    stayer: &mut Browser,
    state: &AppState,
    events: &mut UnboundedReceiver<CallEvent>,
    gone: ParticipantId,
) {
    let gone = gone.to_string();
    let told = ServerMessage::ParticipantLeft {
        participant: gone.clone(),
    };
    assert_eq!(stayer.replies(), vec![told]);
    assert_eq!(state.presence().count(&stayer.joined().claims.room), 1);
    let lefts: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            CallEvent::Left { participant, .. } => Some(participant),
            _ => None,
        })
        .collect();
    assert_eq!(lefts, vec![gone]);
}

#[test]
fn join_answers_joined_with_those_present_and_tells_them() {
    let (state, mut events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-1", Role::Home);
    let mut clinician = Browser::connect(&state);

    let flow = clinician.text(&join_message("ward-1", Role::Clinician));

    assert_eq!(flow, ControlFlow::Continue(()));
    let replies = clinician.replies();
    let [ServerMessage::Joined {
        v,
        participant,
        room,
        role,
        participants,
        ice_servers,
        resume,
    }, ServerMessage::Consent { consent: None }] = replies.as_slice()
    else {
        panic!("joined, then no consent yet: {replies:?}");
    };
    assert_eq!(*v, PROTOCOL_VERSION);
    assert_eq!(*participant, clinician.id().to_string());
    assert_eq!(room, "ward-1");
    assert_eq!(*role, Role::Clinician);
    assert_eq!(*participants, vec![peer(home.id(), Role::Home, true, true)]);
    assert_eq!(*ice_servers, vec![], "no TURN offered");
    assert_eq!(resume.len(), 22, "128 bits, base64: {resume:?}");
    assert_eq!(
        home.replies(),
        vec![ServerMessage::ParticipantJoined(peer(
            clinician.id(),
            Role::Clinician,
            true,
            true
        ))]
    );
    assert_eq!(state.presence().count("ward-1"), 2);
    let joined: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            CallEvent::Joined {
                participant, role, ..
            } => Some((participant, role)),
            _ => None,
        })
        .collect();
    assert_eq!(
        joined,
        vec![
            (home.id().to_string(), Role::Home),
            (clinician.id().to_string(), Role::Clinician)
        ]
    );
}

#[test]
fn a_bad_token_or_version_is_refused_and_nobody_joins() {
    let (state, _events) = server(SocketLimits::default());
    let cases = [
        (
            json(serde_json::json!({"type": "join", "v": 1, "token": "not-a-token"})),
            "malformed-token",
            close::BAD_TOKEN,
        ),
        (
            join_message("ward-2", Role::Home).replace(r#""v":1"#, r#""v":2"#),
            "unsupported-version",
            close::PROTOCOL,
        ),
    ];
    for (join, code, close_code) in cases {
        let mut browser = Browser::connect(&state);
        assert_eq!(browser.text(&join), ControlFlow::Break(()), "{code}");
        let replies = browser.replies();
        assert!(
            matches!(replies.as_slice(), [ServerMessage::Error { code: c, .. }] if c == code),
            "{replies:?}"
        );
        assert_eq!(browser.closing().map(|c| c.0), Some(close_code));
        assert!(browser.session.joined.is_none());
    }
    assert_eq!(state.presence().count("ward-2"), 0);
}

#[test]
fn a_withdrawn_link_is_refused_at_join() {
    let (state, _events) = server(SocketLimits::default());
    state.revocations().revoke("ward-3", unix_now() + 60);
    let mut browser = Browser::connect(&state);

    assert_eq!(
        browser.text(&join_message("ward-3", Role::Home)),
        ControlFlow::Break(())
    );

    let withdrawn = crate::TokenError::Revoked;
    assert_eq!(
        browser.replies(),
        vec![error("revoked-token", &withdrawn.to_string())]
    );
    assert_eq!(
        browser.closing(),
        Some((close::BAD_TOKEN, withdrawn.to_string()))
    );
    assert_eq!(state.presence().count("ward-3"), 0);
}

#[test]
fn call_messages_before_join_are_refused_and_reach_no_one() {
    let (state, _events) = server(SocketLimits::default());
    let mut stranger = Browser::connect(&state);

    let flow = stranger.text(&json(serde_json::json!({"type": "offer", "sdp": OFFER})));

    assert_eq!(flow, ControlFlow::Break(()));
    let refusal = "send join with the link's token first";
    assert_eq!(stranger.replies(), vec![error("not-joined", refusal)]);
    assert_eq!(
        stranger.closing(),
        Some((close::POLICY, refusal.to_owned()))
    );
    assert!(
        stranger.mailboxes.media_tx.is_some(),
        "the media plane was never handed this session's signals"
    );
}

#[test]
fn a_second_join_or_resume_on_a_joined_session_is_refused() {
    let (state, _events) = server(SocketLimits::default());
    for again in [
        join_message("ward-4", Role::Home),
        json(serde_json::json!({"type": "resume", "v": 1, "resume": "x"})),
    ] {
        let mut browser = Browser::join(&state, "ward-4", Role::Home);
        assert_eq!(browser.text(&again), ControlFlow::Break(()));
        let refusal = "this connection has already joined a call";
        assert_eq!(browser.replies(), vec![error("already-joined", refusal)]);
        assert_eq!(browser.closing(), Some((close::POLICY, refusal.to_owned())));
    }
}

/// A protocol error ends this session only: the error goes first, then the
/// close frame, and the room learns of one leave.
#[test]
fn malformed_json_is_a_typed_error_and_the_room_carries_on() {
    let (state, mut events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-5", Role::Home);
    let mut clinician = Browser::join(&state, "ward-5", Role::Clinician);
    home.replies();
    let clinician_id = clinician.id();

    let flow = clinician.text("{\"type\": \"mute\", ");

    assert_eq!(flow, ControlFlow::Break(()));
    let replies = clinician.replies();
    let [ServerMessage::Error { code, message }] = replies.as_slice() else {
        panic!("one error: {replies:?}");
    };
    assert_eq!(code, "malformed");
    assert!(
        message.starts_with("message is not a JSON object with a \"type\": EOF while parsing"),
        "{message}"
    );
    assert_eq!(clinician.closing().map(|c| c.0), Some(close::PROTOCOL));
    assert_eq!(
        state.presence().count("ward-5"),
        2,
        "left only when it ends"
    );

    drop(clinician);

    assert_left(&mut home, &state, &mut events, clinician_id);
}

#[test]
fn an_unknown_type_or_bad_fields_are_typed_errors() {
    let (state, _events) = server(SocketLimits::default());
    let cases = [
        (
            r#"{"type":"dance"}"#,
            "unknown-type",
            "unknown message type \"dance\"",
        ),
        (
            r#"{"type":"mute","audio":"yes","video":true}"#,
            "bad-message",
            "bad mute message: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    for (text, code, message) in cases {
        let mut browser = Browser::join(&state, "ward-6", Role::Home);
        assert_eq!(browser.text(text), ControlFlow::Break(()), "{text}");
        assert_eq!(browser.replies(), vec![error(code, message)]);
        assert_eq!(
            browser.closing(),
            Some((close::PROTOCOL, message.to_owned()))
        );
    }
}

#[test]
fn an_oversized_message_is_refused_with_too_large_before_parsing() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-7", Role::Home);
    let sdp = "a".repeat(MAX_MESSAGE_BYTES);
    let oversized = json(serde_json::json!({"type": "offer", "sdp": sdp}));

    let flow = browser.text(&oversized);

    assert_eq!(flow, ControlFlow::Break(()));
    let refusal = format!(
        "message of {} bytes is over the 64 KiB limit",
        oversized.len()
    );
    assert_eq!(browser.replies(), vec![error("too-large", &refusal)]);
    assert_eq!(browser.closing(), Some((close::TOO_BIG, refusal)));
    assert!(browser.joined().media.is_none(), "never offered to the SFU");
}

#[test]
fn a_binary_frame_is_refused() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-8", Role::Home);

    let flow = browser.frame(Message::Binary(vec![0x7b, 0x7d].into()));

    assert_eq!(flow, ControlFlow::Break(()));
    let refusal = "binary messages are not supported";
    assert_eq!(
        browser.replies(),
        vec![error("binary-not-supported", refusal)]
    );
    assert_eq!(browser.closing(), Some((close::PROTOCOL, refusal.into())));
}

#[test]
fn a_client_past_its_burst_is_closed_as_too_fast_and_pings_are_free() {
    let limits = SocketLimits {
        messages_per_sec: 1,
        message_burst: 3,
        ..SocketLimits::default()
    };
    let (state, _events) = server(limits);
    // The join takes the first of the three.
    let mut browser = Browser::join(&state, "ward-9", Role::Home);
    for _ in 0..10 {
        assert_eq!(
            browser.frame(Message::Ping(Default::default())),
            ControlFlow::Continue(())
        );
    }
    let mute = r#"{"type":"mute","audio":false,"video":false}"#;
    assert_eq!(browser.text(mute), ControlFlow::Continue(()));
    assert_eq!(browser.text(mute), ControlFlow::Continue(()));

    let flow = browser.text(mute);

    assert_eq!(flow, ControlFlow::Break(()));
    let refusal = "more than 3 messages at once or 1 a second";
    assert_eq!(browser.replies(), vec![error("too-fast", refusal)]);
    assert_eq!(browser.closing(), Some((close::POLICY, refusal.into())));
    assert_eq!(state.refusals().count(Surface::Socket, "too_fast"), 1);
}

#[test]
fn candidates_past_the_allowance_for_one_offer_are_refused() {
    let limits = SocketLimits {
        candidates_per_offer: 2,
        ..SocketLimits::default()
    };
    let (state, _events) = server(limits);
    let mut browser = Browser::join(&state, "ward-10", Role::Home);
    let candidate = json(serde_json::json!({"type": "candidate", "candidate": CANDIDATE}));
    let end_of_candidates = r#"{"type":"candidate","candidate":""}"#;
    assert_eq!(browser.text(&candidate), ControlFlow::Continue(()));
    assert_eq!(browser.text(end_of_candidates), ControlFlow::Continue(()));
    assert_eq!(browser.text(&candidate), ControlFlow::Continue(()));
    assert_eq!(
        browser.joined().candidates,
        2,
        "the empty one is not counted"
    );

    let flow = browser.text(&candidate);

    assert_eq!(flow, ControlFlow::Break(()));
    let refusal = "more than 2 ICE candidates for one offer";
    assert_eq!(
        browser.replies(),
        vec![error("too-many-candidates", refusal)]
    );
    assert_eq!(browser.closing(), Some((close::POLICY, refusal.into())));
    assert_eq!(
        state
            .refusals()
            .count(Surface::Socket, "too_many_candidates"),
        1
    );
}

#[tokio::test]
async fn an_offer_reaches_the_media_plane_and_its_answer_the_browser() {
    let limits = SocketLimits {
        candidates_per_offer: 1,
        ..SocketLimits::default()
    };
    let (state, _events) = server(limits);
    let mut browser = Browser::join(&state, "ward-11", Role::Home);
    let candidate = json(serde_json::json!({"type": "candidate", "candidate": CANDIDATE}));
    assert_eq!(browser.text(&candidate), ControlFlow::Continue(()));

    let offer = json(serde_json::json!({"type": "offer", "sdp": OFFER}));
    assert_eq!(browser.text(&offer), ControlFlow::Continue(()));

    assert!(browser.mailboxes.media_tx.is_none(), "handed to the SFU");
    assert!(browser.joined().media.is_some());
    assert_eq!(
        browser.joined().candidates,
        0,
        "a new offer, a new allowance"
    );
    assert_eq!(
        browser.relay_media_signal().await,
        ControlFlow::Continue(())
    );
    let replies = browser.replies();
    let [ServerMessage::Answer { sdp }] = replies.as_slice() else {
        panic!("one answer: {replies:?}");
    };
    assert!(sdp.starts_with("v=0\r\n"), "{sdp}");
    assert!(
        sdp.contains("a=mid:0\r\n"),
        "answers the offer's m-line: {sdp}"
    );
    let in_media_plane: Vec<_> = state
        .inner
        .media
        .stats()
        .await
        .into_iter()
        .map(|s| (s.room, s.participant))
        .collect();
    assert_eq!(
        in_media_plane,
        vec![(RoomId("ward-11".into()), browser.id())]
    );
    assert_eq!(browser.text(&candidate), ControlFlow::Continue(()));
}

/// Out of order before the media plane knows this participant: it drops
/// them (it has no one to tell), the browser hears nothing, and the session
/// goes on to a normal offer.
#[tokio::test]
async fn an_answer_or_candidate_before_any_offer_gets_no_reply_and_is_not_fatal() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-21", Role::Home);
    let early = [
        json(serde_json::json!({"type": "answer", "sdp": OFFER})),
        json(serde_json::json!({"type": "candidate", "candidate": CANDIDATE})),
    ];

    for message in &early {
        assert_eq!(browser.text(message), ControlFlow::Continue(()));
    }

    assert_eq!(browser.replies(), vec![]);
    assert_eq!(browser.closing(), None);
    assert!(browser.joined().media.is_none());
    assert_eq!(browser.joined().candidates, 1, "counted all the same");
    let offer = json(serde_json::json!({"type": "offer", "sdp": OFFER}));
    assert_eq!(browser.text(&offer), ControlFlow::Continue(()));
    assert_eq!(
        browser.relay_media_signal().await,
        ControlFlow::Continue(())
    );
    assert!(
        matches!(browser.replies().as_slice(), [ServerMessage::Answer { .. }]),
        "only the offer is answered"
    );
}

/// Out of order, but not fatal: the media plane says why, and the session
/// goes on.
#[tokio::test]
async fn an_answer_with_no_offer_outstanding_is_a_media_error_and_not_fatal() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-12", Role::Home);
    let offer = json(serde_json::json!({"type": "offer", "sdp": OFFER}));
    assert_eq!(browser.text(&offer), ControlFlow::Continue(()));
    assert_eq!(
        browser.relay_media_signal().await,
        ControlFlow::Continue(())
    );
    let Some(ServerMessage::Answer { sdp }) = browser.replies().pop() else {
        panic!("an answer");
    };

    // Well-formed SDP, but the SFU has made no offer to answer.
    let answer = json(serde_json::json!({"type": "answer", "sdp": sdp}));
    assert_eq!(browser.text(&answer), ControlFlow::Continue(()));

    assert_eq!(
        browser.relay_media_signal().await,
        ControlFlow::Continue(())
    );
    let replies = browser.replies();
    let [ServerMessage::Error { code, message }] = replies.as_slice() else {
        panic!("one error: {replies:?}");
    };
    assert_eq!(code, "media-error");
    assert!(
        message.contains("an answer arrived but no offer was outstanding"),
        "{message}"
    );
    assert_eq!(browser.closing(), None);
    let mute = r#"{"type":"mute","audio":false,"video":true}"#;
    assert_eq!(browser.text(mute), ControlFlow::Continue(()));
}

#[test]
fn an_offer_over_the_sdp_limits_is_refused() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-13", Role::Home);
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for mid in 0..65 {
        sdp.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\n"
        ));
    }
    let offer = json(serde_json::json!({"type": "offer", "sdp": sdp}));
    assert!(offer.len() < MAX_MESSAGE_BYTES, "under the message limit");

    let flow = browser.text(&offer);

    assert_eq!(flow, ControlFlow::Break(()));
    let replies = browser.replies();
    let [ServerMessage::Error { code, message }] = replies.as_slice() else {
        panic!("one error: {replies:?}");
    };
    assert_eq!(code, "sdp-too-large");
    assert!(message.contains("65"), "names the count: {message}");
    assert_eq!(browser.closing().map(|c| c.0), Some(close::POLICY));
    assert_eq!(state.refusals().count(Surface::Socket, "sdp_too_large"), 1);
}

#[test]
fn mute_tells_the_others_and_not_the_sender() {
    let (state, _events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-14", Role::Home);
    let mut clinician = Browser::join(&state, "ward-14", Role::Clinician);
    home.replies();

    let flow = home.text(r#"{"type":"mute","audio":false,"video":true}"#);

    assert_eq!(flow, ControlFlow::Continue(()));
    assert_eq!(home.replies(), vec![]);
    assert_eq!(
        clinician.replies(),
        vec![ServerMessage::ParticipantUpdated(peer(
            home.id(),
            Role::Home,
            false,
            true
        ))]
    );
}

/// Before its offer the media room does not know this participant, so the
/// sizes wait in the session (capped at 8K) and go with the offer.
#[tokio::test]
async fn views_before_the_offer_wait_and_a_bad_name_is_a_non_fatal_error() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-15", Role::Home);

    let flow = browser.text(r#"{"type":"view","participant":"p900","height":100000}"#);
    assert_eq!(flow, ControlFlow::Continue(()));
    let bad = browser.text(r#"{"type":"view","participant":"Rose","height":360}"#);

    assert_eq!(bad, ControlFlow::Continue(()));
    assert_eq!(
        browser.replies(),
        vec![error(
            "bad-participant",
            "no participant is called \"Rose\""
        )]
    );
    assert_eq!(browser.closing(), None);
    let waiting = &browser.joined().early_views;
    assert_eq!(waiting.get(ParticipantId(900)), Some(MAX_VIEW_HEIGHT));
    let offer = json(serde_json::json!({"type": "offer", "sdp": OFFER}));
    assert_eq!(browser.text(&offer), ControlFlow::Continue(()));
    assert_eq!(
        browser.joined().early_views.get(ParticipantId(900)),
        None,
        "passed on with the offer"
    );
    assert_eq!(
        browser.relay_media_signal().await,
        ControlFlow::Continue(())
    );
    assert!(matches!(
        browser.replies().as_slice(),
        [ServerMessage::Answer { .. }]
    ));
}

#[test]
fn only_a_clinician_may_ask_to_record_and_a_refusal_is_not_fatal() {
    let (state, _events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-16", Role::Home);
    let mut clinician = Browser::join(&state, "ward-16", Role::Clinician);
    home.replies();
    let record = r#"{"type":"record","on":true}"#;

    assert_eq!(home.text(record), ControlFlow::Continue(()));
    assert_eq!(clinician.text(record), ControlFlow::Continue(()));

    assert_eq!(
        home.replies(),
        vec![error(
            "not-allowed",
            "Only a clinician can start or stop a recording."
        )]
    );
    assert_eq!(
        clinician.replies(),
        vec![error(
            "recording-disabled",
            "Recording is switched off on this hub."
        )],
        "allowed, but this hub records nothing"
    );
    let mute = r#"{"type":"mute","audio":false,"video":false}"#;
    assert_eq!(home.text(mute), ControlFlow::Continue(()));
    assert_eq!(
        clinician.replies(),
        vec![ServerMessage::ParticipantUpdated(peer(
            home.id(),
            Role::Home,
            false,
            false
        ))]
    );
}

#[test]
fn recording_waits_for_consent_which_only_a_clinician_records_and_everyone_hears() {
    let (state, mut events) = server(SocketLimits::default());
    // Nothing is written: no recording starts in this test.
    let state = state.with_recording(crate::RecordingPolicy {
        dir: std::env::temp_dir().join("carecall-never-written"),
        key: None,
    });
    let mut home = Browser::join(&state, "ward-17", Role::Home);
    let mut clinician = Browser::join(&state, "ward-17", Role::Clinician);
    home.replies();
    let record = r#"{"type":"record","on":true}"#;
    let consent = |given: bool| {
        json(
            serde_json::json!({"type": "consent", "given": given, "by": "lasting-power-of-attorney", "how": "verbal"}),
        )
    };

    assert_eq!(clinician.text(record), ControlFlow::Continue(()));
    assert_eq!(home.text(&consent(true)), ControlFlow::Continue(()));
    assert_eq!(clinician.text(&consent(false)), ControlFlow::Continue(()));
    assert_eq!(clinician.text(record), ControlFlow::Continue(()));

    let replies = clinician.replies();
    let at = match &replies[1] {
        ServerMessage::Consent { consent: Some(c) } => c.at,
        other => panic!("the entry told back: {other:?}"),
    };
    let refused = crate::Consent {
        given: false,
        by: crate::ConsentGiver::LastingPowerOfAttorney,
        how: crate::ConsentManner::Verbal,
        recorded_by: clinician.id().to_string(),
        at,
    };
    let told = ServerMessage::Consent {
        consent: Some(refused.clone()),
    };
    assert_eq!(
        replies,
        vec![
            error(
                "consent-needed",
                "Record the resident's consent first: who agreed and how."
            ),
            told.clone(),
            error(
                "consent-needed",
                "Consent to record was refused for this call, so it cannot be recorded."
            ),
        ]
    );
    assert_eq!(
        home.replies(),
        vec![
            error(
                "not-allowed",
                "Only a clinician can record consent to record."
            ),
            told,
        ]
    );
    let logged: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            CallEvent::Consent { room, consent, .. } => Some((room, consent)),
            _ => None,
        })
        .collect();
    assert_eq!(logged, vec![("ward-17".to_owned(), refused)]);

    // A later joiner hears the entry; when the room empties it is gone.
    let mut late = Browser::connect(&state);
    assert_eq!(
        late.text(&join_message("ward-17", Role::Specialist)),
        ControlFlow::Continue(())
    );
    assert!(
        matches!(late.replies().as_slice(), [ServerMessage::Joined { .. }, ServerMessage::Consent { consent: Some(c) }] if !c.given)
    );
    for b in [home, clinician, late] {
        drop(b);
    }
    let again = Browser::join(&state, "ward-17", Role::Clinician);
    assert_eq!(again.closing(), None, "a new consultation asks again");
}

#[test]
fn hub_staff_may_ask_a_home_for_the_rear_camera_and_a_home_may_not_ask() {
    let (state, _events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-16a", Role::Home);
    let mut clinician = Browser::join(&state, "ward-16a", Role::Clinician);
    home.replies();
    let ask = |whom: String| {
        json(serde_json::json!({"type": "ask", "participant": whom, "what": "rear-camera"}))
    };

    assert_eq!(
        clinician.text(&ask(home.id().to_string())),
        ControlFlow::Continue(())
    );
    assert_eq!(
        home.text(&ask(clinician.id().to_string())),
        ControlFlow::Continue(())
    );
    assert_eq!(
        clinician.text(&ask("p999".into())),
        ControlFlow::Continue(())
    );

    let name = clinician.joined().claims.name.clone();
    assert_eq!(
        home.replies(),
        vec![
            ServerMessage::Asked {
                what: Request::RearCamera,
                by: clinician.id().to_string(),
                name,
                upload: None,
            },
            error("not-allowed", "Only hub staff can ask for that."),
        ]
    );
    assert_eq!(
        clinician.replies(),
        vec![error(
            "bad-participant",
            "no participant is called \"p999\""
        )],
        "asked nothing of the home; told of the one who is not there"
    );
    assert_eq!(home.closing(), None);
    assert_eq!(clinician.closing(), None);
}

#[test]
fn leave_ends_the_session_without_an_error_and_the_participant_leaves() {
    let (state, mut events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-17", Role::Home);
    let mut clinician = Browser::join(&state, "ward-17", Role::Clinician);
    home.replies();
    let clinician_id = clinician.id();

    let flow = clinician.text(r#"{"type":"leave"}"#);

    assert_eq!(flow, ControlFlow::Break(()));
    assert_eq!(clinician.replies(), vec![]);
    assert_eq!(clinician.closing(), None, "a normal close");
    drop(clinician);
    assert_left(&mut home, &state, &mut events, clinician_id);
}

#[test]
fn a_participant_who_leaves_before_its_media_connects_is_counted() {
    let (state, _events) = server(SocketLimits::default());
    let mut connected = Browser::join(&state, "ward-21", Role::Home);
    let _ = connected.session.handle_media(MediaSignal::Connected);
    drop(connected);
    let never = Browser::join(&state, "ward-21", Role::Clinician);
    drop(never);
    let counts = state.never_connected();
    assert!(counts.contains(&(Role::Home, 0)), "{counts:?}");
    assert!(counts.contains(&(Role::Clinician, 1)), "{counts:?}");
}

/// A socket gone without a close frame, or closed with the resuming code,
/// parks a joined session; another close frame is a leave.
#[test]
fn a_lost_socket_parks_a_joined_session_and_a_close_frame_ends_it() {
    let (state, _events) = server(SocketLimits::default());
    let resuming = Message::Close(Some(CloseFrame {
        code: close::RESUMING,
        reason: "".into(),
    }));
    for lost in [None, Some(Ok(resuming))] {
        let mut browser = Browser::join(&state, "ward-18", Role::Home);
        let now = browser.now;
        let flow = browser.session.on_frame(lost, now, &mut None);
        assert_eq!(flow, ControlFlow::Continue(()));
        assert!(browser
            .session
            .parked_until
            .is_some_and(|until| until >= now + RESUME_WINDOW));
        assert_eq!(state.presence().count("ward-18"), 1, "still in the call");
    }

    let mut browser = Browser::join(&state, "ward-19", Role::Home);
    let closed = browser.frame(Message::Close(Some(CloseFrame {
        code: 1001,
        reason: "".into(),
    })));
    assert_eq!(closed, ControlFlow::Break(()));
    assert_eq!(browser.session.parked_until, None);

    let mut stranger = Browser::connect(&state);
    assert_eq!(
        stranger.session.on_frame(None, stranger.now, &mut None),
        ControlFlow::Break(()),
        "nothing to resume before a join"
    );
}

#[test]
fn media_signals_become_messages_for_the_browser() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-20", Role::Home);
    let signals = [
        MediaSignal::Connected,
        MediaSignal::Track {
            mid: "2".into(),
            participant: ParticipantId(7),
        },
        MediaSignal::VideoPaused {
            participant: ParticipantId(7),
            paused: true,
        },
        MediaSignal::PublishLayers { highest: "h" },
        MediaSignal::IceDisconnected,
        MediaSignal::Offer("v=0\r\n".into()),
    ];
    for signal in signals {
        assert_eq!(
            browser.session.handle_media(signal),
            ControlFlow::Continue(())
        );
    }
    assert_eq!(
        browser.replies(),
        vec![
            ServerMessage::MediaConnected,
            ServerMessage::Track {
                mid: "2".into(),
                participant: "p7".into()
            },
            ServerMessage::VideoPaused {
                participant: "p7".into(),
                paused: true
            },
            ServerMessage::PublishLayers {
                highest: "h".into()
            },
            ServerMessage::Offer {
                sdp: "v=0\r\n".into()
            },
        ]
    );

    let flow = browser
        .session
        .handle_media(MediaSignal::Closed("the media worker stopped".into()));

    assert_eq!(flow, ControlFlow::Break(()));
    assert_eq!(
        browser.replies(),
        vec![error("media-closed", "the media worker stopped")]
    );
    assert_eq!(
        browser.closing(),
        Some((close::MEDIA, "the media worker stopped".into()))
    );
}

#[test]
fn the_hub_ending_the_call_tells_the_browser_then_closes() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-22", Role::Home);
    let message = "The clinician has ended the call.";

    assert_eq!(state.presence().end_room("ward-22", message), 1);
    let ended = browser.mailboxes.end.try_recv().expect("told to end");
    let flow = browser.session.ended(ended);

    assert_eq!(flow, ControlFlow::Break(()));
    assert_eq!(
        browser.replies(),
        vec![ServerMessage::CallEnded {
            message: message.into()
        }]
    );
    assert_eq!(browser.closing(), Some((close::ENDED, message.into())));
}

/// A restart: each session is told and closes without leaving the call;
/// the next process takes it back by its resume token, with the same id
/// and a fresh media session, and one that never comes back leaves as the
/// old process stopped.
#[test]
fn a_restart_carries_each_session_over_to_the_next_process() {
    let (state, mut events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-23", Role::Home);
    let mut clinician = Browser::join(&state, "ward-23", Role::Clinician);
    home.replies();
    let drained: Vec<CallEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    let carried: Vec<CarriedSession> = drained
        .iter()
        .filter_map(|e| match e {
            CallEvent::Resumable {
                participant,
                resume_hash,
                claims,
                ..
            } => Some(CarriedSession {
                resume_hash: resume_hash.clone(),
                participant: participant.parse().expect("an id"),
                claims: claims.clone(),
                parked_at: SystemTime::now(),
                recording: false,
            }),
            _ => None,
        })
        .collect();
    assert_eq!(carried.len(), 2, "{drained:?}");
    assert_eq!(
        carried[0].resume_hash,
        crate::resume_hash(&home.joined().resume)
    );

    assert!(state.stop_joins_and_recordings().is_empty());
    assert_eq!(state.restart(Vec::new()), 2);
    for b in [&mut home, &mut clinician] {
        let why = b.mailboxes.end.try_recv().expect("told");
        assert_eq!(b.session.ended(why), ControlFlow::Break(()));
        assert!(matches!(
            b.replies().as_slice(),
            [ServerMessage::Restarting { .. }]
        ));
        assert_eq!(b.closing().map(|c| c.0), Some(close::RESTARTING));
    }
    let (home_token, home_id) = (home.joined().resume.clone(), home.id());
    drop(home);
    drop(clinician);
    assert!(matches!(events.try_recv(), Ok(CallEvent::Stopping { .. })));
    assert!(events.try_recv().is_err(), "nobody left the call");
    assert!(state.presence().is_all_empty());
    let mut late = Browser::connect(&state);
    assert_eq!(
        late.text(&join_message("ward-23", Role::Specialist)),
        ControlFlow::Break(())
    );
    assert_eq!(
        late.closing().map(|c| c.0),
        Some(close::RESTARTING),
        "no joins while stopping"
    );

    // The next process.
    let (next, mut next_events) = server(SocketLimits::default());
    let next = next.with_first_participant(100);
    next.carry_over(carried);
    let mut back = Browser::connect(&next);
    let token = home_token;
    let carried = next.inner.carried.take(&token).expect("held");
    assert_eq!(
        back.session.resume_carried(carried, &token),
        ControlFlow::Continue(())
    );
    let replies = back.replies();
    assert!(
        matches!(
            replies.first(),
            Some(ServerMessage::Resumed { participant, media: Some("new"), .. })
                if *participant == home_id.to_string()
        ),
        "{replies:?}"
    );
    assert!(matches!(
        next_events.try_recv(),
        Ok(CallEvent::Resumed { .. })
    ));
    assert_eq!(next.presence().count("ward-23"), 1);
    assert_eq!(
        next.new_participant(),
        ParticipantId(100),
        "ids go on above the old ones"
    );

    // The clinician never comes back: it leaves as the old process stopped.
    assert_eq!(next.give_up_carried(), 1);
    assert!(matches!(next_events.try_recv(), Ok(CallEvent::Left { .. })));
}

/// A recording on another node of a spanning call takes this browser's
/// media too: it is told when that recording starts and stops, and this
/// node's own recording stopping meanwhile does not read as a stop.
#[test]
fn a_recording_on_another_node_is_told_and_a_stop_here_does_not_hide_it() {
    let (state, _events) = server(SocketLimits::default());
    let mut browser = Browser::join(&state, "ward-21", Role::Home);
    let (far, since) = (ParticipantId(31), 1_796_000_000);
    let running = ServerMessage::Recording {
        active: true,
        by: "p31".into(),
        since,
    };
    let signal = MediaSignal::RemoteRecording {
        by: far,
        since: Some(since),
    };
    assert_eq!(
        browser.session.handle_media(signal),
        ControlFlow::Continue(())
    );
    assert_eq!(browser.replies(), std::slice::from_ref(&running));
    assert_eq!(browser.joined().far_recordings, [(far, since)]);

    // This node's recording stops (as presence broadcasts it): on its way
    // to the browser it reads as the far one running.
    let stopped_here = ServerMessage::Recording {
        active: false,
        by: "p5".into(),
        since: since - 60,
    };
    let far_now = &browser.joined().far_recordings;
    assert_eq!(
        crate::recording::as_told(stopped_here.clone(), far_now),
        running
    );

    let signal = MediaSignal::RemoteRecording {
        by: far,
        since: None,
    };
    assert_eq!(
        browser.session.handle_media(signal),
        ControlFlow::Continue(())
    );
    let stopped = ServerMessage::Recording {
        active: false,
        by: "p31".into(),
        since: 0,
    };
    assert_eq!(browser.replies(), [stopped]);
    assert!(browser.joined().far_recordings.is_empty());
    assert_eq!(
        crate::recording::as_told(stopped_here.clone(), &[]),
        stopped_here
    );
}

/// Someone on another node of a spanning call is listed again when the
/// browser's socket resumes, beside those on this node; once gone, no more.
#[test]
fn a_resumed_socket_lists_those_on_other_nodes_too() {
    let (state, _events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-22", Role::Home);
    let clinician = Browser::join(&state, "ward-22", Role::Clinician);
    let here = peer(clinician.id(), Role::Clinician, true, true);
    let far = ParticipantId(41);
    let there = peer(far, Role::Clinician, true, true);
    let info = serde_json::to_string(&there).expect("a description");
    let signal = MediaSignal::RemotePeer {
        participant: far,
        info: info.into(),
    };
    assert_eq!(home.session.handle_media(signal), ControlFlow::Continue(()));
    let listed = home.session.in_the_call(home.joined());
    assert_eq!(listed, [here.clone(), there]);

    let signal = MediaSignal::RemoteLeft { participant: far };
    assert_eq!(home.session.handle_media(signal), ControlFlow::Continue(()));
    assert_eq!(home.session.in_the_call(home.joined()), [here]);
}

/// The consent to record a clinician noted on another node of a spanning
/// call is the call's: the browser here is shown it, and a clinician here
/// may then record. An entry that does not read is dropped.
#[test]
fn consent_noted_on_another_node_is_shown_here_and_lets_a_clinician_record() {
    let (state, _events) = server(SocketLimits::default());
    let mut home = Browser::join(&state, "ward-23", Role::Home);
    assert!(state.inner.consents.refusal("ward-23").is_some());
    let garbage = MediaSignal::RemoteConsent {
        info: "{\"given\":".into(),
    };
    assert_eq!(
        home.session.handle_media(garbage),
        ControlFlow::Continue(())
    );
    assert_eq!(home.replies(), []);

    let entry =
        r#"{"given":true,"by":"resident","how":"verbal","recorded_by":"p41","at":1796000000}"#;
    let signal = MediaSignal::RemoteConsent { info: entry.into() };
    assert_eq!(home.session.handle_media(signal), ControlFlow::Continue(()));
    let consent = crate::Consent {
        given: true,
        by: crate::ConsentGiver::Resident,
        how: crate::ConsentManner::Verbal,
        recorded_by: "p41".into(),
        at: 1_796_000_000,
    };
    assert_eq!(
        home.replies(),
        [ServerMessage::Consent {
            consent: Some(consent)
        }]
    );
    assert_eq!(state.inner.consents.refusal("ward-23"), None);

    // An older entry heard later changes nothing.
    let older =
        r#"{"given":false,"by":"resident","how":"verbal","recorded_by":"p41","at":1795999000}"#;
    let signal = MediaSignal::RemoteConsent { info: older.into() };
    assert_eq!(home.session.handle_media(signal), ControlFlow::Continue(()));
    assert_eq!(home.replies(), []);
    assert_eq!(state.inner.consents.refusal("ward-23"), None);
}
