//! The relay thread: the node's QUIC endpoint and its links to other nodes
//! (see `cascade`). Workers hand it what their rooms send to other nodes;
//! it hands each worker what arrives for its rooms. Its own thread and
//! runtime, so a slow link never holds a media worker.
//!
//! Per link, one task writes (control messages in order, packets as
//! datagrams), one reads control messages and one reads datagrams. A room's
//! messages and packets go to the worker that owns the room, found from
//! the room's name in the link's `Open`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::link_queue::{LinkQueue, Queued};
use super::server::{worker_for, WorkerCommand};
use crate::cascade::link::{
    DatagramQueued, LinkReader, LinkWriter, NodeIdentity, RelayEndpoint, RelayLink,
};
use crate::cascade::wire::LinkMessage;
use crate::cascade::Control;
use crate::cascade::{LinkId, RelayedPacket};
use crate::error::SfuError;
use crate::id::RoomId;

/// Where the relay listens and what proves this node is the hub's.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// UDP address of the QUIC endpoint other nodes reach.
    pub listen: SocketAddr,
    /// This node's certificate chain (PEM), signed by the hub's CA.
    pub cert_pem: Vec<u8>,
    /// Its private key (PEM).
    pub key_pem: Vec<u8>,
    /// The hub's CA certificate (PEM): only nodes it signed are linked.
    pub hub_ca_pem: Vec<u8>,
}

/// What crossed the relay since the node started, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounts {
    /// Packets sent to other nodes (once per node, whatever its viewers).
    pub packets_sent: u64,
    /// Packets received from other nodes.
    pub packets_received: u64,
    /// Their payload and header bytes, sent.
    pub bytes_sent: u64,
    /// The same, received.
    pub bytes_received: u64,
    /// Packets lost at this node: too big for the path, malformed, for a
    /// room not open, or dropped from a full send queue (quinn drops the
    /// oldest queued to take a new one: counted once per packet that made
    /// it drop any, so at least as many were lost).
    pub packets_dropped: u64,
    /// Keyframe requests sent to other nodes' publishers (for viewers here).
    pub keyframes_sent: u64,
    /// Keyframe requests received for publishers here.
    pub keyframes_received: u64,
    /// Links to other nodes now.
    pub links: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    packets_sent: AtomicU64,
    packets_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    pub(super) packets_dropped: AtomicU64,
    keyframes_sent: AtomicU64,
    keyframes_received: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Something a worker sends another node.
#[derive(Debug)]
pub(super) enum Outgoing {
    Message(LinkMessage),
    Packet(u32, RelayedPacket),
}

