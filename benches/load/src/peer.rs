//! A non-browser participant on webrtc-rs, an implementation independent of the
//! SFU's str0m, speaking carecall's signalling protocol. It publishes either
//! the real clip (see [`crate::clip`]), in one or three simulcast layers,
//! or small synthetic packets whose
//! payloads carry a counter and their send time, and records, per remote
//! participant, the counter of each packet it receives and how long it took:
//! continuity and latency, end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::clip::{clip, send_log, vp8_descriptor, SendLog, Slot, LAYERS, TOP};

/// Every this-many synthetic video frames is a keyframe.
pub const KEYFRAME_EVERY: u32 = 30;

/// What arrived from one remote stream.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// The counter of each packet, in arrival order (repeats dropped);
    /// counted per stream, so per video layer.
    pub counters: Vec<u32>,
    /// The video layer of each packet (see [`crate::clip::Clip::layers`];
    /// the top one for synthetic video, 0 for audio).
    pub layers: Vec<u8>,
    /// Microseconds from send to receive, per packet.
    pub latency_us: Vec<u32>,
    /// Packets that were neither a whole packet of the clip nor a
    /// synthetic one: changed on the way.
    pub unrecognised: u64,
}

/// Arrivals keyed by (publisher's participant id, "audio" | "video").
pub type Received = Arc<Mutex<HashMap<(String, String), Arrivals>>>;

/// Who sent each incoming stream, by SSRC, where the stream's own id does
/// not say: Janus's renamed streams (filled before Janus starts sending)
/// and a carecall viewer's adopted sections (filled from its signalling,
/// maybe after the first packets).
pub type Owners = Arc<Mutex<HashMap<u32, String>>>;

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
    /// Its number: its SSRCs are made from it.
    pub seed: u32,
    pub pc: Arc<dyn PeerConnection>,
    pub received: Received,
    state: watch::Receiver<RTCPeerConnectionState>,
    media: MediaSender,
    ws_out: mpsc::UnboundedSender<String>,
    pub errors: Arc<Mutex<Vec<Value>>>,
    /// The `recording` and `consent` messages the server sent, in order.
    pub notices: Arc<Mutex<Vec<Value>>>,
}

/// What a participant publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Nothing: a viewer without a camera or microphone.
    Nothing,
    /// A microphone and a camera sending one layer (the clip's top layer,
    /// or synthetic packets).
    OneLayer,
    /// A microphone and a camera sending the clip's three simulcast
    /// layers, as a browser does.
    Simulcast,
}

/// The SSRC of a participant's stream: audio, or video layer `layer`.
fn ssrc_of(seed: u32, video: Option<usize>) -> u32 {
    match video {
        None => 0x1000_0000 | seed,
        Some(layer) => (0x2000_0000 + ((layer as u32) << 24)) | seed,
    }
}

/// What the negotiation settled that each packet must carry.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// Opus's payload type.
    pub audio_pt: u8,
    /// VP8's payload type.
    pub video_pt: u8,
    /// Simulcast only: the ids of the mid and rid header extensions and the
    /// camera section's mid, which name each layer's packets to the server.
    layer_names: Option<(u8, u8, bytes::Bytes)>,
}

/// One RTP packet of the clip, before a WebRTC stack sends it.
pub struct ClipPacket {
    /// Audio (`None`) or the video layer.
    pub layer: Option<usize>,
    /// Its stream's packet counter: the sequence number, extended.
    pub counter: u64,
    /// The RTP timestamp.
    pub ts: u32,
    /// The last packet of its frame.
    pub marker: bool,
    /// The codec payload.
    pub payload: bytes::Bytes,
    /// Which packet of the clip it is.
    slot: Slot,
}

impl ClipPacket {
    /// Logs it in its sender's `log` as sent now: called just before it is
    /// handed to the stack, so the latency measured starts there.
    pub fn log_sent(&self, log: &SendLog) {
        log.sent(self.slot, self.counter, clock_us());
    }
}

