//! The media UDP sockets of one worker: one per announced address (see
//! [`super::bind`]). Datagrams come in batches (`recvmmsg`, with the
//! kernel's receive offload joining a burst from one sender) and a burst to
//! one subscriber goes out as one send (segmentation offload): the kernel's
//! work per datagram was a third of the server's CPU time.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::task::Poll;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::error::SfuError;

/// A bound socket and the address browsers are told to send to. They differ
/// when the hub sits behind a 1:1 NAT: bound to a local address, announced as
/// the public one.
pub(crate) struct MediaSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    pub announced: SocketAddr,
}

/// Binds one non-blocking socket per announced address, with large buffers.
pub(crate) fn bind_std(
    announce: &[IpAddr],
    port: u16,
) -> Result<Vec<(StdUdpSocket, SocketAddr)>, SfuError> {
    let bind = |addr: SocketAddr| {
        let socket = StdUdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        enlarge_buffers(&socket, addr);
        Ok(socket)
    };
    super::bind::bind_announced(announce, port, bind, StdUdpSocket::local_addr)
}

/// Socket buffer size asked for in each direction. Three publishers' 720p
/// keyframes arriving together are a burst of ~150 KB; the kernel's default
/// (~208 KiB, shared by every participant on the socket) overflows and the
/// lost packets cost a NACK round trip on the very first frame.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Asks for larger buffers; the kernel caps them at `net.core.rmem_max` /
/// `wmem_max`, so a smaller result is logged with the setting to raise.
pub(crate) fn enlarge_buffers(socket: &StdUdpSocket, local: SocketAddr) {
    let socket = socket2::SockRef::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let recv = socket.recv_buffer_size().unwrap_or(0);
    let send = socket.send_buffer_size().unwrap_or(0);
    // Linux reports twice the size it was given (bookkeeping overhead).
    if recv < SOCKET_BUFFER_BYTES || send < SOCKET_BUFFER_BYTES {
        tracing::warn!(
            %local, recv, send, wanted = SOCKET_BUFFER_BYTES,
            "media socket buffers are smaller than wanted; raise net.core.rmem_max and net.core.wmem_max"
        );
    } else {
        tracing::debug!(%local, recv, send, "media socket buffers");
    }
}

impl MediaSocket {
    /// Registers a bound std socket with the current tokio runtime, with
    /// receive offload on where the kernel has it.
    pub fn new(socket: StdUdpSocket, announced: SocketAddr) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        Ok(MediaSocket {
            socket: UdpSocket::from_std(socket)?,
            state,
            announced,
        })
    }

    /// Sends without waiting: a full socket buffer drops the datagrams, as a
    /// congested network would (RTP recovers through NACK/PLI). `contents`
    /// is one datagram, or with `segment` several of that size (the last
    /// may be shorter) for the kernel to cut apart.
    fn send(&self, to: SocketAddr, contents: &[u8], segment: Option<usize>) {
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        if let Err(e) = self
            .state
            .try_send(UdpSockRef::from(&self.socket), &transmit)
        {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!(%to, error = %e, "media send failed");
            }
        }
    }

    /// Reads what is waiting into `buffers`; how many buffers were filled.
    fn try_recv(&self, buffers: &mut RecvBuffers) -> io::Result<usize> {
        let RecvBuffers { data, meta } = buffers;
        let mut slots = data.chunks_mut(RECV_SLOT_BYTES);
        let mut iovs: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
        self.socket.try_io(Interest::READABLE, || {
            self.state
                .recv(UdpSockRef::from(&self.socket), &mut iovs, &mut meta[..])
        })
    }
}

/// Buffers one batch of received datagrams is read into.
const RECV_SLOTS: usize = 8;

/// One buffer's size: the kernel may join up to 64 datagrams from one
/// sender into it (`UDP_GRO`), and truncates what does not fit.
const RECV_SLOT_BYTES: usize = 64 * 1024;

/// Where a worker receives: made once, reused for every batch.
pub(crate) struct RecvBuffers {
    data: Vec<u8>,
    meta: [RecvMeta; RECV_SLOTS],
}

impl RecvBuffers {
    pub(crate) fn new() -> RecvBuffers {
        RecvBuffers {
            data: vec![0; RECV_SLOTS * RECV_SLOT_BYTES],
            meta: [RecvMeta::default(); RECV_SLOTS],
        }
    }

    /// The datagrams of the first `filled` buffers, with their sources.
    pub(crate) fn datagrams(&self, filled: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let slots = self.data.chunks(RECV_SLOT_BYTES);
        self.meta[..filled.min(RECV_SLOTS)]
            .iter()
            .zip(slots)
            .flat_map(|(meta, slot)| {
                let stride = meta.stride.max(1);
                slot[..meta.len.min(slot.len())]
                    .chunks(stride)
                    .map(move |d| (meta.addr, d))
            })
    }
}

