//! The QUIC link between two nodes, on loopback: both ends authenticated by
//! the hub's CA, control messages in order, packets as datagrams, and a
//! stranger's certificate refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carecall_sfu::cascade::link::{LinkError, NodeIdentity, RelayEndpoint};
use carecall_sfu::cascade::wire::{decode_packet, encode_packet, LinkMessage};
use carecall_sfu::cascade::Control;
use carecall_sfu::{ParticipantId, RoomId};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA and a way to make node identities under it.
struct Hub {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Hub {
    fn new() -> Hub {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Hub { ca }
    }

    fn node(&self, name: &str) -> NodeIdentity {
        let key = KeyPair::generate().expect("node key");
        let params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.signed_by(&key, &self.ca).expect("node certificate");
        NodeIdentity::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            self.ca.pem().as_bytes(),
        )
        .expect("identity reads")
    }
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// A packet of `len` payload bytes made the way a node makes one: through
/// the wire format.
fn packet(len: usize) -> carecall_sfu::cascade::RelayedPacket {
    // Version, channel, origin 5, layer f, flags (marker), pt 96, seq 9,
    // RTP time 3000, media time 3000, mid "1", then the payload.
    let mut bytes = vec![1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 2, 1, 96];
    bytes.extend_from_slice(&9u64.to_be_bytes());
    bytes.extend_from_slice(&3000u32.to_be_bytes());
    bytes.extend_from_slice(&3000u64.to_be_bytes());
    bytes.extend_from_slice(&[1, b'1']);
    bytes.extend((0..len).map(|i| i as u8));
    decode_packet(&bytes, Instant::now()).expect("a packet").1
}

#[tokio::test]
async fn two_nodes_of_one_hub_exchange_messages_in_order_and_packets_as_datagrams() {
    let hub = Hub::new();
    let a = RelayEndpoint::bind(loopback(), &hub.node("node-a")).expect("A binds");
    let b = Arc::new(RelayEndpoint::bind(loopback(), &hub.node("node-b")).expect("B binds"));
    let b_addr = b.local_addr().expect("B's address");
    let accepting = {
        let b = b.clone();
        tokio::spawn(async move { b.accept().await.expect("B open").expect("A is let in") })
    };
    let mut at_a = a.connect(b_addr, "node-b").await.expect("A reaches B");
    let mut at_b = accepting.await.expect("accept task");

    let room = RoomId("ward-7-bed-3".into());
    let sent = [
        LinkMessage::Open { channel: 3, room },
        LinkMessage::Room {
            channel: 3,
            control: Control::Left {
                origin: ParticipantId(5),
            },
        },
        LinkMessage::Close { channel: 3 },
    ];
    for m in &sent {
        at_a.send_message(m).await.expect("A sends");
    }
    for m in &sent {
        assert_eq!(&at_b.recv_message().await.expect("B reads"), m);
    }
    // And back the other way on the same stream.
    at_b.send_message(&sent[2]).await.expect("B sends");
    assert_eq!(at_a.recv_message().await.expect("A reads"), sent[2]);

    // A full-size browser packet goes as one datagram.
    let big = packet(1200);
    at_a.send_packet(3, &big).expect("A sends a datagram");
    let (channel, got) = tokio::time::timeout(Duration::from_secs(5), at_b.recv_packet())
        .await
        .expect("the datagram arrives")
        .expect("B reads it");
    assert_eq!(channel, 3);
    assert_eq!(
        (got.origin(), got.seq(), got.payload_len()),
        (ParticipantId(5), 9, 1200)
    );
    let (mut a_bytes, mut b_bytes) = (Vec::new(), Vec::new());
    encode_packet(3, &big, &mut a_bytes);
    encode_packet(3, &got, &mut b_bytes);
    assert_eq!(a_bytes, b_bytes, "the packet changed on the way");
    assert!(at_a.rtt() < Duration::from_millis(100));
}

#[tokio::test]
async fn a_node_whose_certificate_another_ca_signed_is_refused_both_ways() {
    let hub = Hub::new();
    let stranger = Hub::new();
    let b = Arc::new(RelayEndpoint::bind(loopback(), &hub.node("node-b")).expect("B binds"));
    let b_addr = b.local_addr().expect("B's address");
    let accepting = {
        let b = b.clone();
        tokio::spawn(async move { b.accept().await.expect("B open") })
    };
    // A stranger's certificate: B refuses it.
    let outsider = RelayEndpoint::bind(loopback(), &stranger.node("node-b")).expect("binds");
    let refused = outsider.connect(b_addr, "node-b").await;
    assert!(refused.is_err(), "a stranger was let in");
    let at_b = accepting.await.expect("accept task");
    assert!(at_b.is_err(), "B took a stranger's link");

    // A hub node reaching a stranger's endpoint refuses it in turn.
    let outsider = Arc::new(outsider);
    let outsider_addr = outsider.local_addr().expect("address");
    tokio::spawn({
        let outsider = outsider.clone();
        async move { outsider.accept().await }
    });
    let a = RelayEndpoint::bind(loopback(), &hub.node("node-a")).expect("A binds");
    match a.connect(outsider_addr, "node-b").await {
        Err(LinkError::Connection(_) | LinkError::Timeout) => {}
        other => panic!("a hub node trusted a stranger: {other:?}"),
    }
}

#[test]
fn an_unreadable_identity_is_a_clear_error() {
    let e = NodeIdentity::from_pem(b"not a certificate", b"", b"").expect_err("refused");
    assert!(e.to_string().contains("relay identity"), "{e}");
}
