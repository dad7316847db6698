//! A non-browser participant on webrtc-rs, an implementation independent of the
//! SFU's str0m, speaking carecall's signalling protocol. It publishes Opus and
//! VP8 RTP whose payloads carry a counter and the time they were sent, and
//! records, per remote participant, the counters it receives and how long each
//! packet took: continuity and latency, end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

/// Every this-many video frames is a keyframe.
pub const KEYFRAME_EVERY: u32 = 30;

/// What arrived from one remote stream.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// The counter of each packet, in arrival order (repeats dropped).
    pub counters: Vec<u32>,
    /// Microseconds from send to receive, per packet.
    pub latency_us: Vec<u32>,
}

/// Arrivals keyed by (publisher's participant id, "audio" | "video").
pub type Received = Arc<Mutex<HashMap<(String, String), Arrivals>>>;

/// The clock send times are read from: one per process, so sender and
/// receiver agree.
pub fn clock_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        let _ = self.state.send(s);
    }
    async fn on_track(&self, t: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(t);
    }
}

pub struct LoadPeer {
    pub participant: String,
    /// Its tag in payloads.
    pub seed: u32,
    pub pc: Arc<dyn PeerConnection>,
    pub received: Received,
    state: watch::Receiver<RTCPeerConnectionState>,
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    ws_out: mpsc::UnboundedSender<String>,
    pub errors: Arc<Mutex<Vec<Value>>>,
}

/// Sends one participant's audio and video.
#[derive(Clone)]
pub struct MediaSender {
    /// Written into every payload: who sent it.
    pub tag: u32,
    /// The tracks written to.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// See `audio`.
    pub video: Arc<TrackLocalStaticRTP>,
}

impl MediaSender {
    /// Sends one 20 ms Opus packet and, every other call, one VP8 frame in
    /// `packets` packets of `size` bytes: 25 frames/s of 6 × 1000 bytes is
    /// about a 720p camera's 1.2 Mbit/s. Video counters count packets.
    pub async fn send_media(&self, n: u32, pts: (u8, u8), packets: u32, size: usize) {
        let (audio_pt, video_pt) = pts;
        let mut payload = vec![0xfcu8]; // an Opus TOC byte
        payload.extend_from_slice(&n.to_be_bytes());
        payload.extend_from_slice(&clock_us().to_be_bytes());
        payload.extend_from_slice(&self.tag.to_be_bytes());
        payload.extend_from_slice(&[0u8; 40]);
        self.write(
            &self.audio,
            audio_pt,
            n as u16,
            n.wrapping_mul(960),
            0x1000,
            payload,
            true,
        )
        .await;
        if !n.is_multiple_of(2) {
            return;
        }
        let frame = n / 2;
        let key = frame.is_multiple_of(KEYFRAME_EVERY);
        for i in 0..packets {
            let counter = frame * packets + i;
            // VP8 descriptor: S=1 on a frame's first packet, PID=0; then the
            // frame header's P bit (0 = key).
            let start = if i == 0 { 0x10u8 } else { 0x00 };
            let mut payload = vec![start, if key { 0x00 } else { 0x01 }];
            payload.extend_from_slice(&counter.to_be_bytes());
            payload.extend_from_slice(&clock_us().to_be_bytes());
            payload.extend_from_slice(&self.tag.to_be_bytes());
            payload.resize(size.max(payload.len()), 0);
            let last = i + 1 == packets;
            self.write(
                &self.video,
                video_pt,
                counter as u16,
                frame.wrapping_mul(3600),
                0x2000,
                payload,
                last,
            )
            .await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        track: &Arc<TrackLocalStaticRTP>,
        pt: u8,
        seq: u16,
        ts: u32,
        ssrc_base: u32,
        payload: Vec<u8>,
        marker: bool,
    ) {
        let ssrc = track.ssrcs().await.first().copied().unwrap_or(ssrc_base);
        let pkt = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                marker,
                ..Default::default()
            },
            payload: bytes::Bytes::from(payload),
        };
        let _ = track.write_rtp(pkt).await;
    }
}

fn local_track(
    kind: RtpCodecKind,
    mime: &str,
    rate: u32,
    channels: u16,
    ssrc: u32,
    stream: &str,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.into(),
        format!("{stream}-{kind}"),
        format!("{stream}-{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: rate,
                channels,
                ..Default::default()
            },
            ..Default::default()
        }],
    )))
}

/// The payload types negotiated for Opus and VP8 on `pc`'s senders.
pub async fn payload_types(pc: &dyn PeerConnection) -> (u8, u8) {
    let mut audio = 111;
    let mut video = 96;
    for s in pc.get_senders().await {
        if let Ok(p) = s.get_parameters().await {
            for c in p.rtp_parameters.codecs {
                if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                    audio = c.payload_type;
                } else if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8) {
                    video = c.payload_type;
                }
            }
        }
    }
    (audio, video)
}

