//! The embedded TURN server, over a real socket, refuses what it must: no
//! allocation without valid, unexpired credentials made with the hub's
//! secret, and no permission to relay anywhere but the SFU. STUN is written
//! by hand here, apart from the server's own code, so the test also checks
//! the wire format.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::support::turn::*;
use crate::support::Server;
use carecall_sfu::turn::TurnSecret;

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
