//! The media UDP sockets of one worker: one per announced address (see
//! [`super::bind`]).

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::task::Poll;

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::error::SfuError;

/// A bound socket and the address browsers are told to send to. They differ
/// when the hub sits behind a 1:1 NAT: bound to a local address, announced as
/// the public one.
pub(crate) struct MediaSocket {
    socket: UdpSocket,
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
fn enlarge_buffers(socket: &StdUdpSocket, local: SocketAddr) {
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
    /// Registers a bound std socket with the current tokio runtime.
    pub fn new(socket: StdUdpSocket, announced: SocketAddr) -> io::Result<Self> {
        Ok(MediaSocket {
            socket: UdpSocket::from_std(socket)?,
            announced,
        })
    }

    /// Sends without waiting: a full socket buffer drops the datagram, as a
    /// congested network would (RTP recovers through NACK/PLI).
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        if let Err(e) = self.socket.try_send_to(data, to) {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!(%to, error = %e, "media send failed");
            }
        }
    }
}

/// Waits for a datagram on any of `sockets`; returns which one, its length and source.
pub(crate) async fn recv_any(
    sockets: &[MediaSocket],
    buf: &mut [u8],
    start: usize,
) -> (usize, io::Result<(usize, SocketAddr)>) {
    poll_fn(|cx| {
        let n = sockets.len();
        for k in 0..n {
            let i = (start + k) % n;
            let mut read = ReadBuf::new(buf);
            if let Poll::Ready(r) = sockets[i].socket.poll_recv_from(cx, &mut read) {
                let len = read.filled().len();
                return Poll::Ready((i, r.map(|from| (len, from))));
            }
        }
        Poll::Pending
    })
    .await
}

/// A datagram already waiting on any of `sockets`, without waiting: which
/// socket, its length and source; `None` when all are empty.
pub(crate) fn try_recv_any(
    sockets: &[MediaSocket],
    buf: &mut [u8],
    start: usize,
) -> Option<(usize, usize, SocketAddr)> {
    let n = sockets.len();
    (0..n).map(|k| (start + k) % n).find_map(|i| {
        let (len, from) = sockets[i].socket.try_recv_from(buf).ok()?;
        Some((i, len, from))
    })
}
