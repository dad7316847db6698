//! Participants on str0m, many to one task, for carecall (joined over its
//! signalling) and Janus (answering its offer, or offering to publish):
//! viewers, and publishers sending the clip in its three layers. A
//! webrtc-rs peer spends far more per packet than the server it loads, so
//! hundreds of them take the machine before the server does; a str0m
//! session is plain state fed datagrams and polled, and one task can drive
//! hundreds. They record what arrives as the webrtc-rs peers do
//! ([`StreamRecord`]) and log what they send in the same [`SendLog`], so a
//! report reads the same whichever made it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::clip::{clip, send_log, SendLog, LAYERS};
use crate::mmsg::{RecvBatch, SendBatch};
use crate::peer::{
    clip_tick, join_socket, ws_writer, ClipPacket, Naming, Owners, Received, StreamRecord,
};

/// One task driving every session given to it, until dropped.
pub struct LitePeers {
    add: mpsc::UnboundedSender<Session>,
    stop: Arc<AtomicBool>,
}

/// A participant in a [`LitePeers`] group: what it received, and its
/// signalling.
pub struct LitePeer {
    /// What arrived, by (sender, kind).
    pub received: Received,
    connected: Arc<AtomicBool>,
    /// Its signalling socket (carecall); Janus's is the caller's.
    ws_out: Option<mpsc::UnboundedSender<String>>,
}

/// Sends a publishing session's clip from another task: each tick's
/// packets go to the session, which writes them on its next turn.
#[derive(Clone)]
pub struct LiteSender {
    packets: mpsc::UnboundedSender<Vec<ClipPacket>>,
}

impl LiteSender {
    /// Sends tick `n` of the clip (see [`clip_tick`]); the video packets
    /// sent, per layer.
    pub fn send_clip(&self, n: u32) -> [u32; LAYERS] {
        let mut packets = Vec::with_capacity(16);
        let sent = clip_tick(n, true, &mut packets);
        let _ = self.packets.send(packets);
        sent
    }
}

/// A publisher not yet started: it waits for the server's answer.
pub struct Unstarted {
    session: Session,
    viewer: LitePeer,
    sender: LiteSender,
}

/// What a publishing session sends on.
struct Publishing {
    audio: Mid,
    video: Mid,
    log: Arc<SendLog>,
    packets: mpsc::UnboundedReceiver<Vec<ClipPacket>>,
}

/// One participant's session, owned by the group's task.
struct Session {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    signals: mpsc::UnboundedReceiver<Value>,
    ws_out: Option<mpsc::UnboundedSender<String>>,
    naming: Naming,
    owners: Owners,
    received: Received,
    streams: HashMap<u32, StreamRecord>,
    connected: Arc<AtomicBool>,
    wake: Instant,
    publishing: Option<Publishing>,
    /// What it sends, until the end of its turn.
    out: SendBatch,
}

/// Sessions stepped between two yields to the runtime: the load tool's
/// publishers share its core and must keep their 20 ms ticks.
const SESSIONS_PER_TURN: usize = 32;

impl Default for LitePeers {
    fn default() -> Self {
        Self::new()
    }
}

