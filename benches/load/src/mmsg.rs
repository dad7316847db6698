//! Many datagrams per system call for the light peers (`sendmmsg`,
//! `recvmmsg`). One light group sends and receives 100,000 datagrams a
//! second on its one core at 100 rooms of 3, and a call per datagram was
//! about a quarter of its time. No segmentation offload either way: a
//! server's batched sends are cut apart by the kernel for these sockets as
//! for a browser's, so the server pays what it would pay with browsers.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams handed to the kernel in one call.
const PER_CALL: usize = 32;

/// The largest datagram a light peer takes (the SFU sends at most ~1,200).
const DATAGRAM: usize = 2048;

/// A session's outgoing datagrams, sent together by [`SendBatch::flush`].
#[derive(Default)]
pub(crate) struct SendBatch {
    bytes: Vec<u8>,
    /// Where each datagram ends in `bytes`, and where it goes.
    sends: Vec<(usize, SockAddr)>,
}

impl SendBatch {
    pub(crate) fn push(&mut self, to: SocketAddr, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.sends.push((self.bytes.len(), SockAddr::from(to)));
    }

    /// Sends everything pushed, `PER_CALL` to a call. What the socket
    /// refuses is dropped, as a lost packet (as a single send would be).
    pub(crate) fn flush(&mut self, socket: &UdpSocket) {
        let mut first = 0;
        while first < self.sends.len() {
            let last = self.sends.len().min(first + PER_CALL);
            match socket.try_io(Interest::WRITABLE, || self.send(socket, first..last)) {
                Ok(n) => first += n.max(1),
                // The socket's buffer is full: the rest is lost.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The first datagram was refused (a port that went away).
                Err(_) => first += 1,
            }
        }
        self.bytes.clear();
        self.sends.clear();
    }

    fn send(&self, socket: &UdpSocket, range: std::ops::Range<usize>) -> io::Result<usize> {
        let mut iovs: [libc::iovec; PER_CALL] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; PER_CALL] = unsafe { zeroed() };
        let count = range.len();
        for (k, i) in range.enumerate() {
            let start = if i == 0 { 0 } else { self.sends[i - 1].0 };
            let (end, to) = &self.sends[i];
            let data = &self.bytes[start..*end];
            let (bytes, len) = (data.as_ptr() as *mut _, data.len());
            point(
                &mut msgs[k],
                &mut iovs[k],
                (bytes, len),
                (to.as_ptr() as *mut _, to.len()),
            );
        }
        // SAFETY: every header points at an iovec and an address that
        // live until the call returns; the kernel only reads them.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                count as u32,
                libc::MSG_DONTWAIT,
            )
        };
        match sent {
            n if n >= 0 => Ok(n as usize),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

/// Buffers for up to `PER_CALL` incoming datagrams, reused by every session
/// of a group.
pub(crate) struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM]>,
    from: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    filled: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0; DATAGRAM]; PER_CALL],
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            from: vec![unsafe { zeroed() }; PER_CALL],
            lens: vec![0; PER_CALL],
            filled: 0,
        }
    }
}

impl RecvBatch {
    /// Takes what `socket` has waiting, up to `PER_CALL` datagrams: how
    /// many (0 when nothing waits or the socket failed).
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> usize {
        self.filled = socket
            .try_io(Interest::READABLE, || self.recv_now(socket))
            .unwrap_or(0);
        self.filled
    }

    fn recv_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovs: [libc::iovec; PER_CALL] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; PER_CALL] = unsafe { zeroed() };
        let name_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for k in 0..PER_CALL {
            let bytes = (self.bufs[k].as_mut_ptr() as *mut _, DATAGRAM);
            let name = (&mut self.from[k] as *mut _ as *mut _, name_len);
            point(&mut msgs[k], &mut iovs[k], bytes, name);
        }
        // SAFETY: every header points at a buffer and an address slot
        // owned by `self` and sized as the header says.
        let got = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                PER_CALL as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for (k, m) in msgs.iter().take(got as usize).enumerate() {
            self.lens[k] = m.msg_len as usize;
        }
        Ok(got as usize)
    }

    /// The datagrams of the last [`RecvBatch::recv`]: who sent each, and
    /// its bytes (one from an unknown address family is left out).
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.filled)
            .filter_map(|i| Some((address(&self.from[i])?, &self.bufs[i][..self.lens[i]])))
    }
}

/// Points `msg` at one buffer (through `iov`) and one address, each a
/// pointer and a length: the shape both `sendmmsg` and `recvmmsg` take.
fn point(
    msg: &mut libc::mmsghdr,
    iov: &mut libc::iovec,
    (bytes, len): (*mut libc::c_void, usize),
    (name, name_len): (*mut libc::c_void, libc::socklen_t),
) {
    *iov = libc::iovec {
        iov_base: bytes,
        iov_len: len,
    };
    let hdr = &mut msg.msg_hdr;
    hdr.msg_name = name;
    hdr.msg_namelen = name_len;
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
}

/// The address a `recvmmsg` filled in.
fn address(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
        }
        _ => None,
    }
}
