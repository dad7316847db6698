//! STUN and TURN messages and ChannelData from a client, and datagrams from
//! a peer, through the embedded TURN server's state.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use carecall_sfu::turn::{
    Client, ClientAction, Transport, TurnFailures, TurnLimits, TurnSecret, TurnServer,
};
use carecall_sfu::Refusals;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let sfu: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let relay: SocketAddr = "10.0.0.1:61000".parse().unwrap();
    let mut server = TurnServer::new(
        "carecall",
        TurnSecret::new(b"fuzz secret"),
        vec![sfu],
        b"nonce seed",
        carecall_sfu::Live::new(TurnLimits::default()),
        Refusals::default(),
        TurnFailures::default(),
    );
    let transport = match pick % 3 {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        _ => Transport::Tls,
    };
    let client = Client {
        transport,
        addr: "192.0.2.1:5000".parse().unwrap(),
        local: "10.0.0.1:3478".parse().unwrap(),
    };
    let now = Instant::now();
    let (action, taken) = server.handle_client(now, NOW, client, data, || Some(relay));
    match action {
        ClientAction::Reply(r) => assert!(r.len() >= 20, "a reply is a STUN message"),
        ClientAction::Relay { peer, .. } => assert_eq!(peer, sfu, "relayed elsewhere"),
        ClientAction::Nothing => {}
    }
    assert!(!taken, "an allocation without valid credentials");
    let mut out = [0u8; 2048];
    assert!(server
        .handle_peer(now, relay, sfu, data, &mut out)
        .is_none());
});
