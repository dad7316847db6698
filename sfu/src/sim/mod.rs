//! A call in simulated time: str0m client sessions (standing in for browsers)
//! and a [`Room`] exchange datagrams in memory, with no socket and no clock.
//! Used by protocol tests and the forwarding benchmark, so both exercise the
//! real DTLS-SRTP path.
//!
//! Each direction of each peer's link is perfect unless given a
//! [`LinkModel`] (rate limit, loss, delay; see `link.rs`): then the datagrams
//! it holds arrive in [`SimCall::settle`] when their time comes. A perfect
//! link costs nothing beyond one check per datagram.

mod cascade;
mod link;

pub use cascade::SimCascade;

pub use link::{Bottleneck, Departure, GilbertElliott, Link, LinkModel, LinkStats};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::{MediaSignal, ParticipantId, Room, RoomId};

/// The simulcast layers a simulated camera publishes, lowest first.
const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// Index of a simulcast rid in [`SIMULCAST_RIDS`]; no rid is the full layer.
fn layer_index(rid: Option<&str>) -> usize {
    rid.and_then(|r| SIMULCAST_RIDS.iter().position(|s| *s == r))
        .unwrap_or(SIMULCAST_RIDS.len() - 1)
}

/// How a simulated call is built, for calls the shortcuts on [`SimCall`]
/// do not cover (simulcast with bandwidth estimation, say). Start from
/// [`SimCall::builder`].
#[derive(Debug, Clone, Copy)]
pub struct SimCallBuilder {
    participants: usize,
    publishers: usize,
    estimate_bandwidth: bool,
    simulcast: bool,
    /// This participant's browser does not negotiate redundant audio (RED);
    /// all others do.
    without_red: Option<usize>,
    /// The first participant's id; the others follow it.
    first_id: u64,
}

impl SimCallBuilder {
    /// Only the first `n` participants publish (audio and video); the rest
    /// only receive.
    pub fn publishers(mut self, n: usize) -> Self {
        self.publishers = n.min(self.participants);
        self
    }

    /// Downlink bandwidth estimation on, as in production.
    pub fn estimating_bandwidth(mut self) -> Self {
        self.estimate_bandwidth = true;
        self
    }

    /// Cameras published in three simulcast layers (rids `q`, `h`, `f`).
    pub fn simulcast(mut self) -> Self {
        self.simulcast = true;
        self
    }

    /// Participant `i`'s browser does not negotiate redundant audio.
    pub fn without_red(mut self, i: usize) -> Self {
        self.without_red = Some(i);
        self
    }

    /// Numbers participants from `id` (1 unless told): calls on two nodes
    /// of one hub never share an id.
    pub fn first_id(mut self, id: u64) -> Self {
        self.first_id = id;
        self
    }

    /// Joins everyone, connected and negotiated, on perfect links.
    pub fn build(self) -> SimCall {
        SimCall::build(self)
    }
}

/// One simulated browser.
pub struct SimPeer {
    /// Its participant id in the room.
    pub id: ParticipantId,
    /// Its WebRTC session (str0m, RTP mode).
    pub rtc: Rtc,
    addr: SocketAddr,
    audio_mid: Option<Mid>,
    video_mid: Mid,
    pending: Option<SdpPendingOffer>,
    /// Next sequence number per video stream (`q`, `h`, `f` or the only one).
    next_seq: [u64; 3],
    /// Next VP8 picture id and TL0PICIDX per video stream, numbered far
    /// apart as Chromium's simulcast layers are (see [`SimCall::picture_numbers`]).
    next_picture: [(u16, u8); 3],
    next_audio_seq: u64,
    /// The room → peer direction of its link; `None` is a perfect link.
    downlink: Option<Link>,
    /// The peer → room direction.
    uplink: Option<Link>,
    /// Payloads of received video packets, in arrival order, when recording is on.
    pub received_video: Vec<Arc<[u8]>>,
    /// Whether to keep `received_video`.
    pub record: bool,
    /// RTP sequence number and timestamp of each received video packet, in
    /// arrival order, when recording is on.
    pub received_headers: Vec<(u64, u32)>,
    /// Payload type and payload of each received audio packet, when recording.
    pub received_audio: Vec<(u8, Arc<[u8]>)>,
    /// Signals for this peer other than SDP (those are answered at once).
    pub signals: Vec<MediaSignal>,
    /// Keyframe requests (PLI/FIR) the SFU sent this peer.
    pub keyframe_requests: u64,
    /// The same, per simulcast layer (`q`, `h`, `f`; an unlayered stream counts as `f`).
    pub layer_keyframe_requests: [u64; 3],
}

