//! Firefox in a call: care homes use laptops with Firefox beside Chromium
//! tablets. Firefox ESR (headless, its fake camera at 1280x720) and Chromium
//! share rooms through the SFU; Firefox's simulcast (its own rid order and
//! `a=simulcast` syntax) must reach every viewer in HD.

use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Driver};
use crate::support::calls::{assert_still_decoding, snapshot, wait_all_decoding_hd};
use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_home_and_a_chromium_clinician_see_each_other_in_hd() {
    let server = Server::start();
    let gecko = Driver::firefox().await;
    let chromium = Driver::start().await;
    let home = gecko.browser().await;
    home.join(&server.link("ff-1", "home", "Rose Court", "1h"))
        .await;
    let clinician = chromium.browser().await;
    clinician
        .join(&server.link("ff-1", "clinician", "Hub clinician", "1h"))
        .await;
    let both: [&Browser; 2] = [&home, &clinician];
    wait_all_decoding_hd(&both, 1, Duration::from_secs(45)).await;
    assert_still_decoding(&both, 720, Duration::from_secs(5)).await;
    let sent = home.outbound_layers().await;
    println!("firefox sends: {sent:?}");
    assert_eq!(
        sent.len(),
        3,
        "Firefox publishes three simulcast layers: {sent:?}"
    );
    // Firefox has no transport statistics: the page must still see media
    // flowing, not restart ICE every 5 s.
    for b in both {
        let m = b.metrics().await;
        assert_eq!(m["iceRestarts"].as_u64().unwrap_or(0), 0, "{m}");
    }
    home.close().await;
    clinician.close().await;
}

/// Three people, Firefox among them, in HD; then both Chromium windows
/// shrink to a phone's width (tiles stack, each about 340 px tall): their tiles of the Firefox home are 360p now, the SFU switches them
/// to Firefox's middle layer, and tells Firefox to stop encoding 720p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_with_firefox_in_hd_then_smaller_tiles_switch_its_layers() {
    let server = Server::start();
    let gecko = Driver::firefox().await;
    let chromium = Driver::start().await;
    let home = gecko.browser().await;
    home.join(&server.link("ff-3", "home", "Rose Court", "1h"))
        .await;
    let mut viewers = Vec::new();
    for role in ["clinician", "specialist"] {
        let b = chromium.browser().await;
        b.join(&server.link("ff-3", role, role, "1h")).await;
        viewers.push(b);
    }
    let all: [&Browser; 3] = [&home, &viewers[0], &viewers[1]];
    wait_all_decoding_hd(&all, 2, Duration::from_secs(60)).await;
    assert_still_decoding(&all, 720, Duration::from_secs(4)).await;

    let firefox_id = home.participant().await.expect("joined");
    for b in &viewers {
        b.client
            .set_window_size(640, 480)
            .await
            .expect("smaller window");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut heights = Vec::new();
        for b in &viewers {
            let (video, _) = snapshot(b).await;
            heights.push(video.get(&firefox_id).map_or(0, |v| v.height));
        }
        if heights.iter().all(|&h| h == 360) {
            println!("both viewers decode Firefox at 360p");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Firefox's video still at {heights:?} in small tiles"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Nobody watches Firefox's 720p: it stops encoding that layer.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = full_layer_frames(&home).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = full_layer_frames(&home).await;
        println!("Firefox's 720p layer: {before} -> {after} frames in 2 s");
        if after <= before + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Firefox still encodes 720p that nobody watches"
        );
    }
    home.close().await;
    for b in viewers {
        b.close().await;
    }
}

/// Frames Firefox has encoded on its `f` (720p) simulcast layer.
async fn full_layer_frames(b: &Browser) -> u64 {
    let layers = b.outbound_layers().await;
    let full = layers.iter().find(|(rid, _, _)| rid == "f");
    full.map_or(0, |l| l.2)
}
