//! Media workers: each is one thread that owns its sockets and whole rooms, so a
//! room's packets never cross a thread or take a lock. Signalling reaches a
//! worker through a channel; a room always lives on the same worker.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Input};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::tcp::{bind_listeners, TcpMedia};
use super::udp::{bind_std, recv_any, try_recv_any, MediaSocket};
use crate::downlink_test::DownlinkPlan;
use crate::error::SfuError;
use crate::id::{ParticipantId, RoomId};
use crate::recording::{RecordingDone, RecordingOptions};
use crate::room::Room;
use crate::sdp_limits::SdpLimits;
use crate::signal::MediaSignal;
use crate::stats::ParticipantStats;

/// Where and how the media plane listens.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Addresses announced to browsers as ICE host candidates; one socket each.
    pub announce: Vec<IpAddr>,
    /// UDP port of the first worker; worker `i` uses `port + i`. 0 picks free ports.
    pub port: u16,
    /// TCP port for ICE-TCP (passive candidates) of the first worker, the
    /// same way; `None` offers UDP only.
    pub tcp_port: Option<u16>,
    /// Number of media worker threads.
    pub workers: usize,
    /// Estimate each subscriber's downlink and choose layers by it (see
    /// [`crate::Room::set_bandwidth_estimation`]).
    pub estimate_bandwidth: bool,
    /// The embedded TURN server's relays, to name relayed participants'
    /// transport in statistics.
    pub relays: Option<crate::turn::RelayBook>,
}

enum WorkerCommand {
    ReceiveOnly {
        room: RoomId,
        participant: ParticipantId,
    },
    Connect {
        room: RoomId,
        participant: ParticipantId,
        offer: String,
        signals: UnboundedSender<MediaSignal>,
    },
    Answer {
        room: RoomId,
        participant: ParticipantId,
        answer: String,
    },
    Candidate {
        room: RoomId,
        participant: ParticipantId,
        candidate: String,
    },
    Leave {
        room: RoomId,
        participant: ParticipantId,
    },
    View {
        room: RoomId,
        participant: ParticipantId,
        origin: ParticipantId,
        height: u32,
    },
    Stats {
        reply: oneshot::Sender<Vec<ParticipantStats>>,
    },
    StartRecording {
        room: RoomId,
        options: RecordingOptions,
        reply: oneshot::Sender<Result<RecordingDone, SfuError>>,
    },
    StopRecording {
        room: RoomId,
    },
    TestDownlink {
        room: RoomId,
        participant: ParticipantId,
        plan: DownlinkPlan,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
}

struct WorkerHandle {
    commands: UnboundedSender<WorkerCommand>,
    addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
}

/// A handle to the running media plane. Cheap to clone; commands are queued to
/// the worker that owns the room.
#[derive(Clone)]
pub struct MediaServer {
    workers: Arc<Vec<WorkerHandle>>,
    relays: Option<crate::turn::RelayBook>,
}

impl MediaServer {
    /// Binds every worker's sockets and starts the worker threads.
    pub fn start(config: &MediaConfig) -> Result<MediaServer, SfuError> {
        let mut workers = Vec::new();
        for index in 0..config.workers.max(1) {
            let nth = |port: u16| match port {
                0 => 0,
                p => p.saturating_add(index as u16),
            };
            let bound = bind_std(&config.announce, nth(config.port))?;
            let listeners = match config.tcp_port {
                Some(p) => bind_listeners(&config.announce, nth(p))?,
                None => Vec::new(),
            };
            let addrs = bound.iter().map(|(_, a)| *a).collect();
            let tcp_addrs = listeners.iter().map(|(_, a)| *a).collect();
            let (tx, rx) = unbounded_channel();
            let estimate_bandwidth = config.estimate_bandwidth;
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || run_worker(index, bound, listeners, rx, estimate_bandwidth))
                .map_err(|_| SfuError::WorkerGone)?;
            workers.push(WorkerHandle {
                commands: tx,
                addrs,
                tcp_addrs,
            });
        }
        Ok(MediaServer {
            workers: Arc::new(workers),
            relays: config.relays.clone(),
        })
    }

    /// Whether every media worker thread is still running (a worker only
    /// stops when its thread died).
    pub fn is_alive(&self) -> bool {
        self.workers.iter().all(|w| !w.commands.is_closed())
    }