/// Tick `n` of the clip (`n` counts 20 ms steps from 0) into `out`: one
/// Opus packet and, every other step, one VP8 frame in each layer sent
/// (all, or only the top one). Returns the video packets, per layer.
pub fn clip_tick(n: u32, simulcast: bool, out: &mut Vec<ClipPacket>) -> [u32; LAYERS] {
    let clip = clip();
    let n = n as u64;
    let mut sent = [0; LAYERS];
    let audio = Slot::audio((n % clip.audio.len() as u64) as usize);
    out.push(ClipPacket {
        layer: None,
        counter: n,
        ts: (n * 960) as u32,
        marker: true,
        payload: clip.audio[audio.index].clone(),
        slot: audio,
    });
    if !n.is_multiple_of(2) {
        return sent;
    }
    let frame_no = n / 2;
    let ts = (frame_no * 3600) as u32;
    let first = if simulcast { 0 } else { TOP };
    for (layer, l) in clip.layers.iter().enumerate().skip(first) {
        let frames = l.frames.len() as u64;
        let frame = &l.frames[(frame_no % frames) as usize];
        let base = frame_no / frames * l.packets as u64 + frame.first as u64;
        for (i, chunk) in frame.chunks.iter().enumerate() {
            let counter = base + i as u64;
            let mut payload = Vec::with_capacity(4 + chunk.len());
            payload.extend_from_slice(&vp8_descriptor(i == 0, frame_no as u16));
            payload.extend_from_slice(chunk);
            out.push(ClipPacket {
                layer: Some(layer),
                counter,
                ts,
                marker: i + 1 == frame.chunks.len(),
                payload: payload.into(),
                slot: Slot::video(layer, frame.first + i),
            });
        }
        sent[layer] = frame.chunks.len() as u32;
    }
    sent
}

/// Sends one participant's audio and video.
#[derive(Clone)]
pub struct MediaSender {
    /// The tracks written to.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// See `audio`.
    pub video: Arc<TrackLocalStaticRTP>,
    /// Its SSRCs are made from it.
    pub seed: u32,
    /// The clip's layers it sends: all, or only the top one.
    pub simulcast: bool,
    /// When each packet of the clip went out.
    pub log: Arc<SendLog>,
}

impl MediaSender {
    /// Sends tick `n` of the clip (`n` counts 20 ms steps from 0): one Opus
    /// packet and, every other step, one VP8 frame in each layer sent.
    /// Returns the video packets sent, per layer.
    pub async fn send_clip(&self, n: u32, wire: &Negotiated) -> [u32; LAYERS] {
        let mut packets = Vec::with_capacity(16);
        let sent = clip_tick(n, self.simulcast, &mut packets);
        for p in packets {
            p.log_sent(&self.log);
            self.write(p.layer, wire, p.counter as u16, p.ts, p.marker, p.payload)
                .await;
        }
        sent
    }