/// The local SDP once ICE gathering is complete (candidates included).
pub async fn gathered_sdp(pc: &dyn PeerConnection) -> String {
    for _ in 0..500 {
        if let Some(d) = pc.local_description().await {
            if d.sdp.contains("a=end-of-candidates") {
                return d.sdp;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ICE gathering did not complete in 5 s");
}

/// One peer connection with its tracks and what it received.
pub struct Media {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// Its microphone and camera tracks.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// See `audio`.
    pub video: Arc<TrackLocalStaticRTP>,
    /// What arrived, by (sender, kind).
    pub received: Received,
    /// Its connection state.
    pub state: watch::Receiver<RTCPeerConnectionState>,
}

impl Media {
    /// A connection on loopback for participant `stream` (tag `seed` in its
    /// payloads). With `publish`, its audio and video tracks are added as
    /// send-only transceivers; it binds `bind`. Arrivals are keyed by the sending stream's id,
    /// or with `owner_from_payload` by the sender's tag (`p<seed>`), for
    /// servers that rename streams.
    pub async fn new(
        stream: &str,
        seed: u32,
        publish: bool,
        owner_from_payload: bool,
        bind: std::net::IpAddr,
    ) -> Media {
        let participant = stream.to_owned();
        let mut me = MediaEngine::default();
        me.register_default_codecs().expect("codecs");
        let registry =
            register_default_interceptors(Registry::new(), &mut me).expect("interceptors");
        let se = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let (track_tx, mut track_rx) = mpsc::unbounded_channel();
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(me)
                .with_setting_engine(se)
                .with_interceptor_registry(registry)
                .with_handler(Arc::new(Handler {
                    state: state_tx,
                    tracks: track_tx,
                }))
                .with_udp_addrs(vec![std::net::SocketAddr::new(bind, 0).to_string()])
                .build()
                .await
                .expect("peer connection"),
        );
        let audio = local_track(
            RtpCodecKind::Audio,
            MIME_TYPE_OPUS,
            48_000,
            2,
            0x1000 + seed,
            &participant,
        );
        let video = local_track(
            RtpCodecKind::Video,
            MIME_TYPE_VP8,
            90_000,
            0,
            0x2000 + seed,
            &participant,
        );
        for t in [audio.clone(), video.clone()]
            .into_iter()
            .filter(|_| publish)
        {
            pc.add_transceiver_from_track(
                t as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await
            .expect("add transceiver");
        }

        // Received tracks: record the counter in each payload.
        let received: Received = Arc::default();
        let rec = received.clone();
        tokio::spawn(async move {
            while let Some(track) = track_rx.recv().await {
                let rec = rec.clone();
                tokio::spawn(async move {
                    let kind = match track.kind().await {
                        RtpCodecKind::Audio => "audio",
                        _ => "video",
                    };
                    let mut owner = track.stream_id().await.to_string();
                    // Like any jitter buffer, drop repeated sequence numbers: the
                    // SFU's bandwidth probes resend packets when RTX is not
                    // negotiated (as it is not by this peer).
                    let mut seen = std::collections::HashSet::new();
                    while let Some(ev) = track.poll().await {
                        match ev {
                            TrackRemoteEvent::OnOpen(init) => {
                                if let Some(s) = init.stream_ids.first() {
                                    owner = s.to_string();
                                }
                            }
                            TrackRemoteEvent::OnRtpPacket(p) => {
                                if !seen.insert(p.header.sequence_number) {
                                    continue;
                                }
                                if let Some((c, sent, tag)) = stamp_of(kind, &p.payload) {
                                    let took = clock_us().saturating_sub(sent);
                                    let mut rec = rec.lock().unwrap();
                                    let from = if owner_from_payload {
                                        format!("p{tag}")
                                    } else {
                                        owner.clone()
                                    };
                                    let a = rec.entry((from, kind.into())).or_default();
                                    a.counters.push(c);
                                    a.latency_us.push(took.min(u32::MAX as u64) as u32);
                                }
                            }
                            TrackRemoteEvent::OnEnded => break,
                            _ => {}
                        }
                    }
                });
            }
        });

        Media {
            pc,
            audio,
            video,
            received,
            state: state_rx,
        }
    }

    /// Waits until media is connected, or says why not.
    pub async fn connected_within(&mut self, within: Duration) -> Result<(), String> {
        connected_within(&mut self.state, within).await
    }
}

async fn connected_within(
    state: &mut watch::Receiver<RTCPeerConnectionState>,
    within: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(
        within,
        state.wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("the peer connection closed".into()),
        Err(_) => Err(format!("not connected within {within:?}")),
    }
}

impl LoadPeer {
    /// Joins through the signalling WebSocket with `token` and connects media.
    pub async fn join(ws_url: &str, token: &str, seed: u32) -> LoadPeer {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("websocket connects");
        let (mut sink, mut stream) = ws.split();
        sink.send(Message::text(
            json!({"type":"join","v":1,"token":token}).to_string(),
        ))
        .await
        .expect("send join");
        let joined: Value = loop {
            let msg = stream.next().await.expect("joined reply").expect("ws ok");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("json");
                assert_eq!(v["type"], "joined", "join refused: {v}");
                break v;
            }
        };
        let participant = joined["participant"].as_str().unwrap().to_owned();

        let Media {
            pc,
            audio,
            video,
            received,
            state: state_rx,
        } = Media::new(&participant, seed, true, false, [127, 0, 0, 1].into()).await;

        // Signalling: offers from the SFU are answered; errors are kept.
        let (ws_out, mut ws_out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = ws_out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let errors: Arc<Mutex<Vec<Value>>> = Arc::default();
        // The SFU's answer is applied by the reader, in order: an offer that
        // follows it at once must not meet a connection still waiting for it.
        let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        {
            let pc = pc.clone();
            let out = ws_out.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    match v["type"].as_str() {
                        Some("answer") => {
                            let sdp = v["sdp"].as_str().unwrap_or_default().to_owned();
                            let applied = match RTCSessionDescription::answer(sdp) {
                                Ok(answer) => pc
                                    .set_remote_description(answer)
                                    .await
                                    .map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            };
                            let _ = answer_tx.send(applied);
                        }
                        Some("offer") => {
                            let sdp = v["sdp"].as_str().unwrap().to_owned();
                            let offer = RTCSessionDescription::offer(sdp).unwrap();
                            if pc.set_remote_description(offer).await.is_err() {
                                // The peer is closing (the run is over): stop.
                                break;
                            }
                            let answer = pc.create_answer(None).await.expect("create answer");
                            pc.set_local_description(answer).await.expect("set answer");
                            let sdp = gathered_sdp(&*pc).await;
                            let _ = out.send(json!({"type":"answer","sdp":sdp}).to_string());
                        }
                        Some("error") => errors.lock().unwrap().push(v),
                        _ => {}
                    }
                }
            });
        }

        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer).await.expect("set offer");
        let sdp = gathered_sdp(&*pc).await;
        ws_out
            .send(json!({"type":"offer","sdp":sdp}).to_string())
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), answer_rx.recv())
            .await
            .expect("answer within 10 s")
            .expect("answer")
            .expect("accept SFU answer");

        LoadPeer {
            participant,
            seed,
            pc,
            received,
            state: state_rx,
            audio,
            video,
            ws_out,
            errors,
        }
    }

    /// Waits until media is connected; panics after `within` (for tests).
    pub async fn wait_connected(&mut self, within: Duration) {
        self.connected_within(within)
            .await
            .expect("media connected in time");
    }

    /// Waits until media is connected, or says why not.
    pub async fn connected_within(&mut self, within: Duration) -> Result<(), String> {
        connected_within(&mut self.state, within).await
    }

    /// Sends one 20 ms Opus packet and, every other call, one VP8 frame (a
    /// keyframe every [`KEYFRAME_EVERY`] frames) in one small packet. `n`
    /// counts calls from 0.
    pub async fn send_tick(&self, n: u32, pts: (u8, u8)) {
        self.sender().send_media(n, pts, 1, 200).await;
    }

    /// Like [`send_tick`](Self::send_tick), with each video frame in
    /// `packets` packets of `size` bytes (see [`MediaSender::send_media`]).
    pub async fn send_media(&self, n: u32, pts: (u8, u8), packets: u32, size: usize) {
        self.sender().send_media(n, pts, packets, size).await;
    }

    /// A handle that sends this participant's media from another task.
    pub fn sender(&self) -> MediaSender {
        MediaSender {
            tag: self.seed,
            audio: self.audio.clone(),
            video: self.video.clone(),
        }
    }

    /// The payload types negotiated for Opus and VP8.
    pub async fn payload_types(&self) -> (u8, u8) {
        payload_types(&*self.pc).await
    }

    /// The counters received from `from`'s `kind` stream, in arrival order.
    pub fn counters(&self, from: &str, kind: &str) -> Vec<u32> {
        self.received
            .lock()
            .unwrap()
            .get(&(from.to_owned(), kind.to_owned()))
            .map(|a| a.counters.clone())
            .unwrap_or_default()
    }

    pub fn send_raw(&self, text: String) {
        let _ = self.ws_out.send(text);
    }

    /// Leaves the call (as the Leave button does) and closes the connection.
    pub async fn close(self) {
        self.send_raw(json!({"type": "leave"}).to_string());
        let _ = self.pc.close().await;
    }
}

/// The counter, send time and sender's tag a payload carries, after its
/// codec header.
fn stamp_of(kind: &str, payload: &[u8]) -> Option<(u32, u64, u32)> {
    let at = if kind == "audio" { 1 } else { 2 };
    let counter = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(at + 4..at + 12)?.try_into().ok()?);
    let tag = u32::from_be_bytes(payload.get(at + 12..at + 16)?.try_into().ok()?);
    Some((counter, sent, tag))
}