/// What the relay thread and the server ask of a worker about its rooms'
/// links.
#[derive(Debug)]
pub(super) enum RelayCommand {
    /// Span `room` to the node at the end of `link` (this node opens it).
    SpanTo {
        room: RoomId,
        link: LinkId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// The other node opened `room` on `link`, numbering it `theirs`.
    Open {
        room: RoomId,
        link: LinkId,
        theirs: u32,
    },
    /// The other node's last participant in its `theirs` left.
    Close { link: LinkId, theirs: u32 },
    /// A room's control message.
    Control {
        link: LinkId,
        theirs: u32,
        control: Control,
    },
    /// A room's packet.
    Packet {
        link: LinkId,
        theirs: u32,
        packet: RelayedPacket,
    },
    /// The link is gone: its rooms' far participants leave.
    LinkLost { link: LinkId },
    /// A lost link was made again as `new` (by this node, or by the other
    /// one; `None`: given up): the rooms this node spanned over `lost` span
    /// again.
    Relinked { lost: LinkId, new: Option<LinkId> },
}

enum HubCommand {
    Connect {
        addr: SocketAddr,
        name: String,
        reply: oneshot::Sender<Result<LinkId, SfuError>>,
    },
}

/// The workers' and the server's handle on the relay thread.
#[derive(Clone)]
pub(super) struct RelayHandle {
    commands: UnboundedSender<HubCommand>,
    /// Each link's writer, by link.
    writers: Arc<Mutex<HashMap<LinkId, LinkQueue>>>,
    next_channel: Arc<AtomicU32>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl RelayHandle {
    /// Binds the endpoint and starts the relay thread.
    pub fn start(
        settings: &RelaySettings,
        workers: Vec<UnboundedSender<WorkerCommand>>,
    ) -> Result<RelayHandle, SfuError> {
        let identity =
            NodeIdentity::from_pem(&settings.cert_pem, &settings.key_pem, &settings.hub_ca_pem)
                .map_err(|e| SfuError::Relay(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SfuError::Relay(e.to_string()))?;
        let endpoint = {
            let _entered = runtime.enter();
            RelayEndpoint::bind(settings.listen, &identity)
                .map_err(|e| SfuError::Relay(e.to_string()))?
        };
        let local_addr = endpoint
            .local_addr()
            .map_err(|e| SfuError::Relay(e.to_string()))?;
        let (commands, rx) = unbounded_channel();
        let handle = RelayHandle {
            commands,
            writers: Arc::default(),
            next_channel: Arc::new(AtomicU32::new(1)),
            local_addr,
            counters: Arc::default(),
        };
        let hub = Hub {
            endpoint: Arc::new(endpoint),
            handle: handle.clone(),
            workers: Arc::new(workers),
            by_addr: HashMap::new(),
            connecting: HashMap::new(),
            dialled: HashMap::new(),
            relinking: HashMap::new(),
            answered: HashMap::new(),
            lost_answered: HashMap::new(),
            next_link: 1,
        };
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || runtime.block_on(hub.run(rx)))
            .map_err(|_| SfuError::Relay("relay thread could not start".into()))?;
        tracing::info!(%local_addr, "relay between nodes listening");
        Ok(handle)
    }

    /// Where other nodes reach this one.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The link to the node at `addr` (named `name` in its certificate),
    /// made if there is none yet.
    pub async fn link_to(&self, addr: SocketAddr, name: &str) -> Result<LinkId, SfuError> {
        let (reply, answer) = oneshot::channel();
        let name = name.to_owned();
        self.commands
            .send(HubCommand::Connect { addr, name, reply })
            .map_err(|_| SfuError::Relay("relay thread stopped".into()))?;
        answer
            .await
            .map_err(|_| SfuError::Relay("relay thread stopped".into()))?
    }

    /// What crossed so far.
    pub fn counts(&self) -> RelayCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let links = self.writers.lock().unwrap_or_else(|e| e.into_inner()).len();
        RelayCounts {
            packets_sent: get(&c.packets_sent),
            packets_received: get(&c.packets_received),
            bytes_sent: get(&c.bytes_sent),
            bytes_received: get(&c.bytes_received),
            packets_dropped: get(&c.packets_dropped),
            keyframes_sent: get(&c.keyframes_sent),
            keyframes_received: get(&c.keyframes_received),
            links: links as u64,
        }
    }

    /// A new number for a room on links, unique in this process.
    pub fn new_channel(&self) -> u32 {
        self.next_channel.fetch_add(1, Ordering::Relaxed)
    }