    /// Sends one synthetic 20 ms Opus packet and, every other call, one
    /// synthetic VP8 frame of one 200-byte packet in the top layer; each
    /// payload carries its counter and send time after its codec header.
    async fn send_synthetic(&self, n: u32, wire: &Negotiated) {
        let mut payload = vec![0xfcu8]; // an Opus TOC byte
        payload.extend_from_slice(&n.to_be_bytes());
        payload.extend_from_slice(&clock_us().to_be_bytes());
        payload.extend_from_slice(SYNTHETIC);
        payload.extend_from_slice(&[0u8; 40]);
        self.write(
            None,
            wire,
            n as u16,
            n.wrapping_mul(960),
            true,
            payload.into(),
        )
        .await;
        if !n.is_multiple_of(2) {
            return;
        }
        let frame = n / 2;
        let key = frame.is_multiple_of(KEYFRAME_EVERY);
        // VP8 descriptor: S=1, PID=0; then the frame header's P bit (0 = key).
        let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }];
        payload.extend_from_slice(&frame.to_be_bytes());
        payload.extend_from_slice(&clock_us().to_be_bytes());
        payload.extend_from_slice(SYNTHETIC);
        payload.resize(200, 0);
        let ts = frame.wrapping_mul(3600);
        self.write(Some(TOP), wire, frame as u16, ts, true, payload.into())
            .await;
    }

    /// Writes one packet of audio (`layer` `None`) or of a video layer; a
    /// simulcast layer's carries its mid and rid, as a browser's do, so the
    /// server knows which layer it is.
    async fn write(
        &self,
        layer: Option<usize>,
        wire: &Negotiated,
        seq: u16,
        ts: u32,
        marker: bool,
        payload: bytes::Bytes,
    ) {
        let (track, pt) = match layer {
            None => (&self.audio, wire.audio_pt),
            Some(_) => (&self.video, wire.video_pt),
        };
        let mut header = rtc::rtp::Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: ssrc_of(self.seed, layer),
            marker,
            ..Default::default()
        };
        let named = layer
            .filter(|_| self.simulcast)
            .zip(wire.layer_names.as_ref());
        if let Some((layer, (mid_ext, rid_ext, mid))) = named {
            let rid = clip().layers[layer].rid;
            header.extension = true;
            header.extension_profile = 0xBEDE;
            let _ = header.set_extension(*mid_ext, mid.clone());
            let _ = header.set_extension(*rid_ext, bytes::Bytes::from_static(rid.as_bytes()));
        }
        let _ = track.write_rtp(rtc::rtp::Packet { header, payload }).await;
    }
}

/// A participant's track: audio, or a camera sending the clip's top layer
/// or all its layers.
fn local_track(
    kind: RtpCodecKind,
    seed: u32,
    simulcast: bool,
    stream: &str,
) -> Arc<TrackLocalStaticRTP> {
    let (mime, rate, channels) = match kind {
        RtpCodecKind::Audio => (MIME_TYPE_OPUS, 48_000, 2),
        _ => (MIME_TYPE_VP8, 90_000, 0),
    };
    let coding = |video: Option<usize>| RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(ssrc_of(seed, video)),
            rid: match (video, simulcast) {
                (Some(layer), true) => clip().layers[layer].rid.into(),
                _ => String::new(),
            },
            ..Default::default()
        },
        codec: RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: rate,
            channels,
            ..Default::default()
        },
        ..Default::default()
    };
    let codings = match (kind, simulcast) {
        (RtpCodecKind::Audio, _) => vec![coding(None)],
        (_, false) => vec![coding(Some(TOP))],
        (_, true) => (0..LAYERS).map(|l| coding(Some(l))).collect(),
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.into(),
        format!("{stream}-{kind}"),
        format!("{stream}-{kind}"),
        kind,
        codings,
    )))
}

/// What the negotiation on `pc` settled for its senders: payload types,
/// and for a simulcast camera the header extensions naming its layers.
async fn negotiated(pc: &dyn PeerConnection, simulcast: bool) -> Negotiated {
    let mut wire = Negotiated {
        audio_pt: 111,
        video_pt: 96,
        layer_names: None,
    };
    for t in pc.get_transceivers().await {
        let Ok(Some(sender)) = t.sender().await else {
            continue;
        };
        let Ok(p) = sender.get_parameters().await else {
            continue;
        };
        let mut video = false;
        for c in p.rtp_parameters.codecs {
            if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                wire.audio_pt = c.payload_type;
            } else if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8) {
                wire.video_pt = c.payload_type;
                video = true;
            }
        }
        let ext = |uri: &str| {
            let found = p.rtp_parameters.header_extensions.iter();
            found.filter(|e| e.uri == uri).map(|e| e.id as u8).next()
        };
        if let (true, true, Some(mid_ext), Some(rid_ext), Ok(Some(mid))) =
            (simulcast, video, ext(MID_URI), ext(RID_URI), t.mid().await)
        {
            wire.layer_names = Some((mid_ext, rid_ext, mid.into()));
        }
    }
    wire
}

