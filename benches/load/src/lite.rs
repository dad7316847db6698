//! Receive-only viewers on str0m, many to one task, for carecall (joined
//! over its signalling) and Janus (answering its offer). A webrtc-rs peer spends far more per packet than the server it
//! loads, so hundreds of them take the machine before the server does; a
//! str0m session is plain state fed datagrams and polled, and one task can
//! drive hundreds. They record what arrives as the webrtc-rs peers do
//! ([`StreamRecord`]), so a report reads the same whichever made it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::peer::{join_socket, ws_writer, Naming, Owners, Received, StreamRecord};

/// One task driving every viewer given to it, until dropped.
pub struct LiteViewers {
    add: mpsc::UnboundedSender<Session>,
    stop: Arc<AtomicBool>,
}

/// A viewer in a [`LiteViewers`] group.
pub struct LiteViewer {
    /// What arrived, by (sender, kind).
    pub received: Received,
    connected: Arc<AtomicBool>,
    /// Its signalling socket (carecall); Janus's is the caller's.
    ws_out: Option<mpsc::UnboundedSender<String>>,
}

/// One viewer's session, owned by the group's task.
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
}

/// Sessions stepped between two yields to the runtime: the load tool's
/// publishers share its core and must keep their 20 ms ticks.
const SESSIONS_PER_TURN: usize = 32;

impl Default for LiteViewers {
    fn default() -> Self {
        Self::new()
    }
}

impl LiteViewers {
    /// A group with its task started on the current runtime.
    pub fn new() -> LiteViewers {
        let (add, mut added) = mpsc::unbounded_channel::<Session>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut sessions: Vec<Session> = Vec::new();
            let mut buf = vec![0u8; 2048];
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
        LiteViewers { add, stop }
    }

    /// Joins a viewer with `token` over carecall's signalling at `ws_url`,
    /// offering to receive one microphone and one camera, as a browser
    /// without a camera does; the SFU adopts them and offers more.
    pub async fn join(&self, ws_url: &str, token: &str) -> Result<(LiteViewer, String)> {
        let (sink, mut stream, participant) = join_socket(ws_url, token).await;
        let (mut session, viewer) = Session::new(Ipv4Addr::LOCALHOST.into(), Owners::default())?;
        let mut sdp = session.rtc.sdp_api();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            sdp.add_media(kind, Direction::RecvOnly, None, None, None);
        }
        let Some((offer, pending)) = sdp.apply() else {
            bail!("str0m made no offer");
        };
        session.pending = Some(pending);
        let ws_out = ws_writer(sink);
        let _ = ws_out.send(json!({"type":"offer","sdp":offer.to_sdp_string()}).to_string());
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
        let viewer = LiteViewer {
            ws_out: Some(ws_out),
            ..viewer
        };
        Ok((viewer, participant))
    }

    /// A viewer answering a server's `offer` (Janus offers its
    /// subscribers), its socket on `ip`; `owners` already names each SSRC.
    /// Returns the answer for the caller to send.
    pub fn answer(&self, offer: &str, owners: Owners, ip: IpAddr) -> Result<(LiteViewer, String)> {
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
            bail!("the viewers' task has stopped");
        }
        Ok(())
    }
}

impl Drop for LiteViewers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Session {
    /// A receive-only session with one host candidate on `ip`, not yet
    /// negotiated, and the viewer that reads what it records.
    fn new(ip: IpAddr, owners: Owners) -> Result<(Session, LiteViewer)> {
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
        };
        let viewer = LiteViewer {
            received,
            connected,
            ws_out: None,
        };
        Ok((session, viewer))
    }

    /// Takes what arrived (signalling, datagrams), runs due timers and sends
    /// what the session has to send. Whether anything arrived.
    fn step(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        let mut busy = false;
        while let Ok(v) = self.signals.try_recv() {
            busy = true;
            self.signal(&v);
            self.drain();
        }
        // str0m must be polled empty after every input: a second datagram
        // fed before that replaces what the first one produced.
        while let Ok((len, from)) = self.socket.try_recv_from(buf) {
            busy = true;
            if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &buf[..len]) {
                if self.rtc.handle_input(Input::Receive(now, r)).is_ok() {
                    self.drain();
                }
            }
        }
        if now >= self.wake && self.rtc.handle_input(Input::Timeout(now)).is_ok() {
            self.drain();
        }
        busy
    }

    /// Polls the session until it has nothing more to do before its next
    /// timer: sends what it sends, records what arrived.
    fn drain(&mut self) {
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
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

impl LiteViewer {
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
