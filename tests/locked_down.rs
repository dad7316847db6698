//! Locked-down care-home networks: the home's browser runs in a network
//! namespace whose firewall drops UDP, as guest Wi-Fi often does. The call
//! must still connect, over ICE-TCP, in HD. Needs root for the namespace.

mod support;

use std::time::Duration;

use support::browser::Driver;
use support::calls::wait_all_decoding_hd;
use support::metrics::scrape;
use support::netlab::NetNs;
use support::{Server, ServerOptions};

/// The transport the SFU reports for `participant` in a /metrics scrape.
fn transport_of(metrics: &str, participant: &str) -> Option<String> {
    let label = format!("participant=\"{participant}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("carecall_participant_transport_info{") && l.contains(&label))
        .find(|l| l.ends_with(" 1"))
        .and_then(|l| l.split("transport=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_the_call_connects_over_ice_tcp_in_hd() {
    let net = NetNs::new();
    for chain in ["OUTPUT", "INPUT"] {
        net.exec(&["iptables", "-A", chain, "-p", "udp", "-j", "DROP"]);
    }
    let server = Server::start_with(ServerOptions {
        ip: net.host_ip.into(),
        ..ServerOptions::default()
    });
    assert!(!server.tcp_addrs.is_empty(), "the server offers no ICE-TCP");
    let hub = Driver::start_trusting(&server.base_url).await;
    let away = Driver::start_in(&net, &server.base_url).await;
    let clinician = hub.browser().await;
    clinician
        .join(&server.link("locked-1", "clinician", "Hub clinician", "1h"))
        .await;
    let home = away.browser().await;
    home.join(&server.link("locked-1", "home", "Rose Court", "1h"))
        .await;
    wait_all_decoding_hd(&[&home, &clinician], 1, Duration::from_secs(60)).await;

    let home_id = home.participant().await.expect("home joined");
    let clinician_id = clinician.participant().await.expect("clinician joined");
    let metrics = scrape(&server.base_url).await;
    let (home_path, hub_path) = (
        transport_of(&metrics, &home_id),
        transport_of(&metrics, &clinician_id),
    );
    println!("home ({home_id}) over {home_path:?}, clinician ({clinician_id}) over {hub_path:?}");
    assert_eq!(home_path.as_deref(), Some("tcp"), "the home's media path");
    // The block is what made the difference: the hub side still uses UDP.
    assert_eq!(
        hub_path.as_deref(),
        Some("udp"),
        "the clinician's media path"
    );
    home.close().await;
    clinician.close().await;
}