    /// The queue of the link's writer, taken once per room spanned (the
    /// packet path then only sends on a channel); `None` when it is gone.
    pub fn writer(&self, link: LinkId) -> Option<LinkQueue> {
        let writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        writers.get(&link).cloned()
    }
}

struct Hub {
    endpoint: Arc<RelayEndpoint>,
    handle: RelayHandle,
    workers: Arc<Vec<UnboundedSender<WorkerCommand>>>,
    by_addr: HashMap<SocketAddr, LinkId>,
    /// Links being made, and who waits for each.
    connecting: HashMap<SocketAddr, Vec<oneshot::Sender<Result<LinkId, SfuError>>>>,
    /// Nodes this one linked to, by address: the names their certificates
    /// carry, to make a lost link again.
    dialled: HashMap<SocketAddr, String>,
    /// Lost links being made again, by address: the link each replaces.
    relinking: HashMap<SocketAddr, LinkId>,
    /// Links other nodes made to this one, by their address.
    answered: HashMap<SocketAddr, LinkId>,
    /// Such links since lost, by address: the node at the other end makes
    /// them again, and the rooms this node spanned over them span again then.
    lost_answered: HashMap<SocketAddr, LinkId>,
    next_link: u32,
}

/// What a link's tasks tell the hub.
enum LinkEvent {
    Accepted(RelayLink),
    Connected(SocketAddr, String, Result<RelayLink, String>),
    Lost(LinkId, SocketAddr),
}

impl Hub {
    async fn run(mut self, mut commands: UnboundedReceiver<HubCommand>) {
        let (events, mut event_rx) = unbounded_channel();
        tokio::spawn(accept_links(self.endpoint.clone(), events.clone()));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(HubCommand::Connect { addr, name, reply }) => {
                        self.connect(addr, name, reply, &events);
                    }
                    None => {
                        self.endpoint.close();
                        return;
                    }
                },
                Some(event) = event_rx.recv() => match event {
                    LinkEvent::Connected(addr, name, linked) => {
                        let result = linked
                            .map(|link| self.adopt(link, &events))
                            .map_err(|e| format!("{addr}: {e}"));
                        if result.is_ok() {
                            self.dialled.insert(addr, name);
                        }
                        if let Some(lost) = self.relinking.remove(&addr) {
                            self.relinked(addr, lost, result.as_ref().ok().copied());
                        }
                        for reply in self.connecting.remove(&addr).unwrap_or_default() {
                            let _ = reply.send(result.clone().map_err(SfuError::Relay));
                        }
                    }
                    LinkEvent::Accepted(link) => {
                        let addr = link.remote_addr();
                        tracing::info!(%addr, "relay link from another node");
                        // A node making its link again has let the old one
                        // go; this end may not have noticed yet.
                        let held = self.answered.remove(&addr);
                        if let Some(old) = held {
                            tracing::info!(%addr, link = old.0, "relay link replaced");
                            self.forget_link(old, addr);
                        }
                        let id = self.adopt(link, &events);
                        self.answered.insert(addr, id);
                        // Rooms this node spanned over the old link span
                        // over the new one.
                        let lost_before = self.lost_answered.remove(&addr);
                        if let Some(old) = held.or(lost_before) {
                            self.relinked(addr, old, Some(id));
                        }
                    }
                    LinkEvent::Lost(link, addr) => self.lost(link, addr, &events),
                },
            }
        }
    }

    /// Answers `reply` with the link to `addr`: the one there is, or one
    /// made beside the hub's other work (a node that does not answer holds
    /// up no one else), shared by everyone who asks meanwhile.
    fn connect(
        &mut self,
        addr: SocketAddr,
        name: String,
        reply: oneshot::Sender<Result<LinkId, SfuError>>,
        events: &UnboundedSender<LinkEvent>,
    ) {
        if let Some(link) = self.by_addr.get(&addr) {
            let _ = reply.send(Ok(*link));
            return;
        }
        // Made already (or made again after a loss): wait for that one.
        let dialling = self.connecting.contains_key(&addr);
        self.connecting.entry(addr).or_default().push(reply);
        if dialling {
            return;
        }
        let (endpoint, events) = (self.endpoint.clone(), events.clone());
        tokio::spawn(async move {
            let linked = endpoint.connect(addr, &name).await;
            match &linked {
                Ok(_) => tracing::info!(%addr, name, "relay link to another node"),
                Err(e) => {
                    tracing::warn!(%addr, name, error = %e, "relay link to another node failed")
                }
            }
            let linked = linked.map_err(|e| e.to_string());
            let _ = events.send(LinkEvent::Connected(addr, name, linked));
        });
    }

    /// Makes the lost link `lost` to `addr` again, beside the hub's other
    /// work: tried after [`RELINK_FIRST_WAIT`], then at doubling waits, for
    /// [`RELINK_FOR`]. Joins asking for a link there meanwhile wait for it.
    fn relink(
        &mut self,
        addr: SocketAddr,
        name: String,
        lost: LinkId,
        events: &UnboundedSender<LinkEvent>,
    ) {
        self.relinking.insert(addr, lost);
        if self.connecting.contains_key(&addr) {
            return; // a join's link there is being made: that one serves
        }
        self.connecting.entry(addr).or_default();
        let (endpoint, events) = (self.endpoint.clone(), events.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut wait = RELINK_FIRST_WAIT;
            let linked = loop {
                tokio::time::sleep(wait).await;
                match endpoint.connect(addr, &name).await {
                    Ok(link) => break Ok(link),
                    Err(e) if started.elapsed() < RELINK_FOR => {
                        tracing::debug!(%addr, name, error = %e, "relay link not made again yet");
                        wait = (wait * 2).min(RELINK_MOST_WAIT);
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            let _ = events.send(LinkEvent::Connected(addr, name, linked));
        });
    }

    /// Tells the workers that the link `lost` to `addr` was made again as
    /// `new`, or given up.
    fn relinked(&self, addr: SocketAddr, lost: LinkId, new: Option<LinkId>) {
        match new {
            Some(link) => {
                tracing::info!(%addr, lost = lost.0, link = link.0, "relay link made again")
            }
            None => {
                tracing::warn!(%addr, lost = lost.0, "relay link not made again: its rooms' far participants stay apart")
            }
        }
        self.tell_workers(|| RelayCommand::Relinked { lost, new });
    }

    /// `link` to `addr` ended: forgotten, and made again if this node made it.
    fn lost(&mut self, link: LinkId, addr: SocketAddr, events: &UnboundedSender<LinkEvent>) {
        let writers = &self.handle.writers;
        if !writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&link)
        {
            return; // replaced, and forgotten then
        }
        tracing::warn!(%addr, link = link.0, "relay link lost");
        let current = self.by_addr.get(&addr) == Some(&link);
        if self.answered.get(&addr) == Some(&link) {
            self.answered.remove(&addr);
            self.lost_answered.insert(addr, link);
        }
        self.forget_link(link, addr);
        if let Some(name) = self.dialled.get(&addr).filter(|_| current) {
            self.relink(addr, name.clone(), link, events);
        }
    }

    /// Drops `link` to `addr`: nothing more is sent on it, and its rooms'
    /// far participants leave.
    fn forget_link(&mut self, link: LinkId, addr: SocketAddr) {
        if self.by_addr.get(&addr) == Some(&link) {
            self.by_addr.remove(&addr);
        }
        let writers = &self.handle.writers;
        writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&link);
        self.tell_workers(|| RelayCommand::LinkLost { link });
    }

    fn tell_workers(&self, command: impl Fn() -> RelayCommand) {
        for w in self.workers.iter() {
            let _ = w.send(WorkerCommand::Relay(command()));
        }
    }

    /// Starts a link's tasks; returns its number.
    fn adopt(&mut self, link: RelayLink, events: &UnboundedSender<LinkEvent>) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let addr = link.remote_addr();
        self.by_addr.entry(addr).or_insert(id);
        let (writer, reader) = link.split();
        let counters = self.handle.counters.clone();
        let (queue, queued) = LinkQueue::new(counters.clone());
        self.handle
            .writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, queue);
        tokio::spawn(write_link(writer, queued, counters.clone()));
        let (routes, route_rx) = unbounded_channel();
        let datagrams = reader.datagrams();
        let workers = self.workers.clone();
        tokio::spawn(read_datagrams(
            id,
            datagrams,
            workers.clone(),
            route_rx,
            counters,
        ));
        let events = events.clone();
        let counters = self.handle.counters.clone();
        tokio::spawn(async move {
            read_messages(id, reader, workers, routes, counters).await;
            let _ = events.send(LinkEvent::Lost(id, addr));
        });
        id
    }
}

