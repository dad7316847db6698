//! The TURN server's sockets: one thread with listeners for TURN over UDP,
//! TCP and TLS, and one UDP relay socket per allocation. All state is in
//! [`TurnServer`]; this file only moves bytes.
//!
//! Relayed media to a client on UDP is copied into a reused buffer; to a
//! client on TCP or TLS it is queued to that connection's writer, one buffer
//! per packet. TURN is the fallback path for locked-down networks, not the
//! SFU's forwarding path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{channel, Sender};
use tokio::task::JoinHandle;

use super::book::RelayBook;
use super::credentials::TurnSecret;
use super::server::{channel_data, Client, ClientAction, Transport, TurnLimits, TurnServer};
use crate::error::SfuError;
use crate::refusals::{Refusals, Surface};

/// Where the embedded TURN server listens and whom it serves.
pub struct TurnConfig {
    /// TURN over UDP.
    pub udp: Option<SocketAddr>,
    /// TURN over TCP.
    pub tcp: Option<SocketAddr>,
    /// TURN over TLS, with its certificate.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// The address relay sockets are announced on (the hub's address).
    pub relay_ip: IpAddr,
    /// The realm in credentials (any fixed name).
    pub realm: String,
    /// Checks the REST-API credentials handed out at join.
    pub secret: TurnSecret,
    /// The SFU's media addresses: the only peers relayed to.
    pub peers: Vec<SocketAddr>,
    /// Where live relays are recorded for the media plane.
    pub book: RelayBook,
    /// How much one client may take (a reload may change it).
    pub limits: crate::Live<TurnLimits>,
    /// Where refusals are counted.
    pub refusals: Refusals,
    /// Where failed requests are counted.
    pub failures: super::TurnFailures,
}

/// The addresses the TURN server is listening on.
#[derive(Debug, Clone, Default)]
pub struct TurnAddrs {
    /// TURN over UDP.
    pub udp: Option<SocketAddr>,
    /// TURN over TCP.
    pub tcp: Option<SocketAddr>,
    /// TURN over TLS.
    pub tls: Option<SocketAddr>,
}

/// TCP or TLS connections held at most.
const MAX_STREAMS: usize = 2000;
/// Relayed packets queued for one TCP or TLS client at most; past this a
/// client that does not read loses packets, as on UDP, instead of growing
/// the server.
const STREAM_QUEUE: usize = 256;
/// Room for the largest STUN message or ChannelData frame.
const FRAME_BUFFER: usize = 4 + u16::MAX as usize + 4;

struct Relay {
    socket: Rc<UdpSocket>,
    task: JoinHandle<()>,
}

struct State {
    core: TurnServer,
    book: RelayBook,
    relay_ip: IpAddr,
    udp: Option<Rc<UdpSocket>>,
    relays: HashMap<SocketAddr, Relay>,
    streams: HashMap<Client, Sender<Vec<u8>>>,
    /// TCP and TLS connections open per client address.
    connections: HashMap<IpAddr, usize>,
    limits: crate::Live<TurnLimits>,
    refusals: Refusals,
}

type Shared = Rc<RefCell<State>>;

/// Binds the listeners and starts the TURN thread.
pub fn start_turn(config: TurnConfig) -> Result<TurnAddrs, SfuError> {
    let bind_err = |addr: SocketAddr| move |source| SfuError::Bind { addr, source };
    let udp_bind = |a| {
        let s = std::net::UdpSocket::bind(a)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let tcp_bind = |a| {
        let l = std::net::TcpListener::bind(a)?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let udp = match config.udp {
        Some(a) => Some(udp_bind(a).map_err(bind_err(a))?),
        None => None,
    };
    let tcp = match config.tcp {
        Some(a) => Some(tcp_bind(a).map_err(bind_err(a))?),
        None => None,
    };
    let tls = match &config.tls {
        Some((a, _)) => Some(tcp_bind(*a).map_err(bind_err(*a))?),
        None => None,
    };
    let addrs = TurnAddrs {
        udp: udp.as_ref().and_then(|s| s.local_addr().ok()),
        tcp: tcp.as_ref().and_then(|s| s.local_addr().ok()),
        tls: tls.as_ref().and_then(|s| s.local_addr().ok()),
    };
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| SfuError::TurnStart("no randomness from the operating system"))?;
    config
        .book
        .set_local_ips(config.peers.iter().map(SocketAddr::ip));
    let core = TurnServer::new(
        &config.realm,
        config.secret,
        config.peers,
        &seed,
        config.limits.clone(),
        config.refusals.clone(),
        config.failures,
    );
    let book = config.book;
    let (limits, refusals) = (config.limits, config.refusals);
    let tls_config = config.tls.map(|(_, c)| c);
    let relay_ip = config.relay_ip;
    std::thread::Builder::new()
        .name("turn".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return tracing::error!(error = %e, "TURN server could not start"),
            };
            let local = tokio::task::LocalSet::new();
            let turn = Turn {
                core,
                book,
                relay_ip,
                limits,
                refusals,
            };
            local.block_on(&runtime, run(turn, udp, tcp, tls, tls_config));
        })
        .map_err(|_| SfuError::TurnStart("no thread"))?;
    Ok(addrs)
}

