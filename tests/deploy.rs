//! The deployment files against the real server: every `carecall_*` metric
//! the Grafana dashboard and the alert rules use is one that `/metrics`
//! really exports during a call. (`deploy/check.sh` checks the files'
//! syntax with systemd-analyze, promtool and hadolint.)

use crate::support::{Server, ServerOptions};
use std::collections::BTreeSet;

/// Every `carecall_…` word in `text`.
fn carecall_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("carecall_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    // With bandwidth estimation on, so the estimate gauge is there too.
    let server = Server::start_with(ServerOptions {
        estimate_bandwidth: true,
        ..ServerOptions::default()
    });
    let (a, b) = crate::support::peer::call_of_two(&server, "ward-1", 150).await;
    let text = crate::support::metrics::scrape(&server.base_url).await;
    // Sample names as exported (histograms as _bucket, _sum, _count), and
    // the families their `# TYPE` lines name.
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next());
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next());
    let exported: BTreeSet<String> = samples.chain(families).map(str::to_owned).collect();

    let root = env!("CARGO_MANIFEST_DIR");
    let mut missing = Vec::new();
    for file in [
        "deploy/grafana/carecall.json",
        "deploy/prometheus/alerts.yml",
    ] {
        let used = carecall_names(&std::fs::read_to_string(format!("{root}/{file}")).unwrap());
        assert!(!used.is_empty(), "{file} uses no carecall metric");
        println!("{file}: {} carecall metrics", used.len());
        for name in used {
            if !exported.contains(&name) {
                missing.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "used but not exported:\n{}\n\nexported:\n{exported:?}",
        missing.join("\n")
    );
    a.close().await;
    b.close().await;
}