/// A lost link is first tried again after this: both ends notice a loss
/// within a keep-alive of each other, so the other end has let the old
/// link's rooms go before the new link opens them again.
const RELINK_FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait between tries.
const RELINK_MOST_WAIT: Duration = Duration::from_secs(10);
/// How long a lost link is tried again: past a network blip, a node still
/// gone is failover's business (its rooms are placed elsewhere).
const RELINK_FOR: Duration = Duration::from_secs(120);

/// Most handshakes in progress at once, and from one address: a stranger
/// stalling handshakes cannot keep the hub's nodes from linking.
const MAX_HANDSHAKES: usize = 16;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 2;

/// Takes other nodes' connections, each handshake beside the others (at
/// most [`MAX_HANDSHAKES`], [`MAX_HANDSHAKES_PER_ADDRESS`] from one address).
async fn accept_links(endpoint: Arc<RelayEndpoint>, events: UnboundedSender<LinkEvent>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let busy: Arc<Mutex<HashMap<std::net::IpAddr, usize>>> = Arc::default();
    while let Some(incoming) = endpoint.incoming().await {
        let from = incoming.remote_address().ip();
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%from, "too many relay handshakes at once: refused");
            incoming.refuse();
            continue;
        };
        {
            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
            let n = busy.entry(from).or_default();
            if *n >= MAX_HANDSHAKES_PER_ADDRESS {
                tracing::warn!(%from, "too many relay handshakes from one address: refused");
                incoming.refuse();
                continue;
            }
            *n += 1;
        }
        let (events, busy) = (events.clone(), busy.clone());
        tokio::spawn(async move {
            let shaken = RelayEndpoint::handshake(incoming).await;
            drop(slot);
            {
                let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = busy.get_mut(&from) {
                    *n -= 1;
                    if *n == 0 {
                        busy.remove(&from);
                    }
                }
            }
            match shaken {
                Ok(link) => {
                    let _ = events.send(LinkEvent::Accepted(link));
                }
                Err(e) => tracing::warn!(%from, error = %e, "relay link refused"),
            }
        });
    }
}

