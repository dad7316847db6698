//! A media worker's loop: one thread that owns its sockets and whole rooms,
//! so a room's packets never cross a thread or take a lock. Commands from
//! [`super::server::MediaServer`] arrive on a channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Input};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

mod spans;

use super::relay::RelayHandle;
use super::server::WorkerCommand;
use super::tcp::TcpMedia;
use super::udp::{recv_any, try_recv_any, MediaSocket, RecvBuffers, SendBatch};
use crate::cascade::LinkId;
use crate::error::SfuError;
use crate::id::{ParticipantId, RoomId};
use crate::room::Room;
use crate::rooms::{Owner, Rooms};
use crate::signal::MediaSignal;

/// Runs worker `index` on its own thread until its command channel closes.
pub(super) fn run_worker(
    index: usize,
    bound: Vec<(std::net::UdpSocket, SocketAddr)>,
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    commands: UnboundedReceiver<WorkerCommand>,
    estimate_bandwidth: bool,
    relay: Option<RelayHandle>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "media worker could not start");
            return;
        }
    };
    runtime.block_on(async move {
        let mut sockets = Vec::new();
        for (socket, announced) in bound {
            match MediaSocket::new(socket, announced) {
                Ok(s) => sockets.push(s),
                Err(e) => {
                    tracing::error!(worker = index, %announced, error = %e, "media socket unusable")
                }
            }
        }
        let tcp = TcpMedia::new(listeners);
        let mut candidates: Vec<Candidate> = sockets
            .iter()
            .filter_map(|s| Candidate::host(s.announced, "udp").ok())
            .collect();
        candidates.extend(tcp.announced().filter_map(|addr| {
            Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .ok()
        }));
        let mut worker = Worker {
            sockets,
            tcp,
            candidates,
            rooms: Rooms::new(estimate_bandwidth),
            signals: HashMap::new(),
            touched: Vec::with_capacity(BATCH),
            outgoing: SendBatch::new(),
            relay,
            spans: Vec::new(),
            lost_spans: Vec::new(),
        };
        worker.run(commands).await;
    });
}

/// At most this many datagrams are taken in one go before the rooms they
/// reached are polled: a subscriber then sends a burst from one poll, and a
/// busy socket still lets timers and commands in between.
const BATCH: usize = 32;

/// Sends one of a room's datagrams on the socket it names: over TCP at
/// once, over UDP through `outgoing`, which the loop flushes before it
/// waits again.
fn transmit(sockets: &[MediaSocket], tcp: &mut TcpMedia, outgoing: &mut SendBatch, t: &Transmit) {
    if t.proto == Protocol::Tcp {
        return tcp.send(t.destination, &t.contents);
    }
    let socket = sockets
        .iter()
        .position(|s| s.announced == t.source)
        .unwrap_or(0);
    outgoing.push(sockets, socket, t.destination, &t.contents);
}

struct Worker {
    sockets: Vec<MediaSocket>,
    tcp: TcpMedia,
    candidates: Vec<Candidate>,
    rooms: Rooms,
    signals: HashMap<ParticipantId, UnboundedSender<MediaSignal>>,
    /// Rooms a datagram reached since they were last polled in full.
    touched: Vec<usize>,
    /// UDP datagrams the rooms gave since the loop last woke.
    outgoing: SendBatch,
    /// The relay thread, when this node links to others.
    relay: Option<RelayHandle>,
    /// Rooms spanning other nodes, per link.
    spans: Vec<spans::Span>,
    /// Rooms this worker spanned over links since lost, to span again once
    /// the relay makes each link again.
    lost_spans: Vec<(RoomId, LinkId)>,
}

