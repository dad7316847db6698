//! The deployment files against the real server: every `carecall_*` metric
//! the Grafana dashboard and the alert rules use is one that `/metrics`
//! really exports during a call, and `promtool check metrics` finds nothing
//! to fault in it. (`deploy/check.sh` checks the files' syntax with
//! systemd-analyze, promtool and hadolint.)

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
    // With bandwidth estimation on, so the estimate gauge is there too,
    // and a relay, so its series are (a node without one has none).
    let hub = crate::spanning::HubCa::new();
    let server = Server::start_with(ServerOptions {
        estimate_bandwidth: true,
        ..hub.node("node-a", &crate::support::DataDir::new())
    });
    let who = [
        ("home", "Rose Court"),
        ("clinician", "Dr Hub"),
        ("specialist", "Dr Skin"),
    ];
    let peers = crate::support::peer::call_of(&server, "ward-1", &who, 150).await;
    let text = crate::support::metrics::scrape(&server.base_url).await;
    assert_eq!(
        crate::support::metrics::value(&text, "carecall_participants{role=\"specialist\"}"),
        Some(1.0),
        "a three-party call\n{text}"
    );
    promtool_finds_nothing(&text);
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
    for p in peers {
        p.close().await;
    }
}

/// `promtool check metrics` on `text`: Prometheus' own linter, which flags
/// units other than the base ones, counters without `_total`, missing help.
fn promtool_finds_nothing(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "promtool not found: tests/run.sh fetches it (Debian's prometheus package, \
             unpacked into target/tools) and puts it on PATH",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("metrics written to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "promtool check metrics on {} lines: {said:?}",
        text.lines().count()
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}
