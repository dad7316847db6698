//! The part of STUN (RFC 8489) that a TURN server needs: reading a message
//! and its attributes in place, checking MESSAGE-INTEGRITY with a long-term
//! key, and writing replies. Reading never allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ring::hmac;

/// The magic cookie in every STUN message since RFC 5389.
pub const MAGIC: u32 = 0x2112_a442;
const HEADER: usize = 20;

/// Methods used by TURN (RFC 8656 §17).
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types used here.
pub mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const CHANNEL_NUMBER: u16 = 0x000c;
    pub const LIFETIME: u16 = 0x000d;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Request, indication, success or error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

fn message_type(method: u16, class: Class) -> u16 {
    (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | class.bits()
}

/// A STUN message borrowed from a packet.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub method: u16,
    pub class: Class,
    pub transaction: [u8; 12],
    raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// Reads a whole STUN message; `None` if `raw` is not exactly one.
    pub fn parse(raw: &'a [u8]) -> Option<Message<'a>> {
        if raw.len() < HEADER || raw[0] & 0xc0 != 0 {
            return None;
        }
        let kind = u16::from_be_bytes([raw[0], raw[1]]);
        let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        let cookie = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        if cookie != MAGIC || len % 4 != 0 || HEADER + len != raw.len() {
            return None;
        }
        let class = match kind & 0x110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        };
        let method = (kind & 0x000f) | ((kind & 0x00e0) >> 1) | ((kind & 0x3e00) >> 2);
        let mut transaction = [0; 12];
        transaction.copy_from_slice(&raw[8..20]);
        let m = Message {
            method,
            class,
            transaction,
            raw,
        };
        // Every attribute must fit: a truncated one is a malformed message.
        m.attributes().all(|a| a.is_some()).then_some(m)
    }

    /// Each attribute as (offset of its header, type, value); `None` marks a
    /// malformed attribute.
    fn attributes(&self) -> impl Iterator<Item = Option<(usize, u16, &'a [u8])>> + 'a {
        let raw = self.raw;
        let mut at = HEADER;
        std::iter::from_fn(move || {
            if at >= raw.len() {
                return None;
            }
            if at + 4 > raw.len() {
                at = raw.len();
                return Some(None);
            }
            let kind = u16::from_be_bytes([raw[at], raw[at + 1]]);
            let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
            let start = at + 4;
            if start + len > raw.len() {
                at = raw.len();
                return Some(None);
            }
            let item = (at, kind, &raw[start..start + len]);
            at = start + len.div_ceil(4) * 4;
            Some(Some(item))
        })
    }

    /// The first attribute of `kind` before MESSAGE-INTEGRITY (anything after
    /// it is not covered, so it is ignored, as RFC 8489 §14.5 asks).
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        for (_, k, value) in self.attributes().map_while(|a| a) {
            if k == kind {
                return Some(value);
            }
            if k == attr::MESSAGE_INTEGRITY {
                return None;
            }
        }
        None
    }

    /// A text attribute (USERNAME, REALM, NONCE) as UTF-8.
    pub fn text(&self, kind: u16) -> Option<&'a str> {
        self.get(kind).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// An XOR-…-ADDRESS attribute.
    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        decode_xor_address(self.get(kind)?, &self.transaction)
    }

    /// A 32-bit attribute (LIFETIME).
    pub fn u32(&self, kind: u16) -> Option<u32> {
        let v = self.get(kind)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    /// Whether MESSAGE-INTEGRITY is present and matches `key` (HMAC-SHA1
    /// over the message up to the attribute, with the length field as if
    /// the message ended right after it).
    pub fn integrity_matches(&self, key: &hmac::Key) -> bool {
        let Some((at, _, value)) = self
            .attributes()
            .map_while(|a| a)
            .find(|(_, k, _)| *k == attr::MESSAGE_INTEGRITY)
        else {
            return false;
        };
        if value.len() != 20 {
            return false;
        }
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&self.raw[..HEADER]);
        let covered = (at + 4 + 20 - HEADER) as u16;
        header[2..4].copy_from_slice(&covered.to_be_bytes());
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(&header);
        ctx.update(&self.raw[HEADER..at]);
        let tag = ctx.sign();
        // Compared without stopping at the first difference.
        tag.as_ref()
            .iter()
            .zip(value)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn decode_xor_address(v: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC >> 16) as u16;
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let x = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC;
            IpAddr::V4(Ipv4Addr::from(x))
        }
        (0x02, 20) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC.to_be_bytes());
            mask[4..].copy_from_slice(transaction);
            let mut b = [0u8; 16];
            for i in 0..16 {
                b[i] = v[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The long-term credential key (RFC 8489 §9.2.2): MD5 of
/// `username:realm:password`, as HMAC-SHA1 key.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> hmac::Key {
    use md5::{Digest, Md5};
    let digest = Md5::digest(format!("{username}:{realm}:{password}").as_bytes());
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &digest)
}