    /// Every UDP address the media plane listens on, across workers.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().flat_map(|w| w.addrs.clone()).collect()
    }

    /// Every TCP address (ICE-TCP) the media plane listens on.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.workers
            .iter()
            .flat_map(|w| w.tcp_addrs.clone())
            .collect()
    }

    /// Joins a participant to a room with its browser's first offer. The answer,
    /// and every later signal for this participant, arrive on `signals`.
    pub fn connect(
        &self,
        room: RoomId,
        participant: ParticipantId,
        offer: String,
        signals: UnboundedSender<MediaSignal>,
    ) -> Result<(), SfuError> {
        SdpLimits::CALL.check(participant, &offer)?;
        self.send(
            &room.clone(),
            WorkerCommand::Connect {
                room,
                participant,
                offer,
                signals,
            },
        )
    }

    /// Hands over a participant's answer to the SFU's last offer.
    pub fn answer(
        &self,
        room: RoomId,
        participant: ParticipantId,
        answer: String,
    ) -> Result<(), SfuError> {
        SdpLimits::CALL.check(participant, &answer)?;
        self.send(
            &room.clone(),
            WorkerCommand::Answer {
                room,
                participant,
                answer,
            },
        )
    }

    /// Hands over a trickled ICE candidate line from a participant's browser.
    pub fn remote_candidate(
        &self,
        room: RoomId,
        participant: ParticipantId,
        candidate: String,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::Candidate {
                room,
                participant,
                candidate,
            },
        )
    }

    /// Marks a participant who has not connected yet as one who may only
    /// receive (an observer): nothing it offers to send is published.
    pub fn receive_only(&self, room: RoomId, participant: ParticipantId) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::ReceiveOnly { room, participant },
        )
    }

    /// Removes a participant from a room.
    pub fn leave(&self, room: RoomId, participant: ParticipantId) -> Result<(), SfuError> {
        self.send(&room.clone(), WorkerCommand::Leave { room, participant })
    }

    /// Records the height, in device pixels, at which `participant` shows
    /// `origin`'s video, so it is sent a layer that fits the tile.
    pub fn set_view(
        &self,
        room: RoomId,
        participant: ParticipantId,
        origin: ParticipantId,
        height: u32,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::View {
                room,
                participant,
                origin,
                height,
            },
        )
    }

    /// Every participant's media statistics, from every worker. A worker
    /// answers between packets, so this waits at most for one pass of its
    /// loop; a worker that has stopped is skipped.
    pub async fn stats(&self) -> Vec<ParticipantStats> {
        let mut replies = Vec::new();
        for w in self.workers.iter() {
            let (reply, answer) = oneshot::channel();
            if w.commands.send(WorkerCommand::Stats { reply }).is_ok() {
                replies.push(answer);
            }
        }
        let mut all = Vec::new();
        for answer in replies {
            all.extend(answer.await.unwrap_or_default());
        }
        if let Some(book) = &self.relays {
            for s in &mut all {
                if let Some(t) = s.remote.and_then(|r| book.lookup(r)) {
                    s.transport = Some(t.relay_name());
                }
            }
        }
        all
    }

    /// Starts recording a room that has participants. The returned receiver
    /// resolves with the finished file once the recording is stopped or
    /// everyone has left.
    pub async fn start_recording(
        &self,
        room: RoomId,
        options: RecordingOptions,
    ) -> Result<RecordingDone, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(
            &room.clone(),
            WorkerCommand::StartRecording {
                room,
                options,
                reply,
            },
        )?;
        answer.await.map_err(|_| SfuError::WorkerGone)?
    }

    /// Starts the connectivity check's download test to `participant`: RTP
    /// at the plan's pace on the video m-line its browser offered to
    /// receive on, never repaired, so the browser counts the network's loss.
    pub async fn test_downlink(
        &self,
        room: RoomId,
        participant: ParticipantId,
        plan: DownlinkPlan,
    ) -> Result<(), SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(
            &room.clone(),
            WorkerCommand::TestDownlink {
                room,
                participant,
                plan,
                reply,
            },
        )?;
        answer.await.map_err(|_| SfuError::WorkerGone)?
    }

    /// Stops a room's recording, if one runs.
    pub fn stop_recording(&self, room: RoomId) -> Result<(), SfuError> {
        self.send(&room.clone(), WorkerCommand::StopRecording { room })
    }

    fn send(&self, room: &RoomId, cmd: WorkerCommand) -> Result<(), SfuError> {
        let mut h = DefaultHasher::new();
        room.hash(&mut h);
        let index = (h.finish() % self.workers.len() as u64) as usize;
        self.workers[index]
            .commands
            .send(cmd)
            .map_err(|_| SfuError::WorkerGone)
    }
}