/// The state the TURN thread starts with.
struct Turn {
    core: TurnServer,
    book: RelayBook,
    relay_ip: IpAddr,
    limits: crate::Live<TurnLimits>,
    refusals: Refusals,
}

async fn run(
    turn: Turn,
    udp: Option<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<std::net::TcpListener>,
    tls_config: Option<Arc<rustls::ServerConfig>>,
) {
    let udp = udp.and_then(|s| UdpSocket::from_std(s).ok()).map(Rc::new);
    let state: Shared = Rc::new(RefCell::new(State {
        core: turn.core,
        book: turn.book,
        relay_ip: turn.relay_ip,
        udp: udp.clone(),
        relays: HashMap::new(),
        streams: HashMap::new(),
        connections: HashMap::new(),
        limits: turn.limits,
        refusals: turn.refusals,
    }));
    if let Some(socket) = udp {
        tokio::task::spawn_local(serve_udp(state.clone(), socket));
    }
    if let Some(l) = tcp.and_then(|l| TcpListener::from_std(l).ok()) {
        tokio::task::spawn_local(accept(state.clone(), l, None));
    }
    if let (Some(l), Some(c)) = (tls.and_then(|l| TcpListener::from_std(l).ok()), tls_config) {
        let acceptor = tokio_rustls::TlsAcceptor::from(c);
        tokio::task::spawn_local(accept(state.clone(), l, Some(acceptor)));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let mut st = state.borrow_mut();
        st.core.expire(Instant::now());
        close_ended(&mut st);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Stops the relays of allocations that ended.
fn close_ended(st: &mut State) {
    for relay in st.core.take_closed() {
        st.book.remove(relay);
        if let Some(r) = st.relays.remove(&relay) {
            r.task.abort();
        }
    }
}

/// Handles one STUN message or ChannelData from `client`: relays what is
/// for a peer, returns what is for the client.
fn handle(state: &Shared, client: Client, frame: &[u8]) -> Option<Vec<u8>> {
    let mut st = state.borrow_mut();
    let relay_ip = st.relay_ip;
    let mut spare = None;
    let (action, taken) = st
        .core
        .handle_client(Instant::now(), unix_now(), client, frame, || {
            spare = bind_relay(relay_ip);
            spare.as_ref().map(|(_, addr)| *addr)
        });
    if let (true, Some((socket, addr))) = (taken, spare) {
        let task = tokio::task::spawn_local(relay_loop(state.clone(), addr, socket.clone()));
        st.relays.insert(addr, Relay { socket, task });
        st.book.insert(addr, client.transport);
    }
    let reply = match action {
        ClientAction::Reply(r) => Some(r),
        ClientAction::Relay { relay, peer, data } => {
            if let Some(r) = st.relays.get(&relay) {
                let _ = r.socket.try_send_to(data, peer);
            }
            None
        }
        ClientAction::Nothing => None,
    };
    close_ended(&mut st);
    reply
}

/// A relay socket on an ephemeral port, announced on `relay_ip`.
fn bind_relay(relay_ip: IpAddr) -> Option<(Rc<UdpSocket>, SocketAddr)> {
    let any: IpAddr = match relay_ip {
        IpAddr::V4(_) => [0, 0, 0, 0].into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0)).ok()?;
    socket.set_nonblocking(true).ok()?;
    let port = socket.local_addr().ok()?.port();
    let socket = UdpSocket::from_std(socket).ok()?;
    Some((Rc::new(socket), SocketAddr::new(relay_ip, port)))
}

/// Passes what the SFU sends to a relay on to its client.
async fn relay_loop(state: Shared, relay: SocketAddr, socket: Rc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048 + 64];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        let st = state.borrow();
        let Some((client, len)) =
            st.core
                .handle_peer(Instant::now(), relay, peer, &buf[..n], &mut out)
        else {
            continue;
        };
        match client.transport {
            Transport::Udp => {
                if let Some(udp) = &st.udp {
                    let _ = udp.try_send_to(&out[..len], client.addr);
                }
            }
            _ => {
                if let Some(tx) = st.streams.get(&client) {
                    let _ = tx.try_send(out[..len].to_vec());
                }
            }
        }
    }
}

async fn serve_udp(state: Shared, socket: Rc<UdpSocket>) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let client = Client {
            transport: Transport::Udp,
            addr: from,
            local,
        };
        if let Some(reply) = handle(&state, client, &buf[..n]) {
            let _ = socket.try_send_to(&reply, from);
        }
    }
}

