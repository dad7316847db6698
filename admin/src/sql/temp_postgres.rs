//! A throwaway PostgreSQL cluster for tests: Debian's server, in a
//! temporary directory under `/tmp`, reached only through a Unix socket in
//! that directory (no TCP port, so clusters of tests run at once never
//! meet), run as the unprivileged `postgres` user when the tests run as
//! root (initdb refuses root); stopped and removed when dropped. About two
//! seconds to start. A test process that is killed cannot stop its
//! cluster: the next one to start a cluster stops and removes those whose
//! process is gone (each cluster's directory names its process).

use std::path::PathBuf;
use std::process::Command;

/// A running throwaway cluster.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl TempPostgres {
    /// Starts one; panics, saying what is missing, if it cannot.
    pub fn start() -> TempPostgres {
        let bin = server_bin().expect(
            "PostgreSQL's server is not installed (apt-get install postgresql; tests/run.sh does)",
        );
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(|| reap_leftovers(&bin));
        // Under /tmp, which the `postgres` user can reach whatever TMPDIR says.
        let dir = tempfile::Builder::new()
            .prefix(&format!("carecall-pg{}-", std::process::id()))
            .tempdir_in("/tmp")
            .expect("temp dir");
        let as_root = run_output("id", &["-u"]).trim() == "0";
        if as_root {
            run_ok("chown", &["postgres", &dir.path().display().to_string()]);
        }
        let pg = TempPostgres { dir, bin, as_root };
        let d = pg.dir.path().display().to_string();
        pg.as_server(&format!(
            "{bin}/initdb -D {d}/data -A trust -U carecall --no-sync --no-locale -E UTF8 >{d}/initdb.log 2>&1 \
             && {bin}/pg_ctl -D {d}/data -o \"-k {d} -c listen_addresses='' -F\" -l {d}/log -w start >/dev/null",
            bin = pg.bin.display(),
        ));
        pg
    }

    /// Its database, as the client's connection string.
    pub fn url(&self) -> String {
        format!(
            "host={} user=carecall dbname=postgres",
            self.dir.path().display()
        )
    }

    /// The cluster's files (tables, write-ahead log), for a test that looks
    /// for what must not be stored in the clear.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Restarts the server at once (`-m immediate`, as a crash or a
    /// failover would): every connection to it is cut.
    pub fn restart(&self) {
        let d = self.dir.path().display().to_string();
        self.as_server(&format!(
            "{}/pg_ctl -D {d}/data -m immediate -w -l {d}/log restart >/dev/null",
            self.bin.display()
        ));
    }

    /// Runs `script` as the cluster's owner: whether it succeeded.
    fn run_as_server(&self, script: &str) -> bool {
        run_as_postgres(self.as_root, script)
    }

    fn as_server(&self, script: &str) {
        let ok = self.run_as_server(script);
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let init = std::fs::read_to_string(self.dir.path().join("initdb.log")).unwrap_or_default();
        assert!(ok, "PostgreSQL did not start:\n{init}\n{log}");
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let d = self.dir.path().display().to_string();
        let stop = format!(
            "{}/pg_ctl -D {d}/data -m immediate stop >/dev/null 2>&1",
            self.bin.display()
        );
        self.run_as_server(&stop);
    }
}

/// Stops and removes the clusters of test processes that are gone.
fn reap_leftovers(bin: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    let as_root = run_output("id", &["-u"]).trim() == "0";
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if left_by_gone_process(&name, "carecall-pg", '-').is_none() {
            continue;
        }
        let dir = entry.path();
        let stop = format!(
            "{}/pg_ctl -D {}/data -m immediate stop >/dev/null 2>&1",
            bin.display(),
            dir.display()
        );
        run_as_postgres(as_root, &stop);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The process id in `name`, a leftover of a test process (the id after
/// `prefix`, up to `separator`), when that process is gone: what a killed
/// test left can then be removed, and nothing of a live one is touched.
pub fn left_by_gone_process(name: &str, prefix: &str, separator: char) -> Option<u32> {
    let pid = name.strip_prefix(prefix)?.split(separator).next()?;
    let pid = pid.parse::<u32>().ok()?;
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
    gone.then_some(pid)
}

/// Runs `script` as the clusters' owner (the `postgres` user when this is
/// root, else this user): whether it succeeded.
fn run_as_postgres(as_root: bool, script: &str) -> bool {
    match as_root {
        true => Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", script])
            .status(),
        false => Command::new("sh").args(["-c", script]).status(),
    }
    .is_ok_and(|s| s.success())
}

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb`.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn run_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn run_ok(cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{cmd} {args:?} failed");
}
