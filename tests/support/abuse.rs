//! Bad input, sent the way a broken client or an attacker would: forged and
//! expired links, malformed and oversized signalling, garbage datagrams.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Sends `frames` on a fresh signalling socket and returns the error message
/// the server answered with and the close code it closed with.
pub async fn ws_refusal(ws_url: &str, frames: Vec<Message>) -> (Value, Option<u16>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("ws connect");
    for f in frames {
        if ws.send(f).await.is_err() {
            break;
        }
    }
    let mut error = Value::Null;
    let mut close = None;
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    if v["type"] == "error" {
                        error = v;
                    }
                }
                Ok(Message::Close(Some(frame))) => {
                    close = Some(u16::from(frame.code));
                    break;
                }
                Ok(Message::Close(None)) => {
                    close = Some(u16::from(CloseCode::Status));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("server closes a refused socket within 10 s");
    (error, close)
}

/// A small deterministic PRNG (xorshift64*), so garbage is reproducible.
pub struct Garbage(u64);

impl Garbage {
    pub fn new(seed: u64) -> Self {
        Garbage(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A datagram of random bytes whose first byte imitates STUN, DTLS, RTP or
    /// RTCP, so it reaches each protocol's parser rather than being dropped early.
    pub fn datagram(&mut self) -> Vec<u8> {
        let len = 1 + (self.next() % 1400) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        match self.next() % 5 {
            0 => d[0] = 0x00, // STUN binding request
            1 => d[0] = 22,   // DTLS handshake
            2 => d[0] = 0x80, // RTP
            3 => {
                d[0] = 0x81;
                if len > 1 {
                    d[1] = 200 + (self.next() % 7) as u8; // RTCP SR..XR
                }
            }
            _ => {}
        }
        if d.len() >= 8 && d[0] == 0x00 {
            d[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes()); // STUN magic cookie
        }
        d
    }
}

/// Fires `count` garbage datagrams at each media address, from loopback.
pub async fn spray_media_port(addrs: &[SocketAddr], count: usize) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut g = Garbage::new(0x5eed);
    for addr in addrs.iter().filter(|a| a.ip().is_loopback()) {
        for i in 0..count {
            let _ = sock.send_to(&g.datagram(), addr).await;
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Garbage at each ICE-TCP listener on loopback: `count` well-framed random
/// packets per connection, then a frame cut off mid-way, then bytes that are
/// not framing at all, on fresh connections each time.
pub async fn spray_tcp_media_port(addrs: &[SocketAddr], count: usize) {
    use tokio::io::AsyncWriteExt;
    let mut g = Garbage::new(0x7c9);
    for addr in addrs.iter().filter(|a| a.ip().is_loopback()) {
        let mut framed = tokio::net::TcpStream::connect(addr).await.expect("connect");
        for _ in 0..count {
            let d = g.datagram();
            let mut frame = (d.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&d);
            if framed.write_all(&frame).await.is_err() {
                break;
            }
        }
        // Announces 65535 bytes, sends 10, hangs up.
        let mut cut = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = cut
            .write_all(&[0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            .await;
        drop(cut);
        let mut raw = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let noise: Vec<u8> = (0..200_000).map(|_| g.next() as u8).collect();
        let _ = raw.write_all(&noise).await;
    }
}
