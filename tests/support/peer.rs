//! Non-browser participants on webrtc-rs: the load tool's peers
//! (`benches/load`), which publish media carrying counters and send times.

use std::time::Duration;

#[allow(unused_imports)]
pub use carecall_load::peer::{LoadPeer as TestPeer, KEYFRAME_EVERY};

/// A home and a clinician in `room` on `server`, connected, each having sent
/// `ticks` 20 ms steps of media (audio every step, video every other).
pub async fn call_of_two(server: &super::Server, room: &str, ticks: u32) -> (TestPeer, TestPeer) {
    let home = server.link(room, "home", "Rose Court", "1h");
    let clinician = server.link(room, "clinician", "Dr Hub", "1h");
    let mut a = TestPeer::join(&server.ws_url(), &super::token_of(&home), 1).await;
    let mut b = TestPeer::join(&server.ws_url(), &super::token_of(&clinician), 2).await;
    a.wait_connected(Duration::from_secs(10)).await;
    b.wait_connected(Duration::from_secs(10)).await;
    let (awire, bwire) = (a.negotiated().await, b.negotiated().await);
    for n in 0..ticks {
        a.send_tick(n, &awire).await;
        b.send_tick(n, &bwire).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (a, b)
}
