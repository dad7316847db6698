//! Backup and restore around a real call: `carecall backup` while three
//! browsers are in a call (quality samples being written every 5 s), a
//! restore refused while the server runs, then the database lost, restored
//! with the server stopped, and the server started again on it: the row
//! counts must be the backup's and the call must be in the history.

use std::process::Command;
use std::time::Duration;

use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding_hd;
use crate::support::http::get_with;
use crate::support::{binary, Server, ServerOptions};

/// `table n` lines from `carecall backup` / `restore`.
fn counts(stdout: &[u8]) -> Vec<(String, i64)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let (t, n) = l.trim().split_once(' ')?;
            Some((t.to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn carecall(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run carecall")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_call_restores_the_history() {
    let mut server = Server::start();
    let data_dir = server.data_dir.clone();
    let driver = Driver::start().await;
    let mut browsers = Vec::new();
    for role in ["home", "clinician", "specialist"] {
        let b = driver.browser().await;
        b.join(&server.link("ward-3", role, role, "1h")).await;
        browsers.push(b);
    }
    let refs: Vec<&Browser> = browsers.iter().collect();
    wait_all_decoding_hd(&refs, 2, Duration::from_secs(60)).await;
    // Quality samples are written every 5 s while the call runs.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("hub-backup.db");
    let file_arg = file.to_str().unwrap();
    let taken = carecall(&["backup", file_arg], data_dir.path());
    assert!(
        taken.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let taken = counts(&taken.stdout);
    println!("backup during the call: {taken:?}");
    let count = |table: &str| taken.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
    assert_eq!(count("calls"), Some(1));
    assert_eq!(count("participant_sessions"), Some(3));
    assert!(
        count("quality_samples").is_some_and(|n| n >= 3),
        "quality samples in the backup"
    );

    let refused = carecall(&["restore", file_arg], data_dir.path());
    let why = String::from_utf8_lossy(&refused.stderr);
    println!("restore while running: {why}");
    assert!(
        !refused.status.success() && why.contains("stop it first"),
        "{why}"
    );

    for b in browsers {
        b.close().await;
    }
    server.kill();
    // The database is lost.
    for name in ["carecall.db", "carecall.db-wal", "carecall.db-shm"] {
        let _ = std::fs::remove_file(data_dir.path().join(name));
    }
    let restored = carecall(&["restore", file_arg], data_dir.path());
    assert!(
        restored.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let restored = counts(&restored.stdout);
    println!("restored: {restored:?}");
    assert_eq!(restored, taken, "every table's rows as in the backup");

    // The server starts on it, and the call is in the history.
    let server = Server::start_with(ServerOptions {
        data_dir: Some(data_dir.clone()),
        ..ServerOptions::default()
    });
    let (cookie, _) = crate::support::admin::session(&server).await;
    let reply = get_with(
        &server.base_url,
        "/admin/api/history",
        &[("Cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let history: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let calls = history["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{history}");
    assert_eq!(calls[0]["room"], "ward-3");
    // The sessions open at backup time were closed at their last known moment.
    assert!(!calls[0]["ended_at"].is_null(), "{history}");
}