/// The header extensions a simulcast camera names its layers with.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// See [`MID_URI`].
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// The first SSRC of each media section of `sdp`, by its mid.
pub fn ssrc_by_mid(sdp: &str) -> HashMap<String, u32> {
    let mut found = HashMap::new();
    let (mut mid, mut ssrc) = (None, None);
    for line in sdp.lines().chain(["m="]) {
        if line.starts_with("m=") {
            if let (Some(m), Some(s)) = (mid.take(), ssrc.take()) {
                found.insert(m, s);
            }
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
            let first = rest.split_whitespace().next().and_then(|s| s.parse().ok());
            ssrc = ssrc.or(first);
        }
    }
    found
}

/// Names a viewer's incoming SSRCs from the SFU's signalling: its session
/// descriptions give each section's SSRC, its `track` messages each
/// section's sender.
pub(crate) struct Naming {
    owners: Owners,
    ssrcs: HashMap<String, u32>,
    senders: HashMap<String, String>,
}

impl Naming {
    pub(crate) fn new(owners: Owners) -> Naming {
        Naming {
            owners,
            ssrcs: HashMap::new(),
            senders: HashMap::new(),
        }
    }

    /// Takes what message `v` says about sections, and names what it can.
    pub(crate) fn learn(&mut self, v: &Value) {
        if let Some(sdp) = v["sdp"].as_str() {
            self.ssrcs.extend(ssrc_by_mid(sdp));
        }
        if let (Some("track"), Some(mid), Some(who)) = (
            v["type"].as_str(),
            v["mid"].as_str(),
            v["participant"].as_str(),
        ) {
            self.senders.insert(mid.to_owned(), who.to_owned());
        }
        let mut owners = self.owners.lock().unwrap();
        for (mid, who) in &self.senders {
            if let Some(ssrc) = self.ssrcs.get(mid) {
                owners.insert(*ssrc, who.clone());
            }
        }
    }
}

/// Applies the SFU's `offer` and sets the answer to it.
async fn answer_offer(
    pc: &dyn PeerConnection,
    offer: RTCSessionDescription,
) -> Result<(), webrtc::error::Error> {
    pc.set_remote_description(offer).await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await
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
    /// Its microphone and camera, and when their clip packets went out.
    pub sender: MediaSender,
    /// What arrived, by (sender, kind).
    pub received: Received,
    /// Its connection state.
    pub state: watch::Receiver<RTCPeerConnectionState>,
    /// Who sent each incoming SSRC, if the server renames streams.
    pub owners: Option<Owners>,
}

/// What one incoming stream has given so far, to record each packet's
/// counter and latency under its sender: shared by the webrtc-rs peers and
/// the str0m viewers ([`crate::lite`]).
pub(crate) struct StreamRecord {
    video: bool,
    kind: &'static str,
    /// Who sent it, once known.
    pub(crate) owner: Option<String>,
    log: Option<Arc<SendLog>>,
    /// `(owner, kind)`, the key of its arrivals, made once rather than
    /// per packet: the light peers record 100,000 packets a second.
    key: Option<(String, String)>,
    // Like any jitter buffer, drop repeats: the SFU's bandwidth probes
    // resend packets when RTX is not negotiated (as it is not by this peer).
    seen: [Seen; LAYERS],
}

/// Which of one layer's packet counters arrived, over the last
/// `Seen::SPAN` counters (about 7 s of the top layer); a packet older than
/// that counts as a repeat. A set of every counter grew by 100,000 entries
/// a second across the light peers.
#[derive(Default)]
struct Seen {
    top: Option<u64>,
    bits: [u64; Seen::SPAN as usize / 64],
}

impl Seen {
    const SPAN: u64 = 1024;

