//! The embedded TURN server, over a real socket, refuses what it must: no
//! allocation without valid, unexpired credentials made with the hub's
//! secret, and no permission to relay anywhere but the SFU. STUN is written
//! by hand here, apart from the server's own code, so the test also checks
//! the wire format.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use carecall_sfu::turn::TurnSecret;
use md5::{Digest, Md5};
use ring::hmac;
use support::Server;

const ALLOCATE: u16 = 0x003;
const CREATE_PERMISSION: u16 = 0x008;
/// A Send indication: method 0x006 with the indication class bit.
const SEND_INDICATION: u16 = 0x006 | 0x0010;
const DATA: u16 = 0x0013;
const MAGIC: u32 = 0x2112_a442;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const ERROR_CODE: u16 = 0x0009;
const XOR_PEER_ADDRESS: u16 = 0x0012;
const REALM: u16 = 0x0014;
const NONCE: u16 = 0x0015;
const REQUESTED_TRANSPORT: u16 = 0x0019;

/// A STUN request: header, attributes, and MESSAGE-INTEGRITY if keyed.
fn request(method: u16, id: u8, attrs: &[(u16, Vec<u8>)], key: Option<&hmac::Key>) -> Vec<u8> {
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
fn attributes(m: &[u8]) -> Vec<(u16, Vec<u8>)> {
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

fn attribute(m: &[u8], kind: u16) -> Option<Vec<u8>> {
    attributes(m)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// The error code of a reply, or `None` for a success.
fn error_code(m: &[u8]) -> Option<u16> {
    attribute(m, ERROR_CODE).map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn xor_address(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only here")
    };
    let mut v = vec![0, 1];
    v.extend_from_slice(&(v4.port() ^ (MAGIC >> 16) as u16).to_be_bytes());
    v.extend_from_slice(&(u32::from(*v4.ip()) ^ MAGIC).to_be_bytes());
    v
}

/// A TURN client on UDP that has been challenged once (realm and nonce).
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    realm: String,
    nonce: String,
}

impl Client {
    fn new(server: SocketAddr) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
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

    fn exchange(&self, msg: &[u8]) -> Vec<u8> {
        self.socket.send_to(msg, self.server).expect("send");
        let mut buf = [0u8; 1500];
        let (n, _) = self.socket.recv_from(&mut buf).expect("a reply");
        buf[..n].to_vec()
    }

    /// Sends `method` with `attrs`, signed as `username` / `password`.
    fn signed(
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

    fn allocate(&self, id: u8, user: &str, pass: &str) -> Vec<u8> {
        let udp = vec![(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])];
        self.signed(ALLOCATE, id, udp, user, pass)
    }
}

/// The server's TURN over UDP address, from the URLs it offers browsers.
fn turn_udp(server: &Server) -> SocketAddr {
    let url = server
        .turn_urls
        .iter()
        .find(|u| u.starts_with("turn:") && u.ends_with("transport=udp"))
        .expect("a TURN/UDP URL");
    let host_port = url["turn:".len()..].split('?').next().expect("host:port");
    host_port.parse().expect("an address")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn turn_refuses_bad_credentials_and_relays_only_to_the_sfu() {
    let server = Server::start();
    let hex = std::fs::read_to_string(server.data_dir.path().join("turn-secret"))
        .expect("the generated TURN secret");
    let secret = TurnSecret::new(hex.trim().as_bytes());
    let client = Client::new(turn_udp(&server));

    // Forged: a password made with another secret.
    let forged = TurnSecret::new(b"not the hub's secret, but long enough").issue("p1", now() + 600);
    let r = client.allocate(2, &forged.username, &forged.password);
    assert_eq!(error_code(&r), Some(401), "forged credentials");
    // Tampered: a valid password with a later expiry in the username.
    let good = secret.issue("p1", now() + 600);
    let later = format!("{}:p1", now() + 86_400);
    let r = client.allocate(3, &later, &good.password);
    assert_eq!(error_code(&r), Some(401), "tampered username");
    // Expired: made with the right secret, but a minute ago.
    let old = secret.issue("p1", now() - 60);
    let r = client.allocate(4, &old.username, &old.password);
    assert_eq!(error_code(&r), Some(401), "expired credentials");

    // Valid ones get a relay.
    let r = client.allocate(5, &good.username, &good.password);
    assert_eq!(error_code(&r), None, "valid credentials were refused");

    // A permission for anything but the SFU's own address is refused.
    let sfu = server.media_addrs[0];
    let elsewhere: SocketAddr = "127.0.0.2:9".parse().unwrap();
    let permit = |id, peer| {
        let attrs = vec![(XOR_PEER_ADDRESS, xor_address(peer))];
        client.signed(CREATE_PERMISSION, id, attrs, &good.username, &good.password)
    };
    assert_eq!(
        error_code(&permit(6, elsewhere)),
        Some(403),
        "relay to {elsewhere}"
    );
    assert_eq!(
        error_code(&permit(7, sfu)),
        None,
        "relay to the SFU at {sfu}"
    );
    // The SFU's IP is permitted, but only its media ports are relayed to:
    // data sent through the relay to another port there never arrives.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let to_sink = vec![
        (
            XOR_PEER_ADDRESS,
            xor_address(sink.local_addr().expect("addr")),
        ),
        (DATA, b"relay me".to_vec()),
    ];
    let send = request(SEND_INDICATION, 8, &to_sink, None);
    for _ in 0..3 {
        client.socket.send_to(&send, client.server).expect("send");
    }
    let mut buf = [0u8; 1500];
    let got = sink.recv_from(&mut buf);
    assert!(
        got.is_err(),
        "relayed to a port that is not the SFU's: {got:?}"
    );
}