impl LitePeers {
    /// A group with its task started on the current runtime.
    pub fn new() -> LitePeers {
        let (add, mut added) = mpsc::unbounded_channel::<Session>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut sessions: Vec<Session> = Vec::new();
            let mut buf = RecvBatch::default();
            while !stopped.load(Ordering::Relaxed) {
                while let Ok(s) = added.try_recv() {
                    sessions.push(s);
                }
                let mut busy = false;
                for turn in sessions.chunks_mut(SESSIONS_PER_TURN) {
                    let now = Instant::now();
                    for s in turn {
                        busy |= s.step(now, &mut buf);
                    }
                    tokio::task::yield_now().await;
                }
                // Readiness is cached by the runtime: a sweep with nothing
                // to read costs no system calls, and an idle one sleeps.
                if !busy {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        LitePeers { add, stop }
    }

    /// Joins a viewer with `token` over carecall's signalling at `ws_url`,
    /// offering to receive one microphone and one camera, as a browser
    /// without a camera does; the SFU adopts them and offers more.
    pub async fn join(&self, ws_url: &str, token: &str) -> Result<(LitePeer, String)> {
        let (viewer, participant, _) = self.join_as(ws_url, token, false).await?;
        Ok((viewer, participant))
    }

    /// Joins a participant with `token` over carecall's signalling at
    /// `ws_url` whose microphone and camera send the clip (the camera in its
    /// three simulcast layers, as a browser's does) and who receives the
    /// others, as a browser with a camera does.
    pub async fn join_publishing(
        &self,
        ws_url: &str,
        token: &str,
    ) -> Result<(LitePeer, String, LiteSender)> {
        let (viewer, participant, sender) = self.join_as(ws_url, token, true).await?;
        let sender = sender.context("a publisher's sender")?;
        Ok((viewer, participant, sender))
    }

    async fn join_as(
        &self,
        ws_url: &str,
        token: &str,
        publish: bool,
    ) -> Result<(LitePeer, String, Option<LiteSender>)> {
        let (sink, mut stream, participant) = join_socket(ws_url, token).await;
        let (mut session, viewer) = Session::new(Ipv4Addr::LOCALHOST.into(), Owners::default())?;
        let (offer, sender) = match publish {
            true => {
                let (offer, sender) =
                    session.offer_to_publish(&participant, Direction::SendRecv)?;
                (offer, Some(sender))
            }
            false => (session.offer_to_receive()?, None),
        };
        let ws_out = ws_writer(sink);
        let _ = ws_out.send(json!({"type":"offer","sdp":offer}).to_string());
        let (signal, signals) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if signal.send(v).is_err() {
                    break;
                }
            }
        });
        session.signals = signals;
        session.ws_out = Some(ws_out.clone());
        self.adopt(session)?;
        let viewer = LitePeer {
            ws_out: Some(ws_out),
            ..viewer
        };
        Ok((viewer, participant, sender))
    }

    /// A publisher for a server that answers (Janus): its socket on `ip`,
    /// its packets logged under `name`. Returns it unstarted with its
    /// offer; [`LitePeers::start`] takes it with the server's answer.
    pub fn offer_to_publish(&self, name: &str, ip: IpAddr) -> Result<(Unstarted, String)> {
        let (mut session, viewer) = Session::new(ip, Owners::default())?;
        let (offer, sender) = session.offer_to_publish(name, Direction::SendOnly)?;
        Ok((
            Unstarted {
                session,
                viewer,
                sender,
            },
            offer,
        ))
    }

    /// Starts a publisher made by [`LitePeers::offer_to_publish`] with the
    /// server's `answer`.
    pub fn start(&self, unstarted: Unstarted, answer: &str) -> Result<(LitePeer, LiteSender)> {
        let Unstarted {
            mut session,
            viewer,
            sender,
        } = unstarted;
        let answer = SdpAnswer::from_sdp_string(answer).context("the server's answer")?;
        let pending = session.pending.take().context("no offer pending")?;
        session
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .context("str0m refused the answer")?;
        session.drain();
        self.adopt(session)?;
        Ok((viewer, sender))
    }

    /// A viewer answering a server's `offer` (Janus offers its
    /// subscribers), its socket on `ip`; `owners` already names each SSRC.
    /// Returns the answer for the caller to send.
    pub fn answer(&self, offer: &str, owners: Owners, ip: IpAddr) -> Result<(LitePeer, String)> {
        let (mut session, viewer) = Session::new(ip, owners)?;
        let offer = SdpOffer::from_sdp_string(offer).context("the server's offer")?;
        let answer = session
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .context("str0m refused the offer")?;
        self.adopt(session)?;
        Ok((viewer, answer.to_sdp_string()))
    }

    fn adopt(&self, session: Session) -> Result<()> {
        if self.add.send(session).is_err() {
            bail!("the light peers' task has stopped");
        }
        Ok(())
    }
}

impl Drop for LitePeers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Session {
    /// A session with one host candidate on `ip`, not yet negotiated (it
    /// then offers to receive, offers to publish, or answers), and the
    /// handle that reads what it records.
    fn new(ip: IpAddr, owners: Owners) -> Result<(Session, LitePeer)> {
        let socket = std::net::UdpSocket::bind((ip, 0))?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let candidate = Candidate::host(local, "udp").context("a host candidate")?;
        rtc.add_local_candidate(candidate);
        let received = Received::default();
        let connected = Arc::new(AtomicBool::new(false));
        let session = Session {
            rtc,
            socket,
            local,
            pending: None,
            signals: mpsc::unbounded_channel().1,
            ws_out: None,
            naming: Naming::new(owners.clone()),
            owners,
            received: received.clone(),
            streams: HashMap::new(),
            connected: connected.clone(),
            wake: now,
            publishing: None,
            out: SendBatch::default(),
        };
        let viewer = LitePeer {
            received,
            connected,
            ws_out: None,
        };
        Ok((session, viewer))
    }

