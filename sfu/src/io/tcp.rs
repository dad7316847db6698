//! ICE over TCP (RFC 6544): passive host candidates for networks that block
//! UDP. Browsers connect to the worker's listener; every packet on the
//! connection (STUN, DTLS, SRTP) is framed with a 16-bit length (RFC 4571).
//!
//! The worker polls listeners and connections beside its UDP sockets. Nothing
//! per packet allocates: each connection reads into its own buffer, allocated
//! once at accept, and queues output in a buffer that keeps its capacity.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The largest frame RFC 4571 can carry, plus its length prefix.
const FRAME_BUFFER: usize = 2 + u16::MAX as usize;

/// Output queued on one connection beyond which packets are dropped, as a
/// congested network would drop them: a browser that stopped reading must
/// not grow the server's memory. About a second of 720p video.
const MAX_QUEUED_BYTES: usize = 512 * 1024;

/// Connections per worker; more are refused at accept.
const MAX_CONNECTIONS: usize = 1024;

/// A connection that no participant has claimed (no valid STUN check) within
/// this time is closed: it is a port scan or a stray, not a browser.
const UNCLAIMED_LIMIT: Duration = Duration::from_secs(10);

/// How much one worker's ICE-TCP edge holds. The defaults are the
/// constants above; tests shrink them.
#[derive(Debug, Clone, Copy)]
struct TcpLimits {
    connections: usize,
    queued_bytes: usize,
    unclaimed: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            connections: MAX_CONNECTIONS,
            queued_bytes: MAX_QUEUED_BYTES,
            unclaimed: UNCLAIMED_LIMIT,
        }
    }
}

/// One accepted connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// The announced address of the listener it came in on: the destination
    /// str0m expects, like a UDP socket's announced address.
    local: SocketAddr,
    input: Inbox,
    output: Vec<u8>,
    written: usize,
    opened: Instant,
    claimed: bool,
}

/// A frame received on a connection, copied into the caller's buffer.
pub(crate) struct Frame {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub len: usize,
}

/// A worker's TCP listeners and their connections.
pub(crate) struct TcpMedia {
    listeners: Vec<(TcpListener, SocketAddr)>,
    conns: Vec<Option<Conn>>,
    by_peer: HashMap<SocketAddr, usize>,
    limits: TcpLimits,
}

impl TcpMedia {
    /// Registers bound std listeners (with their announced addresses) with
    /// the current tokio runtime; one that cannot be is logged and left out.
    pub fn new(bound: Vec<(StdTcpListener, SocketAddr)>) -> Self {
        let listeners = bound
            .into_iter()
            .filter_map(|(l, announced)| match TcpListener::from_std(l) {
                Ok(l) => Some((l, announced)),
                Err(e) => {
                    tracing::error!(%announced, error = %e, "media TCP listener unusable");
                    None
                }
            })
            .collect();
        TcpMedia {
            listeners,
            conns: Vec::new(),
            by_peer: HashMap::new(),
            limits: TcpLimits::default(),
        }
    }

    /// The announced address of each listener.
    pub fn announced(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listeners.iter().map(|(_, a)| *a)
    }