/// One VP8 frame for [`SimCall::send_frame`]: `packets` packets, each
/// carrying `payload`, on simulcast layer `rid` (or the only stream).
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    /// `q`, `h` or `f`; `None` for a call without simulcast.
    pub rid: Option<&'a str>,
    /// What each packet carries after its VP8 descriptor.
    pub payload: &'a [u8],
    /// A keyframe (else a delta frame).
    pub keyframe: bool,
    /// How many packets the frame takes.
    pub packets: usize,
}

/// A room and its simulated participants.
pub struct SimCall {
    /// The SFU room under test.
    pub room: Room,
    /// The participants' sessions.
    pub peers: Vec<SimPeer>,
    /// Simulated time.
    pub now: Instant,
    server: SocketAddr,
    /// Datagrams the room sent, in total.
    pub transmitted: u64,
    /// When false, datagrams from the room are counted but not delivered to the
    /// peers: a benchmark measures the SFU, not the receivers.
    pub deliver: bool,
    /// Write VP8 payload descriptors as Chromium does for simulcast (15-bit
    /// picture id, TL0PICIDX, temporal layer 0; 6 bytes) instead of the plain
    /// one-byte descriptor.
    pub picture_numbers: bool,
    /// Drop the next RTP datagram the room sends to this peer (by index).
    pub lose_next_rtp_to: Option<usize>,
    /// Drop the next RTP datagram this peer (by index) sends to the room.
    pub lose_next_rtp_from: Option<usize>,
    /// Datagrams the room sent while taking a peer's datagrams, delivered
    /// at the next pump.
    sent_between: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

/// True for an SRTP datagram carrying RTP (not RTCP, STUN or DTLS): version 2
/// and a payload type outside RTCP's 64–95 range (RFC 5761 §4).
fn is_rtp(d: &[u8]) -> bool {
    d.len() > 12 && d[0] >> 6 == 2 && !(64..=95).contains(&(d[1] & 0x7f))
}

impl SimPeer {
    /// The room → peer direction of its link, unless perfect.
    pub fn downlink(&self) -> Option<&Link> {
        self.downlink.as_ref()
    }

    /// The same, to change (see [`Link::drop_next`]).
    pub fn downlink_mut(&mut self) -> Option<&mut Link> {
        self.downlink.as_mut()
    }

    /// The peer → room direction of its link, unless perfect.
    pub fn uplink(&self) -> Option<&Link> {
        self.uplink.as_ref()
    }

    /// The same, to change.
    pub fn uplink_mut(&mut self) -> Option<&mut Link> {
        self.uplink.as_mut()
    }
}

/// Makes `link` behave as `model`, keeping what it has in flight.
fn shape(link: &mut Option<Link>, model: LinkModel) {
    match link {
        Some(link) => link.reshape(model),
        None => *link = Some(Link::new(model)),
    }
}

impl SimCall {
    /// A room with `n` participants, each publishing one audio and one video
    /// track, fully connected and negotiated.
    pub fn new(n: usize) -> SimCall {
        Self::builder(n).build()
    }

    /// A call of `n` participants to shape before it is built; as
    /// [`SimCall::new`] unless told otherwise.
    pub fn builder(n: usize) -> SimCallBuilder {
        SimCallBuilder {
            participants: n,
            publishers: n,
            estimate_bandwidth: false,
            simulcast: false,
            without_red: None,
            first_id: 1,
        }
    }