fn run_worker(
    index: usize,
    bound: Vec<(std::net::UdpSocket, SocketAddr)>,
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    commands: UnboundedReceiver<WorkerCommand>,
    estimate_bandwidth: bool,
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
            rooms: Vec::new(),
            owners: HashMap::new(),
            signals: HashMap::new(),
            estimate_bandwidth,
            touched: Vec::with_capacity(BATCH),
        };
        worker.run(commands).await;
    });
}

/// At most this many datagrams are taken in one go before the rooms they
/// reached are polled: a subscriber then sends a burst from one poll, and a
/// busy socket still lets timers and commands in between.
const BATCH: usize = 32;

/// Sends one of a room's datagrams on the socket it names.
fn transmit(sockets: &[MediaSocket], tcp: &mut TcpMedia, t: &Transmit) {
    if t.proto == Protocol::Tcp {
        return tcp.send(t.destination, &t.contents);
    }
    let socket = sockets
        .iter()
        .find(|s| s.announced == t.source)
        .unwrap_or(&sockets[0]);
    socket.send(t.destination, &t.contents);
}

struct RoomSlot {
    room: Room,
    deadline: Instant,
}

impl RoomSlot {
    /// Runs one poll of the room; a panic in the WebRTC stack is logged and
    /// gives `None` instead of taking the worker down.
    fn poll_guarded<T>(&mut self, poll: impl FnOnce(&mut Room) -> T) -> Option<T> {
        let polled = catch_unwind(AssertUnwindSafe(|| poll(&mut self.room)));
        if polled.is_err() {
            tracing::error!(room = %self.room.id(), "WebRTC stack panicked while polling");
        }
        polled.ok()
    }
}

struct Worker {
    sockets: Vec<MediaSocket>,
    tcp: TcpMedia,
    candidates: Vec<Candidate>,
    rooms: Vec<Option<RoomSlot>>,
    /// Which room and participant a remote address belongs to, learned from
    /// `Rtc::accepts` once and then looked up per packet.
    owners: HashMap<(Protocol, SocketAddr), (usize, ParticipantId)>,
    signals: HashMap<ParticipantId, UnboundedSender<MediaSignal>>,
    estimate_bandwidth: bool,
    /// Rooms a datagram reached since they were last polled in full.
    touched: Vec<usize>,
}

