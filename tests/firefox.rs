//! Firefox in a call: care homes use laptops with Firefox beside Chromium
//! tablets. Firefox ESR (headless, its fake camera at 1280x720) and Chromium
//! share rooms through the SFU; Firefox's simulcast (its own rid order and
//! `a=simulcast` syntax) must reach every viewer in HD, switch layers as
//! tiles change size, be recorded, and survive a dropped socket.

use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Driver};
use crate::support::calls::{assert_still_decoding, wait_all_decoding_hd, wait_decoding_at};
use crate::support::recording::{assert_cameras_recorded_in_hd, record};
use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_home_and_a_chromium_clinician_in_hd_recorded_switching_layers_and_resuming() {
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
    assert_still_decoding(&both, 720, Duration::from_secs(4)).await;
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

    // The recording holds the Firefox home's camera beside the clinician's.
    let probed = record(&server, &clinician, Duration::from_secs(4)).await;
    assert_cameras_recorded_in_hd(&probed, 2, Duration::from_secs(4));

    // Each window shrinks to a phone's width (the tile is about 350 px
    // tall): each gets the other's 360p layer, and Firefox, whose 720p no
    // one watches now, stops encoding it. Full size again: HD again.
    let home_id = home.participant().await.expect("joined");
    let clinician_id = clinician.participant().await.expect("joined");
    for (viewer, shown) in [(&clinician, &home_id), (&home, &clinician_id)] {
        viewer
            .client
            .set_window_size(640, 480)
            .await
            .expect("smaller window");
        wait_decoding_at(viewer, shown, 360, Duration::from_secs(20)).await;
        println!("{shown} is decoded at 360p in a small window");
    }
    wait_layer_idle(&home, "f", Duration::from_secs(20)).await;
    for viewer in both {
        viewer
            .client
            .set_window_size(1920, 1080)
            .await
            .expect("full window");
    }
    wait_all_decoding_hd(&both, 1, Duration::from_secs(30)).await;

    // The hub's network blips: every signalling socket is reset, with no
    // close frame. Both browsers resume the same session by themselves.
    server.drop_connections();
    let start = Instant::now();
    for b in both {
        while !b.metrics().await["signals"]
            .to_string()
            .contains("\"resumed@")
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not resumed: {}",
                b.metrics().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "both resumed {} ms after the drop",
        start.elapsed().as_millis()
    );
    assert_eq!(home.participant().await.as_ref(), Some(&home_id));
    assert_eq!(clinician.participant().await.as_ref(), Some(&clinician_id));
    assert_still_decoding(&both, 720, Duration::from_secs(3)).await;
    home.close().await;
    clinician.close().await;
}

/// Waits until `publisher` stops encoding simulcast layer `rid` (no more
/// than one new frame in 2 s).
async fn wait_layer_idle(publisher: &Browser, rid: &str, within: Duration) {
    let encoded = || async {
        let layers = publisher.outbound_layers().await;
        layers.iter().find(|l| l.0 == rid).map_or(0, |l| l.2)
    };
    let start = Instant::now();
    loop {
        let before = encoded().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = encoded().await;
        if after <= before + 1 {
            println!("layer {rid}: {before} -> {after} frames in 2 s: idle");
            return;
        }
        assert!(
            start.elapsed() < within,
            "layer {rid} still encoded after {within:?} ({before} -> {after} in 2 s)"
        );
    }
}