/// Writes what workers queue for one link until it fails or every sender
/// is gone.
async fn write_link(mut writer: LinkWriter, mut queue: Queued, counters: Arc<Counters>) {
    while let Some(out) = queue.next().await {
        let sent = match &out {
            Outgoing::Message(m) => {
                if is_keyframe_request(m) {
                    Counters::add(&counters.keyframes_sent, 1);
                }
                writer.send_message(m).await
            }
            Outgoing::Packet(channel, p) => match writer.send_packet(*channel, p) {
                Ok(queued) => {
                    Counters::add(&counters.packets_sent, 1);
                    Counters::add(&counters.bytes_sent, p.rtp_bytes() as u64);
                    if queued == DatagramQueued::Displaced {
                        // At least one older packet went to make room.
                        Counters::add(&counters.packets_dropped, 1);
                    }
                    Ok(())
                }
                // A packet too big, or a full send buffer: lost, as on UDP.
                Err(crate::cascade::link::LinkError::Datagram(e)) => {
                    tracing::debug!(error = %e, "relayed packet dropped");
                    Counters::add(&counters.packets_dropped, 1);
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "relay link write failed");
            writer.close();
            return;
        }
    }
    // Forgotten by the hub (lost, or replaced by a new link): closed, so
    // its reader ends too.
    writer.close();
}

/// Reads one link's control messages and hands each to the worker owning
/// its room, until the link ends or sends something malformed (then it is
/// closed: a node that breaks the protocol is not trusted further).
async fn read_messages(
    link: LinkId,
    mut reader: LinkReader,
    workers: Arc<Vec<UnboundedSender<WorkerCommand>>>,
    routes: UnboundedSender<(u32, Option<usize>)>,
    counters: Arc<Counters>,
) {
    let mut owners = Channels::default();
    loop {
        let message = match reader.recv_message().await {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(link = link.0, error = %e, "relay link ended");
                return;
            }
        };
        if is_keyframe_request(&message) {
            Counters::add(&counters.keyframes_received, 1);
        }
        let (index, command) = match message {
            LinkMessage::Open { channel, room } => {
                let index = worker_for(&room, workers.len());
                if let Err(open) = owners.open(channel, index) {
                    tracing::warn!(link = link.0, %room, open, "room from another node refused: the link has as many rooms open as it may");
                    continue;
                }
                let _ = routes.send((channel, Some(index)));
                let command = RelayCommand::Open {
                    room,
                    link,
                    theirs: channel,
                };
                (index, command)
            }
            LinkMessage::Close { channel } => {
                let Some(index) = owners.remove(&channel) else {
                    continue;
                };
                let _ = routes.send((channel, None));
                let command = RelayCommand::Close {
                    link,
                    theirs: channel,
                };
                (index, command)
            }
            LinkMessage::Room { channel, control } => {
                let Some(&index) = owners.get(&channel) else {
                    tracing::debug!(link = link.0, channel, "message for a room never opened");
                    continue;
                };
                let command = RelayCommand::Control {
                    link,
                    theirs: channel,
                    control,
                };
                (index, command)
            }
        };
        if workers[index].send(WorkerCommand::Relay(command)).is_err() {
            return;
        }
    }
}

