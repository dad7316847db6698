//! `carecall config check` and production mode, through the binary: a file
//! with three planted mistakes is explained key by key; the example file is
//! clean; production mode with the example's placeholder secret, or none,
//! refuses to start and says why.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::binary;

/// Runs `carecall config check FILE` in an empty directory, and checks that
/// the check wrote nothing there (the example's relative `data_dir` would
/// land in it): checking a configuration makes no secret files.
fn check(file: &std::path::Path) -> (bool, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["config", "check"])
        .arg(file)
        .current_dir(cwd.path())
        .output()
        .expect("run carecall config check");
    let written: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(written.is_empty(), "the check wrote {written:?}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn three_planted_mistakes_are_each_reported_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carecall.toml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/carecall.example.toml"
    ))
    .unwrap();
    // The example with a wrong type, a misspelt key and a time zone that is not one.
    let planted = example
        .replace("\nport = 40000", "\nport = \"forty thousand\"")
        .replace("retention_days = 30", "retention_dayz = 30")
        .replace(
            "timezone = \"Europe/London\"",
            "timezone = \"Europe/Lundon\"",
        );
    std::fs::write(&file, planted).unwrap();
    let (ok, out) = check(&file);
    println!("{out}");
    assert!(!ok, "a file with mistakes must fail the check");
    assert!(out.contains("3 problems"), "{out}");
    for key in ["media.port", "recording.retention_dayz", "timezone"] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!(": {key}: ")))
            .unwrap_or_else(|| panic!("{key} not reported:\n{out}"));
        assert!(
            line.trim_start().starts_with("line "),
            "no line number: {line}"
        );
    }
}

#[test]
fn the_example_file_is_clean() {
    let example = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/carecall.example.toml"
    ));
    let (ok, out) = check(example);
    assert!(ok, "{out}");
}

#[test]
fn production_mode_with_the_placeholder_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = Command::new(binary())
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CARECALL_MODE", "production")
        .env(
            "CARECALL_LINK_SECRET",
            "CHANGE-ME-to-64-hex-characters-from-openssl-rand-hex-32",
        )
        .output()
        .expect("run carecall serve");
    let said = String::from_utf8_lossy(&out.stderr);
    println!("{said}");
    assert!(
        !out.status.success(),
        "production mode started with the placeholder secret"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(said.contains("production mode refuses to start"), "{said}");
    assert!(
        said.contains("link_secret is still the example file's placeholder"),
        "{said}"
    );
    assert!(
        said.contains("turn.secret: production mode needs turn.secret set"),
        "{said}"
    );
    assert!(said.contains("https.enabled"), "{said}");
    assert!(said.contains("metrics_token"), "{said}");
    // Nothing was written: no generated secret, no database.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "data directory touched"
    );
}

#[test]
fn a_limit_that_would_refuse_everyone_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carecall.toml");
    std::fs::write(
        &file,
        "[limits]\nturn_allocations_per_credential = 0\ntrusted_proxies = [\"nginx\"]\n",
    )
    .unwrap();
    let (ok, out) = check(&file);
    assert!(!ok, "{out}");
    for key in [
        "limits.turn_allocations_per_credential",
        "limits.trusted_proxies",
    ] {
        assert!(
            out.contains(&format!(": {key}: ")),
            "{key} not reported:\n{out}"
        );
    }
}
