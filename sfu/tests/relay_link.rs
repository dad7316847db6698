//! The QUIC link between two nodes, on loopback: both ends authenticated by
//! the hub's CA, control messages in order, packets as datagrams, and a
//! stranger's certificate refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carecall_sfu::cascade::link::{
    DatagramQueued, LinkError, NodeIdentity, RelayEndpoint, RelayLink,
};
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
        let (cert, key, ca) = self.pems(name);
        NodeIdentity::from_pem(&cert, &key, &ca).expect("identity reads")
    }

    /// A node's certificate, key and the hub's CA, as PEM.
    fn pems(&self, name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate().expect("node key");
        let params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.signed_by(&key, &self.ca).expect("node certificate");
        (
            cert.pem().into_bytes(),
            key.serialize_pem().into_bytes(),
            self.ca.pem().into_bytes(),
        )
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

/// `from` links to `to` (whose certificate names `name`): each end's link.
async fn link(from: &RelayEndpoint, to: &RelayEndpoint, name: &str) -> (RelayLink, RelayLink) {
    let to_addr = to.local_addr().expect("an address");
    let (at_from, at_to) = tokio::join!(from.connect(to_addr, name), to.accept());
    let at_from = at_from.expect("linked");
    (at_from, at_to.expect("open").expect("let in"))
}

#[tokio::test]
async fn two_nodes_of_one_hub_exchange_messages_in_order_and_packets_as_datagrams() {
    let hub = Hub::new();
    let a = RelayEndpoint::bind(loopback(), &hub.node("node-a")).expect("A binds");
    let b = RelayEndpoint::bind(loopback(), &hub.node("node-b")).expect("B binds");
    let (mut at_a, mut at_b) = link(&a, &b, "node-b").await;

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
    assert_eq!(
        at_a.send_packet(3, &big).expect("A sends a datagram"),
        DatagramQueued::Fitted
    );
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

/// A hub in the middle of an upgrade: two new nodes speak version 2 and
/// tell each other of recordings; a new node and one not yet upgraded
/// settle on version 1, whichever dialled, and the new one leaves out the
/// recording message the old one would take for garbage (and close the
/// link on), while everything else crosses as before.
#[tokio::test]
async fn nodes_of_two_versions_settle_on_the_older_and_leave_out_what_it_does_not_know() {
    let hub = Hub::new();
    let new = RelayEndpoint::bind(loopback(), &hub.node("node-new")).expect("binds");
    let old = RelayEndpoint::bind_first_version(loopback(), &hub.node("node-old")).expect("binds");
    let other_new = RelayEndpoint::bind(loopback(), &hub.node("node-new-2")).expect("binds");
    let recording = LinkMessage::Room {
        channel: 3,
        control: Control::Recording {
            origin: ParticipantId(5),
            since: Some(1_796_000_000),
        },
    };
    let left = LinkMessage::Room {
        channel: 3,
        control: Control::Left {
            origin: ParticipantId(5),
        },
    };
    let cases = [
        (&new, &old, "node-old", 1),
        (&old, &new, "node-new", 1),
        (&new, &other_new, "node-new-2", 2),
    ];
    for (from, to, name, version) in cases {
        let (mut at_from, mut at_to) = link(from, to, name).await;
        assert_eq!((at_from.version(), at_to.version()), (version, version));
        at_to.send_message(&recording).await.expect("sends");
        at_to.send_message(&left).await.expect("sends");
        let first = at_from.recv_message().await.expect("reads");
        match version {
            1 => assert_eq!(first, left, "version 1: the recording is left out"),
            _ => {
                assert_eq!(first, recording);
                assert_eq!(at_from.recv_message().await.expect("reads"), left);
            }
        }
    }
}

/// More datagrams than the send queue holds, sent faster than any link
/// carries them: quinn drops the oldest to take each new one, and says so
/// for each (the relay counts those as lost) until its queue has room.
#[tokio::test]
async fn a_full_send_queue_says_which_packets_displaced_older_ones() {
    let hub = Hub::new();
    let a = RelayEndpoint::bind(loopback(), &hub.node("node-a")).expect("A binds");
    let b = RelayEndpoint::bind(loopback(), &hub.node("node-b")).expect("B binds");
    let (mut at_a, _at_b) = link(&a, &b, "node-b").await;
    // 6,000 packets of 1,100 bytes (6.6 MB) in one go, never yielding to
    // the connection's task: its 4 MiB queue cannot take them all.
    let big = packet(1100);
    let mut queued = Vec::new();
    for _ in 0..6_000 {
        queued.push(at_a.send_packet(3, &big).expect("A sends"));
    }
    let first_displaced = queued.iter().position(|q| *q == DatagramQueued::Displaced);
    let displaced = queued
        .iter()
        .filter(|q| **q == DatagramQueued::Displaced)
        .count();
    println!("first displaced: {first_displaced:?}, displaced: {displaced} of 6,000");
    let first = first_displaced.expect("a full queue says so");
    assert!(
        (3_000..4_000).contains(&first),
        "the first {first} fitted in 4 MiB"
    );
    assert_eq!(
        displaced,
        6_000 - first,
        "every packet after it displaced one"
    );
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

/// A node's media plane with its relay: strangers spraying its port with
/// garbage and with handshakes under another CA's certificates keep no
/// node of the hub out. The hub's node links, opens a room, and the
/// node's worker answers with its own side of the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_at_the_relay_port_keep_no_node_out() {
    let hub = Hub::new();
    let (cert_pem, key_pem, hub_ca_pem) = hub.pems("node-a");
    let media = carecall_sfu::MediaServer::start(&carecall_sfu::MediaConfig {
        announce: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        port: 0,
        tcp_port: None,
        workers: 1,
        estimate_bandwidth: false,
        relays: None,
        relay: Some(carecall_sfu::RelaySettings {
            listen: loopback(),
            cert_pem,
            key_pem,
            hub_ca_pem,
        }),
    })
    .expect("the media plane starts with its relay");
    let relay = media.relay_addr().expect("a relay address");

    // Garbage datagrams, then strangers' handshakes, all at once.
    let spray = std::net::UdpSocket::bind(loopback()).expect("socket");
    for i in 0..1000u32 {
        let _ = spray.send_to(&i.to_be_bytes().repeat(40), relay);
    }
    let stranger = Hub::new();
    let mut strangers = Vec::new();
    for i in 0..10 {
        let endpoint = RelayEndpoint::bind(loopback(), &stranger.node("node-a")).expect("binds");
        strangers.push(tokio::spawn(async move {
            let refused = endpoint.connect(relay, "node-a").await.is_err();
            (i, refused)
        }));
    }

    // From its own address, as a node of the hub is: the strangers' address
    // has its two handshakes at a time and no more.
    let started = Instant::now();
    let own: std::net::SocketAddr = "127.0.0.2:0".parse().expect("address");
    let b = RelayEndpoint::bind(own, &hub.node("node-b")).expect("B binds");
    let mut link = b.connect(relay, "node-a").await.expect("a hub node links");
    let room = RoomId("ward-relay".into());
    let open = LinkMessage::Open {
        channel: 1,
        room: room.clone(),
    };
    link.send_message(&open).await.expect("B opens a room");
    let answer = tokio::time::timeout(Duration::from_secs(5), link.recv_message())
        .await
        .expect("an answer within 5 s")
        .expect("A's side of the room");
    match answer {
        LinkMessage::Open { room: theirs, .. } => assert_eq!(theirs, room),
        other => panic!("A answered {other:?}"),
    }
    println!(
        "linked and answered in {:?} beside 10 strangers",
        started.elapsed()
    );
    for s in strangers {
        let (i, refused) = s.await.expect("stranger task");
        assert!(refused, "stranger {i} was let in");
    }
    assert!(media.relay_counts().is_some_and(|c| c.links == 1));
}
