//! TURN written by hand, apart from the server's own code, so tests also
//! check the wire format: STUN requests, long-term credentials, a client on
//! UDP or TCP that has been challenged once.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use md5::{Digest, Md5};
use ring::hmac;

use super::Server;

pub const ALLOCATE: u16 = 0x003;
pub const CREATE_PERMISSION: u16 = 0x008;
/// A Send indication: method 0x006 with the indication class bit.
pub const SEND_INDICATION: u16 = 0x006 | 0x0010;
pub const DATA: u16 = 0x0013;
pub const MAGIC: u32 = 0x2112_a442;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// A Data indication: method 0x007 with the indication class bit.
pub const DATA_INDICATION: u16 = 0x007 | 0x0010;
/// A Binding success response.
pub const BINDING_SUCCESS: u16 = 0x0101;

/// A STUN request: header, attributes, and MESSAGE-INTEGRITY if keyed.
pub fn request(method: u16, id: u8, attrs: &[(u16, Vec<u8>)], key: Option<&hmac::Key>) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&method.to_be_bytes()); // class bits 0: a request
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&MAGIC.to_be_bytes());
    m.extend_from_slice(&[id; 12]);
    for (kind, value) in attrs {
        m.extend_from_slice(&kind.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
        m.resize(m.len().div_ceil(4) * 4, 0);
    }
    if let Some(key) = key {
        // The length covers the integrity attribute (RFC 8489 §14.5).
        let len = (m.len() - 20 + 24) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        let tag = hmac::sign(key, &m);
        m.extend_from_slice(&MESSAGE_INTEGRITY.to_be_bytes());
        m.extend_from_slice(&20u16.to_be_bytes());
        m.extend_from_slice(tag.as_ref());
    } else {
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
    }
    m
}

/// The attributes of a STUN message.
pub fn attributes(m: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 20;
    while at + 4 <= m.len() {
        let kind = u16::from_be_bytes([m[at], m[at + 1]]);
        let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
        let Some(value) = m.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((kind, value.to_vec()));
        at += 4 + len.div_ceil(4) * 4;
    }
    out
}

pub fn attribute(m: &[u8], kind: u16) -> Option<Vec<u8>> {
    attributes(m)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// The error code of a reply, or `None` for a success.
pub fn error_code(m: &[u8]) -> Option<u16> {
    attribute(m, ERROR_CODE).map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

pub fn xor_address(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only here")
    };
    let mut v = vec![0, 1];
    v.extend_from_slice(&(v4.port() ^ (MAGIC >> 16) as u16).to_be_bytes());
    v.extend_from_slice(&(u32::from(*v4.ip()) ^ MAGIC).to_be_bytes());
    v
}

/// The address in an XOR-MAPPED-, XOR-RELAYED- or XOR-PEER-ADDRESS value
/// (IPv4).
pub fn address_from_xor(v: &[u8]) -> SocketAddr {
    assert_eq!(v[..2], [0, 1], "an IPv4 address");
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC >> 16) as u16;
    let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC;
    SocketAddr::from((std::net::Ipv4Addr::from(ip), port))
}

/// A STUN message's type (method and class).
pub fn message_type(m: &[u8]) -> u16 {
    u16::from_be_bytes([m[0], m[1]])
}

/// An ICE connectivity check (RFC 8445 §7.1) to an agent whose credentials
/// are `remote_ufrag` / `remote_pwd`, from `local_ufrag`, as the controlling
/// agent.
pub fn ice_check(id: u8, remote_ufrag: &str, local_ufrag: &str, remote_pwd: &str) -> Vec<u8> {
    const PRIORITY: u16 = 0x0024;
    const ICE_CONTROLLING: u16 = 0x802a;
    let attrs = [
        (
            USERNAME,
            format!("{remote_ufrag}:{local_ufrag}").into_bytes(),
        ),
        (PRIORITY, vec![0x6e, 0, 0, 0xff]),
        (ICE_CONTROLLING, vec![id; 8]),
    ];
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, remote_pwd.as_bytes());
    request(0x001, id, &attrs, Some(&key))
}

/// A TURN client on UDP that has been challenged once (realm and nonce).
pub struct Client {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    realm: String,
    nonce: String,
}

impl Client {
    pub fn new(server: SocketAddr) -> Client {
        Client::from_ip([127, 0, 0, 1].into(), server)
    }