    /// Like [`SimCall::new`], with downlink bandwidth estimation on.
    pub fn estimating_bandwidth(n: usize) -> SimCall {
        Self::builder(n).estimating_bandwidth().build()
    }

    /// Like [`SimCall::new`], with every camera published in three simulcast
    /// layers (rids `q`, `h`, `f`) as the browser client does; send with
    /// [`SimCall::send_layer`].
    pub fn simulcast(n: usize) -> SimCall {
        Self::builder(n).simulcast().build()
    }

    /// Like [`SimCall::new`], with every browser but `without_red`
    /// negotiating redundant audio (RED, RFC 2198); send with
    /// [`SimCall::send_audio`].
    pub fn redundant_audio(n: usize, without_red: usize) -> SimCall {
        Self::builder(n).without_red(without_red).build()
    }

    /// One publisher (participant 0, audio and video) and `subscribers`
    /// participants who only receive: the fan-out shape.
    pub fn fan_out(subscribers: usize) -> SimCall {
        Self::builder(subscribers + 1).publishers(1).build()
    }

    /// Makes the room → peer `i` direction behave as `model` from now on;
    /// datagrams already in flight arrive as they were due.
    pub fn set_downlink(&mut self, i: usize, model: LinkModel) {
        shape(&mut self.peers[i].downlink, model);
    }

    /// Makes the peer `i` → room direction behave as `model` from now on.
    pub fn set_uplink(&mut self, i: usize, model: LinkModel) {
        shape(&mut self.peers[i].uplink, model);
    }

    fn build(options: SimCallBuilder) -> SimCall {
        let now = Instant::now();
        let server: SocketAddr = "127.0.0.1:40000".parse().expect("static address");
        let mut call = SimCall {
            room: Room::new(RoomId("sim".into())),
            peers: Vec::new(),
            now,
            server,
            transmitted: 0,
            deliver: true,
            picture_numbers: false,
            lose_next_rtp_to: None,
            lose_next_rtp_from: None,
            sent_between: Vec::new(),
        };
        call.room
            .set_bandwidth_estimation(options.estimate_bandwidth);
        for i in 0..options.participants {
            call.join(
                options.first_id + i as u64,
                i,
                i < options.publishers,
                options.simulcast,
                options.without_red != Some(i),
            );
            call.settle(Duration::from_millis(200));
        }
        call.settle(Duration::from_secs(1));
        call
    }

    fn join(&mut self, id: u64, i: usize, publishes: bool, simulcast: bool, red: bool) {
        let addr: SocketAddr = format!("127.0.1.{}:5000", i + 1).parse().expect("address");
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_opus(true, red)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        let mut api = rtc.sdp_api();
        let mut audio_mid = None;
        let video_mid = if publishes {
            audio_mid =
                Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            let layers = simulcast.then(|| {
                let mut s = Simulcast::new();
                s.send = SIMULCAST_RIDS
                    .iter()
                    .map(|r| SimulcastLayer::new(r))
                    .collect();
                s
            });
            api.add_media(MediaKind::Video, Direction::SendOnly, None, None, layers)
        } else {
            // An offer needs an m-line; a receive-only one becomes a receive slot.
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None)
        };
        let (offer, pending) = api.apply().expect("an offer");
        let id = ParticipantId(id);
        let server_candidate = Candidate::host(self.server, "udp").expect("host candidate");
        self.room
            .connect(self.now, id, &offer.to_sdp_string(), &[server_candidate])
            .expect("room accepts the offer");
        self.peers.push(SimPeer {
            id,
            rtc,
            addr,
            audio_mid,
            video_mid,
            pending: Some(pending),
            next_seq: [1; 3],
            // The quarter layer wraps both within a few frames.
            next_picture: [(32_760, 250), (12_000, 120), (30_000, 240)],
            next_audio_seq: 1,
            downlink: None,
            uplink: None,
            received_video: Vec::new(),
            received_headers: Vec::new(),
            received_audio: Vec::new(),
            signals: Vec::new(),
            record: false,
            keyframe_requests: 0,
            layer_keyframe_requests: [0; 3],
        });
    }