impl Worker {
    async fn run(&mut self, mut commands: UnboundedReceiver<WorkerCommand>) {
        let mut buf = vec![0u8; 2048];
        let mut frame_buf = vec![0u8; usize::from(u16::MAX)];
        let mut turn = 0usize;
        loop {
            let next = self.next_deadline();
            tokio::select! {
                (i, received) = recv_any(&self.sockets, &mut buf, turn) => {
                    turn = turn.wrapping_add(1);
                    if let Ok((len, from)) = received {
                        self.receive_udp(i, from, &buf[..len]);
                        // The rest of a burst (a video frame is several
                        // packets) is taken before the rooms are polled.
                        for _ in 1..BATCH {
                            let Some((i, len, from)) = try_recv_any(&self.sockets, &mut buf, turn) else {
                                break;
                            };
                            self.receive_udp(i, from, &buf[..len]);
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
                    Some(cmd) => self.command(Instant::now(), cmd),
                    None => return,
                },
                _ = tokio::time::sleep_until(next.into()) => self.timeouts(Instant::now()),
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        self.rooms
            .iter()
            .flatten()
            .map(|s| s.deadline)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    /// Takes a datagram that arrived on media socket `socket`.
    fn receive_udp(&mut self, socket: usize, from: SocketAddr, data: &[u8]) {
        let to = self.sockets[socket].announced;
        self.receive(Instant::now(), Protocol::Udp, from, to, data);
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
        let owner = match self.owners.get(&(proto, from)) {
            Some(o) => Some(*o),
            None => {
                let found = self.find_owner(&input);
                if let Some(o) = found {
                    self.owners.insert((proto, from), o);
                    if proto == Protocol::Tcp {
                        self.tcp.claim(from);
                    }
                }
                found
            }
        };
        let Some((slot, participant)) = owner else {
            tracing::trace!(%from, "datagram for no session dropped");
            return;
        };
        let Some(s) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
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
        let Some(s) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (sockets, tcp) = (&self.sockets, &mut self.tcp);
        s.poll_guarded(|room| room.poll_received(now, |t| transmit(sockets, tcp, t)));
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

    fn find_owner(&self, input: &Input) -> Option<(usize, ParticipantId)> {
        self.rooms.iter().enumerate().find_map(|(i, s)| {
            let s = s.as_ref()?;
            s.room.accepts(input).map(|p| (i, p))
        })
    }

    fn timeouts(&mut self, now: Instant) {
        self.tcp.sweep(now);
        for slot in 0..self.rooms.len() {
            let due = self.rooms[slot].as_ref().is_some_and(|s| s.deadline <= now);
            if due {
                if let Some(s) = self.rooms[slot].as_mut() {
                    s.room.handle_timeout(now);
                }
                self.poll_room(now, slot);
            }
        }
    }

    fn poll_room(&mut self, now: Instant, slot: usize) {
        let Some(s) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (sockets, tcp) = (&self.sockets, &mut self.tcp);
        s.deadline = s
            .poll_guarded(|room| room.poll(now, |t| transmit(sockets, tcp, t)))
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
        if self.rooms[slot].as_ref().is_some_and(|s| s.room.is_empty()) {
            self.rooms[slot] = None;
        }
    }

    fn command(&mut self, now: Instant, cmd: WorkerCommand) {
        let (room_id, participant, result) = match cmd {
            WorkerCommand::Stats { reply } => {
                let stats = self.rooms.iter().flatten().flat_map(|s| s.room.stats());
                let _ = reply.send(stats.collect());
                return;
            }
            WorkerCommand::StartRecording {
                room,
                options,
                reply,
            } => {
                let started = self.with_room(&room, |r| {
                    r.start_recording(options)
                        .map_err(|e| SfuError::Recording(e.to_string()))
                });
                let _ = reply.send(started.unwrap_or(Err(SfuError::NoSuchRoom(room))));
                return;
            }
            WorkerCommand::StopRecording { room } => {
                self.with_room(&room, Room::stop_recording);
                return;
            }
            WorkerCommand::TestDownlink {
                room,
                participant,
                plan,
                reply,
            } => {
                let started =
                    self.with_room(&room, |r| r.start_downlink_test(participant, plan, now));
                let _ = reply.send(started.unwrap_or(Err(SfuError::NoSuchRoom(room.clone()))));
                if let Some(slot) = self.find_slot(&room) {
                    self.poll_room(now, slot);
                }
                return;
            }
            WorkerCommand::ReceiveOnly { room, participant } => {
                let slot = self.slot_for(&room);
                if let Some(s) = self.rooms[slot].as_mut() {
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
                let slot = self.slot_for(&room);
                let candidates = &self.candidates;
                let r = self.rooms[slot]
                    .as_mut()
                    .map(|s| s.room.connect(now, participant, &offer, candidates));
                (room, participant, r)
            }
            WorkerCommand::Answer {
                room,
                participant,
                answer,
            } => {
                let r = self.with_room(&room, |r| r.accept_answer(participant, &answer));
                (room, participant, r)
            }
            WorkerCommand::Candidate {
                room,
                participant,
                candidate,
            } => {
                let r = self.with_room(&room, |r| r.add_remote_candidate(participant, &candidate));
                (room, participant, r)
            }
            WorkerCommand::View {
                room,
                participant,
                origin,
                height,
            } => {
                let r = self.with_room(&room, |r| r.set_view(participant, origin, height));
                (room, participant, r)
            }
            WorkerCommand::Leave { room, participant } => {
                self.with_room(&room, |r| r.remove(participant));
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
        if let Some(slot) = self.find_slot(&room_id) {
            self.poll_room(now, slot);
        }
    }

    /// Runs `f` on the room named `room`, if this worker has it.
    fn with_room<T>(&mut self, room: &RoomId, f: impl FnOnce(&mut Room) -> T) -> Option<T> {
        let slot = self.find_slot(room)?;
        self.rooms[slot].as_mut().map(|s| f(&mut s.room))
    }

    fn forget(&mut self, participant: ParticipantId) {
        self.signals.remove(&participant);
        let tcp = &mut self.tcp;
        self.owners.retain(|&(proto, addr), (_, p)| {
            let theirs = *p == participant;
            if theirs && proto == Protocol::Tcp {
                tcp.close_peer(addr);
            }
            !theirs
        });
    }

    fn find_slot(&self, room: &RoomId) -> Option<usize> {
        self.rooms
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.room.id() == room))
    }

    fn slot_for(&mut self, room: &RoomId) -> usize {
        if let Some(i) = self.find_slot(room) {
            return i;
        }
        let mut new_room = Room::new(room.clone());
        new_room.set_bandwidth_estimation(self.estimate_bandwidth);
        let slot = RoomSlot {
            room: new_room,
            deadline: Instant::now(),
        };
        match self.rooms.iter().position(Option::is_none) {
            Some(i) => {
                self.rooms[i] = Some(slot);
                i
            }
            None => {
                self.rooms.push(Some(slot));
                self.rooms.len() - 1
            }
        }
    }
}