    /// Marks `counter` arrived: whether it is new.
    fn insert(&mut self, counter: u64) -> bool {
        match self.top {
            None => {}
            // Counters passed over on the way up have not arrived yet.
            Some(top) if counter > top => {
                for c in (top + 1..counter).take(Self::SPAN as usize) {
                    self.set(c, false);
                }
            }
            Some(top) if top - counter >= Self::SPAN => return false,
            Some(_) if self.get(counter) => return false,
            Some(_) => {}
        }
        self.top = Some(self.top.map_or(counter, |t| t.max(counter)));
        self.set(counter, true);
        true
    }

    fn get(&self, c: u64) -> bool {
        let i = (c % Self::SPAN) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, c: u64, on: bool) {
        let i = (c % Self::SPAN) as usize;
        match on {
            true => self.bits[i / 64] |= 1 << (i % 64),
            false => self.bits[i / 64] &= !(1 << (i % 64)),
        }
    }
}

impl StreamRecord {
    pub(crate) fn new(video: bool, owner: Option<String>) -> StreamRecord {
        StreamRecord {
            video,
            kind: if video { "video" } else { "audio" },
            owner,
            log: None,
            key: None,
            seen: Default::default(),
        }
    }

    /// Records one packet's payload: for a packet not seen before, its
    /// counter and how long it took, under its sender and kind. A clip
    /// packet is known by its bytes and timed by its sender's log; a
    /// synthetic one carries both. Nothing while the sender is unknown.
    pub(crate) fn packet(&mut self, rec: &Received, payload: &[u8]) {
        let Some(owner) = &self.owner else {
            return;
        };
        let (video, kind) = (self.video, self.kind);
        if self.key.as_ref().is_none_or(|(o, _)| o != owner) {
            self.key = Some((owner.clone(), kind.into()));
        }
        let slot = clip().identify(video, payload);
        let stamp = match slot {
            Some(slot) => self.log.get_or_insert_with(|| send_log(owner)).last(slot),
            None => stamp_of(kind, payload),
        };
        let key = self.key.as_ref().expect("made above");
        let Some((counter, sent)) = stamp else {
            arrivals(&mut rec.lock().unwrap(), key).unrecognised += 1;
            return;
        };
        let layer = match (slot, video) {
            (Some(s), _) => s.layer,
            (None, true) => TOP,
            (None, false) => 0,
        };
        if !self.seen.get_mut(layer).is_some_and(|s| s.insert(counter)) {
            return;
        }
        let took = clock_us().saturating_sub(sent);
        let mut rec = rec.lock().unwrap();
        let a = arrivals(&mut rec, key);
        a.counters.push(counter as u32);
        a.layers.push(layer as u8);
        a.latency_us.push(took.min(u32::MAX as u64) as u32);
    }
}

/// The arrivals under `key`, made on first use; no allocation once made.
fn arrivals<'a>(
    rec: &'a mut HashMap<(String, String), Arrivals>,
    key: &(String, String),
) -> &'a mut Arrivals {
    if !rec.contains_key(key) {
        rec.insert(key.clone(), Arrivals::default());
    }
    rec.get_mut(key).expect("inserted above")
}