    /// Runs the call for `span` of simulated time in 1 ms steps.
    pub fn settle(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.step();
        }
    }

    /// Runs the call for one millisecond of simulated time.
    pub fn step(&mut self) {
        self.now += Duration::from_millis(1);
        // What the links held arrives first, at its own time within the
        // step: the receivers' arrival stamps feed the estimator.
        self.deliver_due();
        self.room.handle_timeout(self.now);
        for p in &mut self.peers {
            let _ = p.rtc.handle_input(Input::Timeout(self.now));
        }
        self.pump();
    }

    /// Exchanges everything pending between the peers and the room.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            // Room → peers.
            let now = self.now;
            let mut out: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> =
                self.sent_between.drain(..).collect();
            let deliver = self.deliver;
            let mut sent = out.len() as u64;
            if !deliver {
                out.clear();
            }
            self.room.poll(now, |t| {
                sent += 1;
                if deliver {
                    out.push_back((t.source, t.destination, t.contents.to_vec()));
                }
            });
            self.transmitted += sent;
            moved |= sent > 0;
            while let Some((from, to, data)) = out.pop_front() {
                let target = self.peers.iter().position(|p| p.addr == to);
                if target.is_some() && target == self.lose_next_rtp_to && is_rtp(&data) {
                    self.lose_next_rtp_to = None;
                    continue;
                }
                let Some(i) = target else { continue };
                match &mut self.peers[i].downlink {
                    Some(link) => link.enter(now, from, to, data),
                    None => moved |= self.receive_at_peer(i, now, from, to, &data),
                }
            }
            // What zero-delay links let through at once.
            moved |= self.deliver_due();
            // Signals → peers.
            while let Some((id, signal)) = self.room.poll_signal() {
                moved = true;
                self.signal(id, signal);
            }
            // Peers → room.
            for i in 0..self.peers.len() {
                moved |= self.drain_peer(i);
            }
            if !moved {
                return;
            }
        }
    }

    /// Hands peer `i` a datagram that arrived at `at`, and everything the
    /// peer sends in reply to the room.
    fn receive_at_peer(
        &mut self,
        i: usize,
        at: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(r) = Receive::new(Protocol::Udp, from, to, data) else {
            return false;
        };
        let _ = self.peers[i].rtc.handle_input(Input::Receive(at, r));
        // A str0m session holds one incoming RTP packet at a time.
        self.drain_peer(i)
    }

    /// Hands the room a datagram from a peer that arrived at `at`.
    // Never inlined: `benches/instructions.sh` counts the room's work by
    // this function's name (and `Room::poll`'s). Sim code only.
    #[inline(never)]
    fn receive_at_room(&mut self, at: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let Ok(r) = Receive::new(Protocol::Udp, from, to, data) else {
            return;
        };
        let input = Input::Receive(at, r);
        if let Some(owner) = self.room.accepts(&input) {
            // As a media worker does: the session that took a datagram is
            // polled before the next one.
            self.room.handle_input(owner, input);
            let held = &mut self.sent_between;
            self.room.poll_received(self.now, |t| {
                held.push((t.source, t.destination, t.contents.to_vec()))
            });
        }
    }

    /// Delivers what the links hold that is due by now, in arrival order
    /// per link; returns whether anything arrived.
    fn deliver_due(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for i in 0..self.peers.len() {
            while let Some(d) = self.peers[i].downlink.as_mut().and_then(|l| l.pop_due(now)) {
                moved = true;
                self.receive_at_peer(i, d.arrival, d.source, d.destination, &d.contents);
            }
            while let Some(d) = self.peers[i].uplink.as_mut().and_then(|l| l.pop_due(now)) {
                moved = true;
                self.receive_at_room(d.arrival, d.source, d.destination, &d.contents);
            }
        }
        moved
    }

    fn signal(&mut self, id: ParticipantId, signal: MediaSignal) {
        let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
            return;
        };
        match signal {
            MediaSignal::Answer(sdp) => {
                if let (Some(pending), Ok(answer)) =
                    (p.pending.take(), SdpAnswer::from_sdp_string(&sdp))
                {
                    p.rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .expect("peer accepts answer");
                }
            }
            MediaSignal::Offer(sdp) => {
                let offer = SdpOffer::from_sdp_string(&sdp).expect("room offers valid SDP");
                let answer = p
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .expect("peer accepts offer");
                self.room
                    .accept_answer(id, &answer.to_sdp_string())
                    .expect("room accepts answer");
            }
            other => p.signals.push(other),
        }
    }

    fn drain_peer(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        loop {
            let p = &mut self.peers[i];
            match p.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    moved = true;
                    let data = t.contents.to_vec();
                    if self.lose_next_rtp_from == Some(i) && is_rtp(&data) {
                        self.lose_next_rtp_from = None;
                        continue;
                    }
                    let (from, to) = (t.source, t.destination);
                    match &mut p.uplink {
                        Some(link) => link.enter(now, from, to, data),
                        None => self.receive_at_room(now, from, to, &data),
                    }
                }
                Ok(Output::Event(Event::RtpPacket(pkt))) => {
                    let pt = pkt.header.payload_type;
                    let audio = p
                        .rtc
                        .codec_config()
                        .find(|c| c.pt() == pt || c.red() == Some(pt));
                    if p.record && audio.is_some_and(|c| c.spec().codec == Codec::Opus) {
                        p.received_audio.push((*pt, pkt.payload.clone()));
                    } else if p.record && pkt.payload.len() > 40 {
                        p.received_video.push(pkt.payload.clone());
                        p.received_headers.push((*pkt.seq_no, pkt.header.timestamp));
                    }
                }
                Ok(Output::Event(Event::KeyframeRequest(req))) => {
                    p.keyframe_requests += 1;
                    p.layer_keyframe_requests[layer_index(req.rid.as_deref())] += 1;
                }
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(_)) | Err(_) => return moved,
            }
        }
    }

    /// Makes participant `i` send one VP8 packet carrying `payload`, then
    /// forwards it through the room.
    pub fn send_video(&mut self, i: usize, payload: &[u8], keyframe: bool) {
        self.send_layer(i, None, payload, keyframe);
    }

    /// Like [`SimCall::send_video`], on one simulcast layer (`q`, `h` or `f`)
    /// of a call built with [`SimCall::simulcast`].
    pub fn send_layer(&mut self, i: usize, rid: Option<&str>, payload: &[u8], keyframe: bool) {
        let frame = Frame {
            rid,
            payload,
            keyframe,
            packets: 1,
        };
        self.send_frame(i, frame);
    }

    /// Makes participant `i` send one VP8 frame in one burst, as a camera
    /// does, then forwards it through the room.
    pub fn send_frame(&mut self, i: usize, frame: Frame) {
        self.queue_frame(i, frame);
        // As a media worker does after a burst: one poll of the room, no
        // timer of its own.
        self.take_from(i);
        self.pump();
    }

    /// Writes a frame as [`SimCall::send_frame`] does, without sending it
    /// yet: [`SimCall::take_from`] hands it to the room.
    pub fn queue_frame(&mut self, i: usize, frame: Frame) {
        let Frame {
            rid,
            payload,
            keyframe,
            packets,
        } = frame;
        let now = self.now;
        let p = &mut self.peers[i];
        let stream = layer_index(rid);
        let Some(pt) = p
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == Codec::Vp8)
            .map(|c| c.pt())
        else {
            return;
        };
        let first: SeqNo = p.next_seq[stream].into();
        let rtp_time = (first.as_u16() as u32) * 3000;
        let (picture_id, tl0) = p.next_picture[stream];
        p.next_picture[stream] = ((picture_id + 1) & 0x7fff, tl0.wrapping_add(1));
        for k in 0..packets {
            let seq: SeqNo = p.next_seq[stream].into();
            p.next_seq[stream] += 1;
            let mut body = Vec::with_capacity(payload.len() + 7);
            // S (start of a frame) on the first packet only.
            let start = if k == 0 { 0x10 } else { 0x00 };
            if self.picture_numbers {
                let [high, low] = picture_id.to_be_bytes();
                body.extend_from_slice(&[0x80 | start, 0xe0, 0x80 | high, low, tl0, 0x00]);
            } else {
                body.push(start);
            }
            // The VP8 payload header's first byte: P (bit 0) clear on a keyframe.
            body.push(if k == 0 && !keyframe { 0x01 } else { 0x00 });
            body.extend_from_slice(payload);
            let mid = p.video_mid;
            if let Some(tx) = p.rtc.direct_api().stream_tx_by_mid(mid, rid.map(Rid::from)) {
                tx.write_rtp(
                    RtpWrite::new(pt, seq, rtp_time, now, body)
                        .marker(k + 1 == packets)
                        .nackable(true),
                );
            }
        }
        // str0m releases queued packets when its clock is driven.
        let _ = p.rtc.handle_input(Input::Timeout(now));
    }

    /// One camera frame from every participant of a simulcast call, 40 ms
    /// after the last (25 frames/s), as a browser sends it: 1, 2 and `top`
    /// packets of `payload` on layers `q`, `h` and `f`, all written first
    /// and then handed to the room publisher by publisher, then one poll.
    /// The care-home shape (a room of three where everyone is sent the top
    /// layer) is measured with this.
    pub fn send_simulcast_frames(&mut self, payload: &[u8], top: usize, keyframe: bool) {
        self.now += Duration::from_millis(40);
        for i in 0..self.peers.len() {
            for (rid, packets) in [("q", 1), ("h", 2), ("f", top)] {
                let frame = Frame {
                    rid: Some(rid),
                    payload,
                    keyframe,
                    packets,
                };
                self.queue_frame(i, frame);
            }
        }
        for i in 0..self.peers.len() {
            self.take_from(i);
        }
        self.pump();
    }

    /// Hands the room every datagram peer `i` has ready, one at a time, as a
    /// media worker takes a burst: only the sessions fed are polled between
    /// them; the rest wait for the next [`SimCall::pump`].
    pub fn take_from(&mut self, i: usize) {
        self.drain_peer(i);
    }

    /// RTP datagrams the room sent to peers while taking datagrams, not yet
    /// delivered.
    pub fn rtp_sent_between(&self) -> usize {
        self.sent_between
            .iter()
            .filter(|(_, _, d)| is_rtp(d))
            .count()
    }

    /// Makes participant `i` send one audio packet: with `red`, an RFC 2198
    /// payload carrying `previous` as its redundant block and `primary` as
    /// its primary; without, a plain Opus packet of `primary`.
    pub fn send_audio(&mut self, i: usize, primary: &[u8], previous: &[u8], red: bool) {
        let now = self.now;
        let p = &mut self.peers[i];
        let Some(opus) = p
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == Codec::Opus)
            .copied()
        else {
            return;
        };
        let (pt, body) = match (red, opus.red()) {
            (true, Some(red_pt)) => {
                let opus_pt = *opus.pt();
                let len = previous.len() as u16;
                // Timestamp offset 960 (one 20 ms frame): 14 bits, then a
                // 10-bit block length.
                let mut body = vec![
                    0x80 | opus_pt,
                    0x0F,
                    (len >> 8) as u8 & 0x03,
                    len as u8,
                    opus_pt,
                ];
                body.extend_from_slice(previous);
                body.extend_from_slice(primary);
                (red_pt, body)
            }
            _ => (opus.pt(), primary.to_vec()),
        };
        let seq: SeqNo = p.next_audio_seq.into();
        p.next_audio_seq += 1;
        let Some(mid) = p.audio_mid else {
            return;
        };
        if let Some(tx) = p.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(RtpWrite::new(
                pt,
                seq,
                (seq.as_u16() as u32) * 960,
                now,
                body,
            ));
        }
        let _ = p.rtc.handle_input(Input::Timeout(now));
        self.drain_peer(i);
        self.pump();
    }
}