    /// Offers to receive one microphone and one camera (a browser without
    /// a camera).
    fn offer_to_receive(&mut self) -> Result<String> {
        let mut sdp = self.rtc.sdp_api();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            sdp.add_media(kind, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = sdp.apply().context("str0m made no offer")?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Offers a microphone and a camera in the clip's simulcast layers,
    /// lowest first as carecall's browser client lists them, in `dir`;
    /// the packets are logged under `name`, as the receivers will know it.
    fn offer_to_publish(&mut self, name: &str, dir: Direction) -> Result<(String, LiteSender)> {
        let mut sdp = self.rtc.sdp_api();
        let audio = sdp.add_media(MediaKind::Audio, dir, Some(name.into()), None, None);
        let layers = clip().layers.iter().map(|l| SimulcastLayer::new(l.rid));
        let simulcast = Simulcast {
            send: layers.collect(),
            recv: Vec::new(),
        };
        let video = sdp.add_media(
            MediaKind::Video,
            dir,
            Some(name.into()),
            None,
            Some(simulcast),
        );
        let (offer, pending) = sdp.apply().context("str0m made no offer")?;
        self.pending = Some(pending);
        let (tx, packets) = mpsc::unbounded_channel();
        self.publishing = Some(Publishing {
            audio,
            video,
            log: send_log(name),
            packets,
        });
        Ok((offer.to_sdp_string(), LiteSender { packets: tx }))
    }

    /// Writes the packets its sender gave since the last turn: whether any.
    fn publish(&mut self, now: Instant) -> bool {
        let Some(p) = &mut self.publishing else {
            return false;
        };
        let mut wrote = false;
        while let Ok(packets) = p.packets.try_recv() {
            for packet in packets {
                let (mid, rid, codec) = match packet.layer {
                    None => (p.audio, None, Codec::Opus),
                    Some(l) => (p.video, Some(Rid::from(clip().layers[l].rid)), Codec::Vp8),
                };
                let pt = self
                    .rtc
                    .codec_config()
                    .find(|c| c.spec().codec == codec)
                    .map(|c| c.pt());
                let mut api = self.rtc.direct_api();
                let (Some(pt), Some(tx)) = (pt, api.stream_tx_by_mid(mid, rid)) else {
                    continue;
                };
                packet.log_sent(&p.log);
                let payload = packet.payload.to_vec();
                let write = RtpWrite::new(pt, packet.counter.into(), packet.ts, now, payload)
                    .marker(packet.marker)
                    .nackable(true);
                tx.write_rtp(write);
                wrote = true;
            }
        }
        wrote
    }

    /// Takes what arrived (signalling, datagrams), runs due timers and sends
    /// what the session has to send. Whether anything arrived.
    fn step(&mut self, now: Instant, buf: &mut RecvBatch) -> bool {
        let mut busy = false;
        while let Ok(v) = self.signals.try_recv() {
            busy = true;
            self.signal(&v);
            self.drain();
        }
        // str0m must be polled empty after every input: a second datagram
        // fed before that replaces what the first one produced.
        while buf.recv(&self.socket) > 0 {
            busy = true;
            for (from, data) in buf.datagrams() {
                if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, data) {
                    if self.rtc.handle_input(Input::Receive(now, r)).is_ok() {
                        self.drain();
                    }
                }
            }
        }
        // A written packet leaves at the next timer run.
        let wrote = self.publish(now);
        busy |= wrote;
        if (wrote || now >= self.wake) && self.rtc.handle_input(Input::Timeout(now)).is_ok() {
            self.drain();
        }
        self.out.flush(&self.socket);
        busy
    }

    /// Polls the session until it has nothing more to do before its next
    /// timer: sends what it sends, records what arrived.
    fn drain(&mut self) {
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.out.push(t.destination, &t.contents),
                Ok(Output::Event(e)) => self.event(e),
                Ok(Output::Timeout(at)) => {
                    self.wake = at;
                    break;
                }
                Err(_) => break,
            }
        }
    }

    fn signal(&mut self, v: &Value) {
        self.naming.learn(v);
        let sdp = v["sdp"].as_str().unwrap_or_default();
        match v["type"].as_str() {
            Some("answer") => {
                let answer = SdpAnswer::from_sdp_string(sdp);
                if let (Some(pending), Ok(answer)) = (self.pending.take(), answer) {
                    let _ = self.rtc.sdp_api().accept_answer(pending, answer);
                }
            }
            Some("offer") => {
                let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
                    return;
                };
                if let (Ok(answer), Some(ws)) =
                    (self.rtc.sdp_api().accept_offer(offer), &self.ws_out)
                {
                    let answer = json!({"type":"answer","sdp":answer.to_sdp_string()});
                    let _ = ws.send(answer.to_string());
                }
            }
            _ => {}
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected.store(true, Ordering::Relaxed),
            Event::RtpPacket(p) => {
                let ssrc = *p.header.ssrc;
                let stream = match self.streams.get_mut(&ssrc) {
                    Some(s) => s,
                    None => {
                        let pt = p.header.payload_type;
                        let codec = self.rtc.codec_config().find(|c| c.pt() == pt);
                        let video = codec.is_some_and(|c| c.spec().codec.is_video());
                        self.streams
                            .entry(ssrc)
                            .or_insert_with(|| StreamRecord::new(video, None))
                    }
                };
                // Named by the server's signalling, maybe after the first
                // packets: looked up until it is known.
                if stream.owner.is_none() {
                    stream.owner = self.owners.lock().unwrap().get(&ssrc).cloned();
                }
                stream.packet(&self.received, &p.payload);
            }
            _ => {}
        }
    }
}

impl LitePeer {
    /// Waits until media is connected, or says why not.
    pub async fn connected_within(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while !self.connected.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return Err(format!("not connected within {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Sends a signalling message as it is (carecall's viewers).
    pub fn send_raw(&self, text: String) {
        if let Some(ws) = &self.ws_out {
            let _ = ws.send(text);
        }
    }

    /// Leaves the call (as the Leave button does).
    pub fn close(self) {
        self.send_raw(json!({"type": "leave"}).to_string());
    }
}
