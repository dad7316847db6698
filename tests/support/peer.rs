//! Non-browser participants on webrtc-rs: the load tool's peers
//! (`benches/load`), which publish media carrying counters and send times.

use std::time::Duration;

#[allow(unused_imports)]
pub use carecall_load::peer::{LoadPeer as TestPeer, KEYFRAME_EVERY};

/// A home and a clinician in `room` on `server`, connected, each having sent
/// `ticks` 20 ms steps of media (audio every step, video every other).
pub async fn call_of_two(server: &super::Server, room: &str, ticks: u32) -> (TestPeer, TestPeer) {
    let mut peers = call_of(
        server,
        room,
        &[("home", "Rose Court"), ("clinician", "Dr Hub")],
        ticks,
    )
    .await
    .into_iter();
    match (peers.next(), peers.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("two joined"),
    }
}

/// Everyone in `who` (role, name) in `room` on `server`, connected, each
/// having sent `ticks` 20 ms steps of media.
pub async fn call_of(
    server: &super::Server,
    room: &str,
    who: &[(&str, &str)],
    ticks: u32,
) -> Vec<TestPeer> {
    let mut peers = Vec::new();
    for (n, (role, name)) in who.iter().enumerate() {
        let link = server.link(room, role, name, "1h");
        peers.push(TestPeer::join(&server.ws_url(), &super::token_of(&link), n as u32 + 1).await);
    }
    let mut wires = Vec::new();
    for p in &mut peers {
        p.wait_connected(Duration::from_secs(10)).await;
        wires.push(p.negotiated().await);
    }
    for n in 0..ticks {
        for (p, wire) in peers.iter().zip(&wires) {
            p.send_tick(n, wire).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peers
}

/// Runs `attack` while a call of two in `room` goes on, media sent every
/// 20 ms for as long as the attack lasts (at least 3 s, at most 120 s), and
/// asserts the call kept receiving its media at its rate: each side got at
/// least 95% of the other's audio packets, and the last of them.
pub async fn call_survives<T>(
    server: &super::Server,
    room: &str,
    attack: impl std::future::Future<Output = T>,
) -> T {
    let (a, b) = call_of_two(server, room, 0).await;
    let (awire, bwire) = (a.negotiated().await, b.negotiated().await);
    let mut attack = std::pin::pin!(attack);
    let started = std::time::Instant::now();
    let mut result = None;
    let mut ticks = 0u32;
    while ticks < 6_000 && (result.is_none() || started.elapsed() < Duration::from_secs(3)) {
        a.send_tick(ticks, &awire).await;
        b.send_tick(ticks, &bwire).await;
        ticks += 1;
        let step = tokio::time::sleep(Duration::from_millis(20));
        match result {
            Some(_) => step.await,
            None => {
                tokio::select! {
                    r = &mut attack => result = Some(r),
                    _ = step => {}
                }
            }
        }
    }
    let result = result.expect("the attack ended within 120 s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (rx, tx) in [(&a, &b), (&b, &a)] {
        let audio = rx.counters(&tx.participant, "audio");
        assert!(
            audio.len() as f64 >= 0.95 * f64::from(ticks),
            "{} got {} of {ticks} audio packets from {} during the attack",
            rx.participant,
            audio.len(),
            tx.participant
        );
        assert_eq!(
            audio.last(),
            Some(&(ticks - 1)),
            "audio stopped during the attack"
        );
    }
    println!(
        "the call carried {ticks} audio packets each way in {:.1} s of attack",
        started.elapsed().as_secs_f64()
    );
    result
}

/// The resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}