async fn accept(state: Shared, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let Some(held) = Connection::open(&state, addr.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::task::spawn_local(async move {
            let transport = if tls.is_some() {
                Transport::Tls
            } else {
                Transport::Tcp
            };
            let client = Client {
                transport,
                addr,
                local,
            };
            // The handshake and the first allocation share one deadline.
            let deadline = tokio::time::Instant::now() + held.limits.unauthenticated;
            match tls {
                None => serve_stream(&state, client, stream, deadline).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_stream(&state, client, s, deadline).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "TURN TLS handshake failed")
                        }
                        Err(_) => held.refusals.refuse(
                            Surface::Turn,
                            "unauthenticated_timeout",
                            &addr.ip(),
                        ),
                    }
                }
            }
            drop(held);
        });
    }
}

/// One open TCP or TLS connection, counted against its address while held.
struct Connection {
    state: Shared,
    ip: IpAddr,
    limits: TurnLimits,
    refusals: Refusals,
}

impl Connection {
    /// Counts a new connection from `ip`, or refuses it (`None`) when the
    /// address or the server holds too many.
    fn open(state: &Shared, ip: IpAddr) -> Option<Connection> {
        let mut st = state.borrow_mut();
        let open: usize = st.connections.values().sum();
        let from_ip = st.connections.get(&ip).copied().unwrap_or(0);
        let limits = *st.limits.get();
        let refused = if from_ip >= limits.connections_per_address {
            Some("connections_per_address")
        } else if open >= MAX_STREAMS {
            Some("connections_total")
        } else {
            None
        };
        if let Some(reason) = refused {
            st.refusals.refuse(Surface::Turn, reason, &ip);
            return None;
        }
        *st.connections.entry(ip).or_default() += 1;
        Some(Connection {
            state: state.clone(),
            ip,
            limits,
            refusals: st.refusals.clone(),
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        if let Some(n) = st.connections.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.connections.remove(&self.ip);
            }
        }
    }
}

/// The length of the first frame in `buf` (STUN message, or ChannelData
/// padded to 4 bytes); `Err` if it is neither.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let total = match buf[0] & 0xc0 {
        0x00 => 20 + len,
        0x40 => 4 + len.div_ceil(4) * 4,
        _ => return Err(()),
    };
    Ok((buf.len() >= total).then_some(total))
}

/// Serves one TCP or TLS connection until it closes; its allocation ends
/// with it. Without an allocation by `deadline`, it is closed.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    state: &Shared,
    client: Client,
    stream: S,
    deadline: tokio::time::Instant,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = channel::<Vec<u8>>(STREAM_QUEUE);
    state.borrow_mut().streams.insert(client, tx);
    let mut buf = vec![0u8; FRAME_BUFFER];
    let mut filled = 0;
    let mut authenticated = false;
    'conn: loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline), if !authenticated => {
                let st = state.borrow();
                authenticated = st.core.has_allocation(&client);
                if !authenticated {
                    st.refusals.refuse(Surface::Turn, "unauthenticated_timeout", &client.addr.ip());
                    break;
                }
            }
            read = reader.read(&mut buf[filled..]) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
                loop {
                    let total = match frame_len(&buf[..filled]) {
                        Ok(Some(t)) => t,
                        Ok(None) => break,
                        Err(()) => break 'conn,
                    };
                    // ChannelData's padding is not part of the payload.
                    let frame = match channel_data(&buf[..total]) {
                        Some((_, payload)) => &buf[..4 + payload.len()],
                        None => &buf[..total],
                    };
                    if let Some(reply) = handle(state, client, frame) {
                        if writer.write_all(&reply).await.is_err() {
                            break 'conn;
                        }
                    }
                    buf.copy_within(total..filled, 0);
                    filled -= total;
                }
            }
            Some(out) = rx.recv() => {
                if writer.write_all(&out).await.is_err() {
                    break;
                }
            }
        }
    }
    let mut st = state.borrow_mut();
    st.streams.remove(&client);
    st.core.close_client(client);
    close_ended(&mut st);
}

/// Splits `data` into TURN stream frames as a connection does; the bytes
/// taken as frames (the rest is an unfinished frame or not TURN). For the
/// fuzz targets.
#[cfg(feature = "fuzzing")]
pub fn frames_for_fuzzing(data: &[u8]) -> usize {
    let mut at = 0;
    while let Ok(Some(total)) = frame_len(&data[at..]) {
        let frame = &data[at..at + total];
        assert!(frame.len() >= 4, "a frame has a header");
        at += total;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_frames_are_stun_or_padded_channel_data() {
        assert_eq!(frame_len(&[0, 1, 0]), Ok(None));
        // A STUN header announcing 8 bytes of attributes: 28 in all.
        let mut stun = vec![0, 1, 0, 8];
        stun.resize(28, 0);
        assert_eq!(frame_len(&stun[..27]), Ok(None));
        assert_eq!(frame_len(&stun), Ok(Some(28)));
        // ChannelData with 5 bytes of payload takes 4 + 8 on a stream.
        let chan = [0x40, 0x00, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 9];
        assert_eq!(frame_len(&chan), Ok(Some(12)));
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), Err(()), "not TURN framing");
    }
}