    /// Waits for the next complete frame on any connection, accepting new
    /// connections and flushing queued output on the way. The frame is
    /// copied into `out` (which should hold [`u16::MAX`] bytes).
    pub async fn next_frame(&mut self, out: &mut [u8]) -> Frame {
        poll_fn(|cx| self.poll_frame(cx, out)).await
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<Frame> {
        self.poll_accept(cx);
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_mut() else {
                continue;
            };
            if conn.written < conn.output.len() && conn.poll_flush(cx).is_err() {
                self.close(i);
                continue;
            }
            match conn.poll_read_frame(cx, out) {
                Poll::Ready(Ok(len)) => {
                    return Poll::Ready(Frame {
                        from: conn.peer,
                        to: conn.local,
                        len,
                    })
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(peer = %conn.peer, error = %e, "media TCP connection closed");
                    self.close(i);
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) {
        for (listener, announced) in &self.listeners {
            while let Poll::Ready(accepted) = listener.poll_accept(cx) {
                let Ok((stream, peer)) = accepted else {
                    break;
                };
                let open = self.conns.iter().flatten().count();
                if open >= self.limits.connections {
                    tracing::warn!(%peer, open, "media TCP connection refused: too many");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    stream,
                    peer,
                    local: *announced,
                    input: Inbox::new(),
                    output: Vec::new(),
                    written: 0,
                    opened: Instant::now(),
                    claimed: false,
                };
                let slot = match self.conns.iter().position(Option::is_none) {
                    Some(i) => {
                        self.conns[i] = Some(conn);
                        i
                    }
                    None => {
                        self.conns.push(Some(conn));
                        self.conns.len() - 1
                    }
                };
                self.by_peer.insert(peer, slot);
                tracing::debug!(%peer, "media TCP connection accepted");
            }
        }
    }

    /// Queues `data` as one frame to `to` and writes what the socket takes
    /// now. Dropped if there is no such connection or its queue is full.
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) {
        let Some(conn) = self.by_peer.get(&to).and_then(|&i| self.conns[i].as_mut()) else {
            return;
        };
        let Ok(len) = u16::try_from(data.len()) else {
            return;
        };
        if conn.output.len() - conn.written + data.len() > self.limits.queued_bytes {
            return;
        }
        conn.output.extend_from_slice(&len.to_be_bytes());
        conn.output.extend_from_slice(data);
        conn.try_flush();
    }

    /// Marks the connection from `peer` as a participant's: it stays open.
    pub fn claim(&mut self, peer: SocketAddr) {
        if let Some(conn) = self
            .by_peer
            .get(&peer)
            .and_then(|&i| self.conns[i].as_mut())
        {
            conn.claimed = true;
        }
    }

    /// Closes connections nobody claimed within [`UNCLAIMED_LIMIT`].
    pub fn sweep(&mut self, now: Instant) {
        let limit = self.limits.unclaimed;
        for i in 0..self.conns.len() {
            let stale = self.conns[i]
                .as_ref()
                .is_some_and(|c| !c.claimed && now.duration_since(c.opened) > limit);
            if stale {
                self.close(i);
            }
        }
    }

    /// Closes the connection from `peer`, if any (its participant left).
    pub fn close_peer(&mut self, peer: SocketAddr) {
        if let Some(&i) = self.by_peer.get(&peer) {
            self.close(i);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(conn) = self.conns[i].take() {
            self.by_peer.remove(&conn.peer);
        }
    }
}

/// A connection's input: bytes read and not yet taken as frames. Room for
/// one whole frame of the largest size, so a frame always fits.
struct Inbox {
    buf: Box<[u8]>,
    filled: usize,
}

impl Inbox {
    fn new() -> Self {
        Inbox {
            buf: vec![0; FRAME_BUFFER].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Where the next read goes.
    fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// The first buffered frame, if complete, copied to `out`; the rest of
    /// the buffer moves to its start.
    fn take_frame(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.filled < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if self.filled < 2 + len {
            return None;
        }
        let n = len.min(out.len());
        out[..n].copy_from_slice(&self.buf[2..2 + n]);
        self.buf.copy_within(2 + len..self.filled, 0);
        self.filled -= 2 + len;
        Some(n)
    }
}

/// Feeds `data` to a connection's inbox in reads of at most `chunk` bytes
/// and takes every whole RFC 4571 frame out; the bytes framed. For the
/// fuzz targets.
#[cfg(feature = "fuzzing")]
pub fn frames_for_fuzzing(data: &[u8], chunk: usize) -> usize {
    let mut inbox = Inbox::new();
    let mut out = vec![0u8; FRAME_BUFFER];
    let mut framed = 0;
    for piece in data.chunks(chunk.max(1)) {
        let space = inbox.space();
        let n = piece.len().min(space.len());
        space[..n].copy_from_slice(&piece[..n]);
        inbox.filled += n;
        while let Some(len) = inbox.take_frame(&mut out) {
            framed += 2 + len;
        }
    }
    framed
}

impl Conn {
    /// Reads until one whole frame is buffered, then moves it to `out`.
    fn poll_read_frame(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if let Some(len) = self.input.take_frame(out) {
                return Poll::Ready(Ok(len));
            }
            let mut read = ReadBuf::new(self.input.space());
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                }
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    self.input.filled += n;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn try_flush(&mut self) {
        while self.written < self.output.len() {
            match self.stream.try_write(&self.output[self.written..]) {
                Ok(n) if n > 0 => self.written += n,
                _ => break,
            }
        }
        self.reset_output_if_done();
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.written < self.output.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.output[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        self.reset_output_if_done();
        Ok(())
    }

    fn reset_output_if_done(&mut self) {
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
    }
}

/// Binds one non-blocking listener per announced address.
pub(crate) fn bind_listeners(
    announce: &[std::net::IpAddr],
    port: u16,
) -> Result<Vec<(StdTcpListener, SocketAddr)>, crate::error::SfuError> {
    let bind = |addr: SocketAddr| {
        let listener = StdTcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    super::bind::bind_announced(announce, port, bind, StdTcpListener::local_addr)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An edge on a loopback port with `limits`, and its address.
    fn edge(limits: TcpLimits) -> (TcpMedia, SocketAddr) {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut media = TcpMedia::new(vec![(listener, addr)]);
        media.limits = limits;
        (media, addr)
    }

    /// Lets the edge accept, flush and read for `span`; the frames it read.
    async fn drive(media: &mut TcpMedia, span: Duration) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; FRAME_BUFFER];
        let mut frames = Vec::new();
        let end = tokio::time::Instant::now() + span;
        while let Ok(frame) = tokio::time::timeout_at(end, media.next_frame(&mut out)).await {
            frames.push(out[..frame.len].to_vec());
        }
        frames
    }

    /// Whether the server closed `client` (a read sees the end) within 1 s.
    async fn closed(client: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), client.read(&mut byte)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    fn open(media: &TcpMedia) -> usize {
        media.conns.iter().flatten().count()
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_and_the_rest_still_served() {
        let limits = TcpLimits {
            connections: 2,
            ..TcpLimits::default()
        };
        let (mut media, addr) = edge(limits);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            drive(&mut media, Duration::from_millis(50)).await;
        }
        assert_eq!(open(&media), 2);
        assert!(closed(&mut clients[2]).await, "the third is refused");
        // The first two still carry frames both ways.
        clients[0]
            .write_all(&[0, 3, b'a', b'b', b'c'])
            .await
            .unwrap();
        let frames = drive(&mut media, Duration::from_millis(200)).await;
        assert_eq!(frames, [b"abc".to_vec()]);
        media.send(clients[1].local_addr().unwrap(), b"xy");
        let mut reply = [0u8; 4];
        clients[1].read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, &[0, 2, b'x', b'y']);
    }

    #[tokio::test]
    async fn a_connection_nobody_claims_is_closed_and_a_claimed_one_kept() {
        let (mut media, addr) = edge(TcpLimits::default());
        let mut stray = TcpStream::connect(addr).await.unwrap();
        let mut browser = TcpStream::connect(addr).await.unwrap();
        drive(&mut media, Duration::from_millis(100)).await;
        assert_eq!(open(&media), 2);
        media.claim(browser.local_addr().unwrap());
        media.sweep(Instant::now() + UNCLAIMED_LIMIT / 2);
        assert_eq!(open(&media), 2, "not yet");
        media.sweep(Instant::now() + UNCLAIMED_LIMIT + Duration::from_secs(1));
        assert_eq!(open(&media), 1);
        assert!(closed(&mut stray).await, "the stray is closed");
        assert!(!closed(&mut browser).await, "the browser's stays open");
    }

    #[tokio::test]
    async fn a_browser_that_stops_reading_cannot_grow_the_queue() {
        let limits = TcpLimits {
            queued_bytes: 64 * 1024,
            ..TcpLimits::default()
        };
        let (mut media, addr) = edge(limits);
        let mut client = TcpStream::connect(addr).await.unwrap();
        drive(&mut media, Duration::from_millis(50)).await;
        let peer = client.local_addr().unwrap();
        // 16 MB while the client reads nothing: more than loopback's socket
        // buffers hold, so the edge's own queue fills.
        const SENT: u32 = 16_000;
        let mut frame = [0u8; 1000];
        for n in 0..SENT {
            frame[..4].copy_from_slice(&n.to_be_bytes());
            media.send(peer, &frame);
            let conn = media.conns.iter().flatten().next().unwrap();
            assert!(conn.output.len() - conn.written <= limits.queued_bytes);
        }
        // Now it reads: every frame that arrives is whole and in order, and
        // those that did not fit are missing, not cut.
        let reader = tokio::spawn(async move {
            let mut numbers = Vec::new();
            let mut frame = [0u8; 1002];
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(1), client.read_exact(&mut frame)).await
            {
                assert_eq!(&frame[..2], &1000u16.to_be_bytes());
                numbers.push(u32::from_be_bytes(frame[2..6].try_into().unwrap()));
            }
            numbers
        });
        drive(&mut media, Duration::from_secs(2)).await;
        drop(media);
        let numbers = reader.await.unwrap();
        // What the socket and the queue took, then nothing: a full queue
        // drops what comes after, as a congested router's does.
        let taken = numbers.len() as u32;
        assert!(numbers.iter().copied().eq(0..taken), "whole and in order");
        assert!(taken < SENT, "some were dropped");
        assert!(taken > 64, "more than the queue alone: {taken}");
    }

    fn push(inbox: &mut Inbox, bytes: &[u8]) {
        inbox.space()[..bytes.len()].copy_from_slice(bytes);
        inbox.filled += bytes.len();
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let mut inbox = Inbox::new();
        let mut out = [0u8; 8];
        // Two frames ("abc", "de") and the first byte of a third, in pieces.
        push(&mut inbox, &[0]);
        assert_eq!(inbox.take_frame(&mut out), None, "length half read");
        push(&mut inbox, &[3, b'a', b'b']);
        assert_eq!(inbox.take_frame(&mut out), None, "payload half read");
        push(&mut inbox, &[b'c', 0, 2, b'd', b'e', 0]);
        assert_eq!(inbox.take_frame(&mut out), Some(3));
        assert_eq!(&out[..3], b"abc");
        assert_eq!(inbox.take_frame(&mut out), Some(2));
        assert_eq!(&out[..2], b"de");
        assert_eq!(inbox.take_frame(&mut out), None);
        push(&mut inbox, &[1, b'f']);
        assert_eq!(inbox.take_frame(&mut out), Some(1));
        assert_eq!(out[0], b'f');
        assert_eq!(inbox.filled, 0);
    }

    #[test]
    fn the_largest_frame_fits_and_an_empty_one_is_a_frame() {
        let mut inbox = Inbox::new();
        let mut out = vec![0u8; usize::from(u16::MAX)];
        push(&mut inbox, &[0xff, 0xff]);
        let body = vec![7u8; usize::from(u16::MAX)];
        push(&mut inbox, &body);
        assert!(inbox.space().is_empty(), "buffer exactly full");
        assert_eq!(inbox.take_frame(&mut out), Some(usize::from(u16::MAX)));
        push(&mut inbox, &[0, 0]);
        assert_eq!(inbox.take_frame(&mut out), Some(0));
    }
}