    /// A client sending from `source` (any loopback address).
    pub fn from_ip(source: IpAddr, server: SocketAddr) -> Client {
        let socket = UdpSocket::bind((source, 0)).expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut c = Client {
            socket,
            server,
            realm: String::new(),
            nonce: String::new(),
        };
        let challenge = c.exchange(&request(ALLOCATE, 1, &[], None));
        assert_eq!(error_code(&challenge), Some(401), "an unsigned allocate");
        let text = |k| String::from_utf8(attribute(&challenge, k).expect("attribute")).unwrap();
        c.realm = text(REALM);
        c.nonce = text(NONCE);
        c
    }

    pub fn exchange(&self, msg: &[u8]) -> Vec<u8> {
        self.socket.send_to(msg, self.server).expect("send");
        let mut buf = [0u8; 1500];
        let (n, _) = self.socket.recv_from(&mut buf).expect("a reply");
        buf[..n].to_vec()
    }

    /// Sends `method` with `attrs`, signed as `username` / `password`.
    pub fn signed(
        &self,
        method: u16,
        id: u8,
        attrs: Vec<(u16, Vec<u8>)>,
        user: &str,
        pass: &str,
    ) -> Vec<u8> {
        let digest = Md5::digest(format!("{user}:{}:{pass}", self.realm).as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &digest);
        let mut all = attrs;
        all.push((USERNAME, user.as_bytes().to_vec()));
        all.push((REALM, self.realm.as_bytes().to_vec()));
        all.push((NONCE, self.nonce.as_bytes().to_vec()));
        self.exchange(&request(method, id, &all, Some(&key)))
    }

    pub fn allocate(&self, id: u8, user: &str, pass: &str) -> Vec<u8> {
        let udp = vec![(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])];
        self.signed(ALLOCATE, id, udp, user, pass)
    }
}

/// Allocates over TURN/TCP from `source` with `user` / `pass`: the
/// connection (it holds the allocation) and the reply's error code (`None`:
/// granted).
pub fn allocate_over_tcp(
    source: IpAddr,
    server: SocketAddr,
    user: &str,
    pass: &str,
) -> (TcpStream, Option<u16>) {
    let mut stream = connect_from(source, server);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let challenge = exchange_stream(&mut stream, &request(ALLOCATE, 1, &[], None));
    assert_eq!(error_code(&challenge), Some(401), "an unsigned allocate");
    let text = |k| String::from_utf8(attribute(&challenge, k).expect("attribute")).unwrap();
    let (realm, nonce) = (text(REALM), text(NONCE));
    let digest = Md5::digest(format!("{user}:{realm}:{pass}").as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &digest);
    let attrs = vec![
        (REQUESTED_TRANSPORT, vec![17, 0, 0, 0]),
        (USERNAME, user.as_bytes().to_vec()),
        (REALM, realm.into_bytes()),
        (NONCE, nonce.into_bytes()),
    ];
    let reply = exchange_stream(&mut stream, &request(ALLOCATE, 2, &attrs, Some(&key)));
    (stream, error_code(&reply))
}

/// A TCP connection to `server` from `source` (any loopback address).
pub fn connect_from(source: IpAddr, server: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(server), Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .expect("connect");
    socket.into()
}

/// Writes one STUN message and reads one back (framed by its length).
fn exchange_stream(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).expect("send");
    let mut head = [0u8; 20];
    stream.read_exact(&mut head).expect("a reply header");
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut reply = head.to_vec();
    reply.resize(20 + len, 0);
    stream.read_exact(&mut reply[20..]).expect("a reply body");
    reply
}

/// The server's TURN over TCP address.
pub fn turn_tcp(server: &Server) -> SocketAddr {
    turn_addr(server, "turn:", "transport=tcp")
}

/// The server's TURN over UDP address, from the URLs it offers browsers.
pub fn turn_udp(server: &Server) -> SocketAddr {
    turn_addr(server, "turn:", "transport=udp")
}

/// The server's TURN over TLS address.
pub fn turn_tls(server: &Server) -> SocketAddr {
    turn_addr(server, "turns:", "transport=tcp")
}

fn turn_addr(server: &Server, scheme: &str, transport: &str) -> SocketAddr {
    let url = server
        .turn_urls
        .iter()
        .find(|u| u.starts_with(scheme) && u.ends_with(transport))
        .unwrap_or_else(|| panic!("a {scheme} {transport} URL"));
    let host_port = url[scheme.len()..].split('?').next().expect("host:port");
    host_port.parse().expect("an address")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