impl Worker {
    async fn run(&mut self, mut commands: UnboundedReceiver<WorkerCommand>) {
        let mut received = RecvBuffers::new();
        let mut frame_buf = vec![0u8; usize::from(u16::MAX)];
        let mut turn = 0usize;
        loop {
            let next = self.next_deadline();
            tokio::select! {
                (i, filled) = recv_any(&self.sockets, &mut received, turn) => {
                    turn = turn.wrapping_add(1);
                    if let Ok(filled) = filled {
                        let mut taken = self.receive_udp(i, &received, filled);
                        // The rest of a burst (a video frame is several
                        // packets) is taken before the rooms are polled.
                        while taken < BATCH {
                            let Some((i, filled)) = try_recv_any(&self.sockets, &mut received, turn) else {
                                break;
                            };
                            taken += self.receive_udp(i, &received, filled);
                        }
                    }
                    self.poll_touched(Instant::now());
                }
                frame = self.tcp.next_frame(&mut frame_buf) => {
                    let data = &frame_buf[..frame.len];
                    self.receive(Instant::now(), Protocol::Tcp, frame.from, frame.to, data);
                    self.poll_touched(Instant::now());
                }
                cmd = commands.recv() => match cmd {
                    Some(cmd) => {
                        self.command(Instant::now(), cmd);
                        // Relayed packets touch rooms as datagrams do.
                        self.poll_touched(Instant::now());
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(next.into()) => self.timeouts(Instant::now()),
            }
            self.outgoing.flush(&self.sockets);
        }
    }

    fn next_deadline(&self) -> Instant {
        self.rooms
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    /// Takes the datagrams of the first `filled` of `received`'s buffers,
    /// which arrived on media socket `socket`; how many there were.
    fn receive_udp(&mut self, socket: usize, received: &RecvBuffers, filled: usize) -> usize {
        let to = self.sockets[socket].announced;
        let now = Instant::now();
        let mut taken = 0;
        for (from, data) in received.datagrams(filled) {
            self.receive(now, Protocol::Udp, from, to, data);
            taken += 1;
        }
        taken
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        from: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let Ok(receive) = Receive::new(proto, from, destination, data) else {
            tracing::trace!(%from, len = data.len(), "unrecognised datagram dropped");
            return;
        };
        let input = Input::Receive(now, receive);
        let Some((Owner { slot, participant }, learned)) = self.rooms.owner(proto, from, &input)
        else {
            tracing::trace!(%from, "datagram for no session dropped");
            return;
        };
        if learned && proto == Protocol::Tcp {
            self.tcp.claim(from);
        }
        let Some(s) = self.rooms.slot(slot) else {
            return;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| s.room.handle_input(participant, input)));
        if outcome.is_err() {
            tracing::error!(room = %s.room.id(), %participant, "WebRTC stack panicked on input; participant removed");
            s.room.remove(participant);
            if let Some(tx) = self.signals.get(&participant) {
                let _ = tx.send(MediaSignal::Closed("media session failed".into()));
            }
            self.forget(participant);
        }
        let Some(s) = self.rooms.slot(slot) else {
            return;
        };
        let (sockets, tcp, out) = (&self.sockets, &mut self.tcp, &mut self.outgoing);
        s.poll_guarded(|room| room.poll_received(now, |t| transmit(sockets, tcp, out, t)));
        if !self.touched.contains(&slot) {
            self.touched.push(slot);
        }
    }

    /// Polls every room a datagram reached since the last time.
    fn poll_touched(&mut self, now: Instant) {
        while let Some(slot) = self.touched.pop() {
            self.poll_room(now, slot);
        }
    }

    fn timeouts(&mut self, now: Instant) {
        self.tcp.sweep(now);
        for slot in 0..self.rooms.slots() {
            let Some(s) = self.rooms.slot(slot).filter(|s| s.deadline <= now) else {
                continue;
            };
            s.room.handle_timeout(now);
            self.poll_room(now, slot);
        }
    }

    fn poll_room(&mut self, now: Instant, slot: usize) {
        let Some(s) = self.rooms.slot(slot) else {
            return;
        };
        let (sockets, tcp, out) = (&self.sockets, &mut self.tcp, &mut self.outgoing);
        s.deadline = s
            .poll_guarded(|room| room.poll(now, |t| transmit(sockets, tcp, out, t)))
            .unwrap_or(now + Duration::from_millis(10));
        let mut closed = Vec::new();
        while let Some((participant, signal)) = s.room.poll_signal() {
            if matches!(signal, MediaSignal::Closed(_)) {
                closed.push(participant);
            }
            if let Some(tx) = self.signals.get(&participant) {
                let _ = tx.send(signal);
            }
        }
        for participant in closed {
            self.forget(participant);
        }
        self.flush_relay(slot);
        if self.rooms.drop_if_empty(slot) {
            self.forget_spans(slot);
        }
    }

    fn command(&mut self, now: Instant, cmd: WorkerCommand) {
        let (room_id, participant, result) = match cmd {
            WorkerCommand::Relay(command) => {
                self.relay_command(now, command);
                return;
            }
            WorkerCommand::Stats { reply } => {
                let stats = self.rooms.iter().flat_map(Room::stats);
                let _ = reply.send(stats.collect());
                return;
            }
            WorkerCommand::StartRecording {
                room,
                options,
                reply,
            } => {
                // The recorder's file and thread are made here, at the
                // edge; the room only gets the tap.
                let started = self.rooms.with_room(&room, |r| {
                    let (tap, done) = crate::recording::start(options)
                        .map_err(|e| SfuError::Recording(e.to_string()))?;
                    r.start_recording(tap);
                    Ok(done)
                });
                let _ = reply.send(started.unwrap_or(Err(SfuError::NoSuchRoom(room))));
                return;
            }
            WorkerCommand::StopRecording { room } => {
                self.rooms.with_room(&room, Room::stop_recording);
                return;
            }
            WorkerCommand::AnnounceRecording { room, by, since } => {
                self.tell_call(now, &room, |r| r.announce_recording(by, since));
                return;
            }
            WorkerCommand::AnnounceConsent { room, by, at, info } => {
                self.tell_call(now, &room, |r| r.announce_consent(by, at, &info));
                return;
            }
            WorkerCommand::TestDownlink {
                room,
                participant,
                plan,
                reply,
            } => {
                let started = self
                    .rooms
                    .with_room(&room, |r| r.start_downlink_test(participant, plan, now));
                let _ = reply.send(started.unwrap_or(Err(SfuError::NoSuchRoom(room.clone()))));
                if let Some(slot) = self.rooms.find(&room) {
                    self.poll_room(now, slot);
                }
                return;
            }
            WorkerCommand::Announce {
                room,
                participant,
                info,
            } => {
                let slot = self.rooms.slot_for(&room, now);
                if let Some(s) = self.rooms.slot(slot) {
                    s.room.announce(participant, &info);
                }
                self.poll_room(now, slot);
                return;
            }
            WorkerCommand::ReceiveOnly { room, participant } => {
                let slot = self.rooms.slot_for(&room, now);
                if let Some(s) = self.rooms.slot(slot) {
                    s.room.set_receive_only(participant);
                }
                return;
            }
            WorkerCommand::Connect {
                room,
                participant,
                offer,
                signals,
            } => {
                self.signals.insert(participant, signals);
                let slot = self.rooms.slot_for(&room, now);
                let candidates = &self.candidates;
                let r = self
                    .rooms
                    .slot(slot)
                    .map(|s| s.room.connect(now, participant, &offer, candidates));
                (room, participant, r)
            }
            WorkerCommand::Answer {
                room,
                participant,
                answer,
            } => {
                let r = self
                    .rooms
                    .with_room(&room, |r| r.accept_answer(participant, &answer));
                (room, participant, r)
            }
            WorkerCommand::Candidate {
                room,
                participant,
                candidate,
            } => {
                let r = self
                    .rooms
                    .with_room(&room, |r| r.add_remote_candidate(participant, &candidate));
                (room, participant, r)
            }
            WorkerCommand::View {
                room,
                participant,
                origin,
                height,
            } => {
                let r = self
                    .rooms
                    .with_room(&room, |r| r.set_view(participant, origin, height));
                (room, participant, r)
            }
            WorkerCommand::Leave { room, participant } => {
                self.rooms.with_room(&room, |r| r.remove(participant));
                self.forget(participant);
                (room, participant, Some(Ok(())))
            }
        };
        let result = result.unwrap_or(Err(SfuError::UnknownParticipant {
            room: room_id.clone(),
            participant,
        }));
        if let Err(e) = result {
            tracing::info!(room = %room_id, %participant, error = %e, "media command refused");
            if let Some(tx) = self.signals.get(&participant) {
                let _ = tx.send(MediaSignal::Error(e.to_string()));
            }
        }
        if let Some(slot) = self.rooms.find(&room_id) {
            self.poll_room(now, slot);
        }
    }

    /// Hands `room` signalling's word on the call as a whole (its
    /// recording, its consent) for the other nodes it spans. A room no
    /// longer here has nobody to tell: its links closed with it.
    fn tell_call(&mut self, now: Instant, room: &RoomId, tell: impl FnOnce(&mut Room)) {
        let Some(slot) = self.rooms.find(room) else {
            return;
        };
        if let Some(s) = self.rooms.slot(slot) {
            tell(&mut s.room);
        }
        self.poll_room(now, slot);
    }

    /// Forgets `participant`: its signals, its addresses, and its TCP
    /// connections.
    fn forget(&mut self, participant: ParticipantId) {
        self.signals.remove(&participant);
        let tcp = &mut self.tcp;
        self.rooms.forget(participant, |addr| tcp.close_peer(addr));
    }
}