/// Writes one STUN message: attributes in order, then optionally
/// MESSAGE-INTEGRITY and FINGERPRINT.
pub struct Writer {
    buf: Vec<u8>,
    transaction: [u8; 12],
}

impl Writer {
    pub fn new(method: u16, class: Class, transaction: [u8; 12]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&transaction);
        Writer { buf, transaction }
    }

    pub fn add(mut self, kind: u16, value: &[u8]) -> Self {
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        let pad = value.len().div_ceil(4) * 4 - value.len();
        self.buf.extend_from_slice(&[0; 3][..pad]);
        self
    }

    pub fn u32(self, kind: u16, value: u32) -> Self {
        self.add(kind, &value.to_be_bytes())
    }

    pub fn error(self, code: u16, reason: &str) -> Self {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        self.add(attr::ERROR_CODE, &v)
    }

    pub fn xor_address(self, kind: u16, addr: SocketAddr) -> Self {
        let port = addr.port() ^ (MAGIC >> 16) as u16;
        let mut v = vec![0, 0];
        v.extend_from_slice(&port.to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => {
                v[1] = 0x01;
                v.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v[1] = 0x02;
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&MAGIC.to_be_bytes());
                mask[4..].copy_from_slice(&self.transaction);
                v.extend(ip.octets().iter().zip(mask).map(|(a, m)| a ^ m));
            }
        }
        self.add(kind, &v)
    }

    fn set_length(&mut self, extra: usize) {
        let len = (self.buf.len() - HEADER + extra) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Adds MESSAGE-INTEGRITY with `key`.
    pub fn integrity(mut self, key: &hmac::Key) -> Self {
        self.set_length(24);
        let tag = hmac::sign(key, &self.buf);
        self.add(attr::MESSAGE_INTEGRITY, tag.as_ref())
    }

    /// Adds FINGERPRINT and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.set_length(8);
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&self.buf) ^ 0x5354_554e;
        let mut out = self.add(attr::FINGERPRINT, &crc.to_be_bytes());
        out.set_length(0);
        out.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_message_reads_back_with_its_integrity() {
        let key = long_term_key("1700000000:p3", "carecall", "secret");
        let tx = *b"0123456789ab";
        let peer: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:5000".parse().unwrap();
        let bytes = Writer::new(method::CREATE_PERMISSION, Class::Request, tx)
            .add(attr::USERNAME, b"1700000000:p3")
            .xor_address(attr::XOR_PEER_ADDRESS, peer)
            .xor_address(attr::XOR_RELAYED_ADDRESS, v6)
            .u32(attr::LIFETIME, 600)
            .integrity(&key)
            .finish();
        let m = Message::parse(&bytes).expect("parses");
        assert_eq!(m.method, method::CREATE_PERMISSION);
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.transaction, tx);
        assert_eq!(m.text(attr::USERNAME), Some("1700000000:p3"));
        assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(m.xor_address(attr::XOR_RELAYED_ADDRESS), Some(v6));
        assert_eq!(m.u32(attr::LIFETIME), Some(600));
        assert!(m.integrity_matches(&key));
        let other = long_term_key("1700000000:p3", "carecall", "wrong");
        assert!(!m.integrity_matches(&other));
        // A flipped bit anywhere before the integrity breaks it.
        let mut tampered = bytes.clone();
        tampered[30] ^= 1;
        let t = Message::parse(&tampered).expect("still well-formed");
        assert!(!t.integrity_matches(&key));
    }

    #[test]
    fn the_method_and_class_bits_follow_rfc_8489() {
        // Allocate success response is 0x0103; ChannelBind error 0x0119.
        assert_eq!(message_type(method::ALLOCATE, Class::Success), 0x0103);
        assert_eq!(message_type(method::CHANNEL_BIND, Class::Error), 0x0119);
        assert_eq!(message_type(method::DATA, Class::Indication), 0x0017);
        // A Binding request from RFC 5769's sample vector header.
        let sample = Writer::new(method::BINDING, Class::Request, [0; 12]).finish();
        assert_eq!(&sample[..2], &[0x00, 0x01]);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let good = Writer::new(method::ALLOCATE, Class::Request, [1; 12])
            .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .finish();
        assert!(Message::parse(&good).is_some());
        assert!(Message::parse(&good[..good.len() - 4]).is_none(), "short");
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 0xff;
        assert!(Message::parse(&bad_cookie).is_none());
        let mut overlong_attr = good.clone();
        overlong_attr[22..24].copy_from_slice(&200u16.to_be_bytes());
        assert!(Message::parse(&overlong_attr).is_none());
        assert!(
            Message::parse(&[0x40, 0, 0, 4, 1, 2, 3, 4]).is_none(),
            "ChannelData"
        );
        assert!(Message::parse(&[]).is_none());
    }
}