/// Reads one link's datagrams and hands each packet to the worker owning
/// its room; a malformed datagram is dropped.
async fn read_datagrams(
    link: LinkId,
    datagrams: crate::cascade::link::DatagramReader,
    workers: Arc<Vec<UnboundedSender<WorkerCommand>>>,
    mut routes: UnboundedReceiver<(u32, Option<usize>)>,
    counters: Arc<Counters>,
) {
    let mut owners: HashMap<u32, usize> = HashMap::new();
    loop {
        let received = datagrams.recv_packet().await;
        while let Ok((channel, index)) = routes.try_recv() {
            match index {
                Some(i) => owners.insert(channel, i),
                None => owners.remove(&channel),
            };
        }
        match received {
            Ok((theirs, packet)) => {
                let Some(&index) = owners.get(&theirs) else {
                    Counters::add(&counters.packets_dropped, 1);
                    continue;
                };
                Counters::add(&counters.packets_received, 1);
                Counters::add(&counters.bytes_received, packet.rtp_bytes() as u64);
                let command = RelayCommand::Packet {
                    link,
                    theirs,
                    packet,
                };
                if workers[index].send(WorkerCommand::Relay(command)).is_err() {
                    return;
                }
            }
            Err(_) if datagrams.closed_reason().is_some() => return,
            Err(e) => {
                Counters::add(&counters.packets_dropped, 1);
                tracing::debug!(link = link.0, error = %e, "relayed datagram dropped");
            }
        }
    }
}

/// Most rooms one link may hold open at once: above what a node of 16
/// cores carries (about 100 rooms of three per core, see
/// `docs/performance.md`). Links are mutual TLS under the hub's CA, so only
/// the hub's own nodes open rooms; this keeps one that misbehaves from
/// growing this node's rooms without end.
const MAX_ROOMS_PER_LINK: usize = 4_096;

/// The worker owning each room a link opened, by the other node's channel.
#[derive(Debug, Default)]
struct Channels(HashMap<u32, usize>);

impl Channels {
    /// Records that `channel` carries a room of worker `index`; refused
    /// (with how many are open) when it is new and the link is full.
    fn open(&mut self, channel: u32, index: usize) -> Result<(), usize> {
        let open = self.0.len();
        if open >= MAX_ROOMS_PER_LINK && !self.0.contains_key(&channel) {
            return Err(open);
        }
        self.0.insert(channel, index);
        Ok(())
    }

    fn get(&self, channel: &u32) -> Option<&usize> {
        self.0.get(channel)
    }

    fn remove(&mut self, channel: &u32) -> Option<usize> {
        self.0.remove(channel)
    }
}

fn is_keyframe_request(message: &LinkMessage) -> bool {
    matches!(
        message,
        LinkMessage::Room {
            control: Control::Keyframe { .. },
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_rooms_up_to_its_limit_and_again_once_one_closes() {
        let mut owners = Channels::default();
        for channel in 0..MAX_ROOMS_PER_LINK as u32 {
            assert_eq!(owners.open(channel, 1), Ok(()));
        }
        let next = MAX_ROOMS_PER_LINK as u32;
        assert_eq!(owners.open(next, 0), Err(MAX_ROOMS_PER_LINK));
        assert_eq!(owners.get(&next), None, "a refused room is not routed");
        // Opened again, a room already open is no new room.
        assert_eq!(owners.open(7, 0), Ok(()));
        assert_eq!(owners.get(&7), Some(&0));
        assert_eq!(owners.remove(&7), Some(0));
        assert_eq!(owners.open(next, 0), Ok(()));
        assert_eq!(owners.get(&next), Some(&0));
    }
}