/// Waits for datagrams on any of `sockets`; returns which one and how many
/// buffers it filled.
pub(crate) async fn recv_any(
    sockets: &[MediaSocket],
    buffers: &mut RecvBuffers,
    start: usize,
) -> (usize, io::Result<usize>) {
    poll_fn(|cx| {
        let n = sockets.len();
        for k in 0..n {
            let i = (start + k) % n;
            loop {
                match sockets[i].socket.poll_recv_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready((i, Err(e))),
                    Poll::Pending => break,
                }
                match sockets[i].try_recv(buffers) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return Poll::Ready((i, r)),
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// Datagrams already waiting on any of `sockets`, without waiting: which
/// socket and how many buffers it filled; `None` when all are empty.
pub(crate) fn try_recv_any(
    sockets: &[MediaSocket],
    buffers: &mut RecvBuffers,
    start: usize,
) -> Option<(usize, usize)> {
    let n = sockets.len();
    (0..n).map(|k| (start + k) % n).find_map(|i| {
        let filled = sockets[i].try_recv(buffers).ok()?;
        Some((i, filled))
    })
}

/// The most bytes one segmented send carries (a UDP datagram's limit,
/// less room for headers).
const SEND_BATCH_BYTES: usize = 60 * 1024;

/// Datagrams on their way out, held until the worker has polled what it
/// was woken for: consecutive ones for one address, of one size (the last
/// may be shorter), leave in one send. A subscriber's share of a camera
/// frame is such a run. Reused: it allocates once.
pub(crate) struct SendBatch {
    buf: Vec<u8>,
    socket: usize,
    to: Option<SocketAddr>,
    segment: usize,
    segments: usize,
}

impl SendBatch {
    pub(crate) fn new() -> SendBatch {
        SendBatch {
            buf: Vec::with_capacity(SEND_BATCH_BYTES),
            socket: 0,
            to: None,
            segment: 0,
            segments: 0,
        }
    }

    /// Adds a datagram for `to` on socket `socket`, sending what was held
    /// first if it cannot join it.
    pub(crate) fn push(
        &mut self,
        sockets: &[MediaSocket],
        socket: usize,
        to: SocketAddr,
        data: &[u8],
    ) {
        let joins = self.to == Some(to)
            && self.socket == socket
            && data.len() <= self.segment
            // A shorter datagram ends a run: only the last may be shorter.
            && self.buf.len() == self.segment * self.segments
            && self.segments < sockets[socket].state.max_gso_segments()
            && self.buf.len() + data.len() <= SEND_BATCH_BYTES;
        if !joins {
            self.flush(sockets);
            (self.socket, self.to, self.segment) = (socket, Some(to), data.len());
        }
        self.buf.extend_from_slice(data);
        self.segments += 1;
    }

    /// Sends what is held.
    pub(crate) fn flush(&mut self, sockets: &[MediaSocket]) {
        if let (Some(to), Some(socket)) = (self.to.take(), sockets.get(self.socket)) {
            let segment = (self.segments > 1).then_some(self.segment);
            socket.send(to, &self.buf, segment);
        }
        self.buf.clear();
        self.segments = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn media_socket() -> MediaSocket {
        let socket = StdUdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        socket.set_nonblocking(true).expect("non-blocking");
        let local = socket.local_addr().expect("local address");
        MediaSocket::new(socket, local).expect("media socket")
    }

    fn plain_receiver() -> StdUdpSocket {
        let socket = StdUdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        socket
    }

    fn datagram(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    /// A run to one address leaves as one send and arrives as the datagrams
    /// it was made of, sizes and bytes unchanged, in order; a datagram for
    /// another address, or a longer one, starts a new run.
    #[tokio::test]
    async fn a_burst_to_one_address_arrives_as_the_datagrams_it_was() {
        let sockets = [media_socket()];
        let (a, b) = (plain_receiver(), plain_receiver());
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut batch = SendBatch::new();
        let for_a = [
            datagram(1, 1_100),
            datagram(2, 1_100),
            datagram(3, 1_100),
            datagram(4, 700),
            datagram(5, 1_100),
        ];
        for d in &for_a[..3] {
            batch.push(&sockets, 0, to_a, d);
        }
        batch.push(&sockets, 0, to_b, &datagram(9, 300));
        for d in &for_a[3..] {
            batch.push(&sockets, 0, to_a, d);
        }
        batch.flush(&sockets);
        let mut buf = [0u8; 2048];
        for want in &for_a {
            let len = a.recv(&mut buf).expect("a datagram for a");
            assert_eq!(&buf[..len], &want[..], "datagram {} changed", want[0]);
        }
        let len = b.recv(&mut buf).expect("a datagram for b");
        assert_eq!(&buf[..len], &datagram(9, 300)[..]);
        a.set_nonblocking(true).unwrap();
        assert!(a.recv(&mut buf).is_err(), "nothing more for a");
    }

    /// Datagrams the kernel joins on the way in (receive offload) come out
    /// one by one, as they were sent.
    #[tokio::test]
    async fn a_received_burst_comes_out_datagram_by_datagram() {
        let receiver = [media_socket()];
        let sender = [media_socket()];
        let to = receiver[0].announced;
        let sent: Vec<Vec<u8>> = (0..6u8)
            .map(|n| datagram(n, if n == 5 { 400 } else { 1_000 }))
            .collect();
        let mut batch = SendBatch::new();
        for d in &sent {
            batch.push(&sender, 0, to, d);
        }
        batch.flush(&sender);
        let mut buffers = RecvBuffers::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buffers_filled = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while got.len() < sent.len() && tokio::time::Instant::now() < deadline {
            let wait = recv_any(&receiver, &mut buffers, 0);
            let Ok((_, Ok(filled))) = tokio::time::timeout_at(deadline, wait).await else {
                break;
            };
            buffers_filled += filled;
            for (from, d) in buffers.datagrams(filled) {
                assert_eq!(from, sender[0].announced);
                got.push(d.to_vec());
            }
        }
        assert_eq!(got, sent);
        // Where the kernel offloads both ways (Linux does on loopback),
        // the burst arrived joined: the splitting above was exercised.
        let offloads =
            sender[0].state.max_gso_segments() > 1 && receiver[0].state.gro_segments() > 1;
        if offloads {
            assert!(
                buffers_filled < sent.len(),
                "{buffers_filled} buffers for {} datagrams: nothing was joined",
                sent.len()
            );
        }
    }
}
