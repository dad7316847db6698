//! Firefox in a call: care homes use laptops with Firefox beside Chromium
//! tablets. Firefox ESR (headless, its fake camera at 1280x720) and Chromium
//! share rooms through the SFU; Firefox's simulcast (its own rid order and
//! `a=simulcast` syntax) must reach every viewer in HD.

use std::time::Duration;

use crate::support::browser::{Browser, Driver};
use crate::support::calls::{assert_still_decoding, wait_all_decoding_hd};
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