/// Records what arrives on `track` (see [`StreamRecord`]).
async fn record(track: Arc<dyn TrackRemote>, rec: Received, owners: Option<Owners>) {
    let video = track.kind().await != RtpCodecKind::Audio;
    let mut stream = StreamRecord::new(video, Some(track.stream_id().await.to_string()));
    let mut ssrc = None;
    while let Some(ev) = track.poll().await {
        match ev {
            TrackRemoteEvent::OnOpen(init) => match &owners {
                // Named by the server's signalling, maybe after the first
                // packets: looked up until it is known.
                Some(_) => (stream.owner, ssrc) = (None, Some(init.ssrc)),
                None => {
                    stream.owner = init
                        .stream_ids
                        .first()
                        .map(|s| s.to_string())
                        .or(stream.owner.take())
                }
            },
            TrackRemoteEvent::OnRtpPacket(p) => {
                if stream.owner.is_none() {
                    let named = owners.as_ref().zip(ssrc);
                    stream.owner = named.and_then(|(o, s)| o.lock().unwrap().get(&s).cloned());
                }
                stream.packet(&rec, &p.payload);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

impl Media {
    /// A connection for participant `stream` (SSRCs made from `seed`),
    /// binding `bind`. With `publish`, its audio and video tracks
    /// are added as send-only transceivers. Arrivals are keyed by the
    /// sending stream's id, or with `owners` by the name given to its SSRC
    /// there, for servers that rename streams.
    pub async fn new(
        stream: &str,
        seed: u32,
        publish: Publish,
        owners: Option<Owners>,
        bind: std::net::IpAddr,
    ) -> Media {
        let participant = stream.to_owned();
        let mut me = MediaEngine::default();
        me.register_default_codecs().expect("codecs");
        // A browser's simulcast layers are named by these.
        for uri in [MID_URI, RID_URI] {
            let capability = RTCRtpHeaderExtensionCapability { uri: uri.into() };
            me.register_header_extension(capability, RtpCodecKind::Video, None)
                .expect("header extension");
        }
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
        let simulcast = publish == Publish::Simulcast;
        let audio = local_track(RtpCodecKind::Audio, seed, false, &participant);
        let video = local_track(RtpCodecKind::Video, seed, simulcast, &participant);
        for t in [audio.clone(), video.clone()]
            .into_iter()
            .filter(|_| publish != Publish::Nothing)
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

        // Received tracks: record each packet's counter and latency.
        let received: Received = Arc::default();
        let rec = received.clone();
        let names = owners.clone();
        tokio::spawn(async move {
            while let Some(track) = track_rx.recv().await {
                tokio::spawn(record(track, rec.clone(), names.clone()));
            }
        });

        Media {
            pc,
            sender: MediaSender {
                audio,
                video,
                seed,
                simulcast,
                log: send_log(stream),
            },
            received,
            state: state_rx,
            owners,
        }
    }

    /// What the negotiation settled for sending.
    pub async fn negotiated(&self) -> Negotiated {
        negotiated(&*self.pc, self.sender.simulcast).await
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

/// The two halves of a signalling WebSocket.
pub(crate) type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
/// See [`WsSink`].
pub(crate) type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Opens the signalling WebSocket and joins with `token`: the socket's
/// halves and the participant id the server gave.
pub(crate) async fn join_socket(ws_url: &str, token: &str) -> (WsSink, WsStream, String) {
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
    (sink, stream, participant)
}

/// Sends what arrives on the returned channel to `sink`, in order.
pub(crate) fn ws_writer(mut sink: WsSink) -> mpsc::UnboundedSender<String> {
    let (out, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    out
}

impl LoadPeer {
    /// Joins through the signalling WebSocket with `token`, with a
    /// microphone and a camera sending one layer, and connects media.
    pub async fn join(ws_url: &str, token: &str, seed: u32) -> LoadPeer {
        Self::connect(ws_url, token, seed, Publish::OneLayer).await
    }

    /// Joins like [`join`](Self::join), the camera sending three simulcast
    /// layers as a browser's does.
    pub async fn join_simulcast(ws_url: &str, token: &str, seed: u32) -> LoadPeer {
        Self::connect(ws_url, token, seed, Publish::Simulcast).await
    }

    /// Joins like [`join`](Self::join) with no microphone or camera: it only
    /// receives, as a viewer does.
    pub async fn watch(ws_url: &str, token: &str, seed: u32) -> LoadPeer {
        Self::connect(ws_url, token, seed, Publish::Nothing).await
    }

    /// Joins with `token`, publishing what `publish` says.
    async fn connect(ws_url: &str, token: &str, seed: u32, publish: Publish) -> LoadPeer {
        let (sink, mut stream, participant) = join_socket(ws_url, token).await;
        // A viewer's receive-only sections are adopted for the others'
        // tracks under names of the SFU's choosing; its `track` messages
        // say whose each section is, as a browser learns it.
        let viewer = (publish == Publish::Nothing).then(Owners::default);
        let local = [127, 0, 0, 1].into();
        let Media {
            pc,
            sender: media,
            received,
            state: state_rx,
            owners: _,
        } = Media::new(&participant, seed, publish, viewer.clone(), local).await;
        if publish == Publish::Nothing {
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                let init = RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                };
                pc.add_transceiver_from_kind(kind, Some(init))
                    .await
                    .expect("add a receiving transceiver");
            }
        }

        // Signalling: offers from the SFU are answered; errors are kept.
        let ws_out = ws_writer(sink);
        let errors: Arc<Mutex<Vec<Value>>> = Arc::default();
        let notices: Arc<Mutex<Vec<Value>>> = Arc::default();
        // The SFU's answer is applied by the reader, in order: an offer that
        // follows it at once must not meet a connection still waiting for it.
        let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        {
            let pc = pc.clone();
            let out = ws_out.clone();
            let errors = errors.clone();
            let notices = notices.clone();
            let mut naming = viewer.map(Naming::new);
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    if let Some(n) = &mut naming {
                        n.learn(&v);
                    }
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
                            if answer_offer(&*pc, offer).await.is_err() {
                                // The peer is closing (the run is over): stop.
                                break;
                            }
                            let sdp = gathered_sdp(&*pc).await;
                            let _ = out.send(json!({"type":"answer","sdp":sdp}).to_string());
                        }
                        Some("error") => errors.lock().unwrap().push(v),
                        Some("recording" | "consent") => notices.lock().unwrap().push(v),
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
            media,
            ws_out,
            errors,
            notices,
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

    /// Sends one synthetic 20 ms Opus packet and, every other call, one
    /// synthetic VP8 frame (a keyframe every [`KEYFRAME_EVERY`] frames) in one
    /// small packet. `n` counts calls from 0.
    pub async fn send_tick(&self, n: u32, wire: &Negotiated) {
        self.media.send_synthetic(n, wire).await;
    }

    /// A handle that sends this participant's media from another task.
    pub fn sender(&self) -> MediaSender {
        self.media.clone()
    }

    /// What the negotiation settled for sending.
    pub async fn negotiated(&self) -> Negotiated {
        negotiated(&*self.pc, self.media.simulcast).await
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

/// Follows the counter and send time in a synthetic payload.
const SYNTHETIC: &[u8; 4] = b"cc-s";

/// The counter and send time a synthetic payload carries after its codec
/// header.
fn stamp_of(kind: &str, payload: &[u8]) -> Option<(u64, u64)> {
    let at = if kind == "audio" { 1 } else { 2 };
    if payload.get(at + 12..at + 16)? != SYNTHETIC {
        return None;
    }
    let counter = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(at + 4..at + 12)?.try_into().ok()?);
    Some((counter.into(), sent))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repeat_is_known_until_it_falls_out_of_the_window() {
        let mut seen = super::Seen::default();
        assert!(seen.insert(5));
        assert!(!seen.insert(5), "a repeat");
        assert!(seen.insert(9), "a jump up");
        assert!(seen.insert(7), "a late first arrival inside the window");
        assert!(!seen.insert(7));
        assert!(
            seen.insert(9 + super::Seen::SPAN),
            "a jump of a whole window"
        );
        assert!(!seen.insert(9), "older than the window: taken as a repeat");
        assert!(
            seen.insert(10 + super::Seen::SPAN),
            "its slot was cleared by the jump"
        );
    }

    #[test]
    fn each_mid_gets_its_own_sections_ssrc() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ssrc:11 cname:janus\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ssrc:22 cname:janus\r\na=ssrc:23 cname:janus\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ssrc:44 cname:janus\r\na=mid:3\r\n";
        let found = super::ssrc_by_mid(sdp);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found["0"], 11);
        assert_eq!(found["1"], 22);
        assert_eq!(found["3"], 44);
    }
}
