//! Test support: a real `carecall` server process on loopback, join links made
//! by `carecall link`, and non-browser WebRTC peers.
#![allow(dead_code)]

pub mod abuse;
pub mod admin;
pub mod axe;
pub mod browser;
pub mod calls;
pub mod clock;
pub mod console;
pub mod devtools;
pub mod home_lab;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod netlab;
pub mod peer;
pub mod queue;
pub mod recording;
pub mod relay;
pub mod turn;
pub mod ws;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOG_FILE: &str = "server.log";

/// A `carecall serve` process with its own data directory, killed on drop.
pub struct Server {
    child: Child,
    pub base_url: String,
    pub media_addrs: Vec<std::net::SocketAddr>,
    /// ICE-TCP listeners.
    pub tcp_addrs: Vec<std::net::SocketAddr>,
    /// The TURN URLs handed to browsers.
    pub turn_urls: Vec<String>,
    /// The key hash of TURN's self-signed certificate, for a test browser.
    pub turn_spki: Option<String>,
    /// The same for the HTTPS development certificate.
    pub https_spki: Option<String>,
    /// With HTTPS on: the plain HTTP port, which redirects.
    pub http_redirect_port: Option<u16>,
    /// Shared with a restarted server (see [`ServerOptions::data_dir`]).
    pub data_dir: std::sync::Arc<DataDir>,
    /// What the server printed at start.
    pub banner: Vec<String>,
}

/// A loopback port free right now (for a listener the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_carecall"))
}

/// Set to `postgres` to run every server of a test on a throwaway
/// PostgreSQL instead of its SQLite file (`tests/run.sh` runs the storage
/// and queue tests so, a second time).
pub const DATABASE_VAR: &str = "CARECALL_TEST_DATABASE";

/// A server's data directory and, when [`DATABASE_VAR`] asks for it, the
/// PostgreSQL its records go to; a restarted server gets both.
pub struct DataDir {
    dir: tempfile::TempDir,
    postgres: Option<std::sync::Arc<carecall_admin::sql::temp_postgres::TempPostgres>>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataDir({}, postgres: {})",
            self.path().display(),
            self.postgres.is_some()
        )
    }
}

impl DataDir {
    /// A fresh one.
    pub fn new() -> std::sync::Arc<DataDir> {
        DataDir::from(tempfile::tempdir().expect("temp dir"))
    }

    /// `dir`, with a database as [`DATABASE_VAR`] says.
    pub fn from(dir: tempfile::TempDir) -> std::sync::Arc<DataDir> {
        let postgres = match std::env::var(DATABASE_VAR).as_deref() {
            Ok("postgres") => true,
            Ok("sqlite") | Err(_) => false,
            Ok(other) => panic!("{DATABASE_VAR}={other}: sqlite or postgres"),
        };
        std::sync::Arc::new(DataDir {
            dir,
            postgres: postgres.then(|| std::sync::Arc::new(Self::cluster())),
        })
    }

    /// A fresh one whose records go to a throwaway PostgreSQL, whatever
    /// [`DATABASE_VAR`] says: for what only a shared database can do.
    pub fn on_postgres() -> std::sync::Arc<DataDir> {
        std::sync::Arc::new(DataDir {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: Some(std::sync::Arc::new(Self::cluster())),
        })
    }

    /// Another node's data directory beside `first`'s: the same database
    /// and the hub's shared secrets (links, TURN, recordings), copied as
    /// docs/scaling.md says (those not set in the environment); its own
    /// node id. `first`'s server must have started (it makes the secrets).
    pub fn beside(first: &DataDir) -> std::sync::Arc<DataDir> {
        let dir = tempfile::tempdir().expect("temp dir");
        for secret in ["link-secret", "turn-secret", "recording-secret"] {
            // One set in the environment is not written to the directory.
            let from = first.path().join(secret);
            if from.exists() {
                std::fs::copy(&from, dir.path().join(secret))
                    .unwrap_or_else(|e| panic!("copying {secret}: {e}"));
            }
        }
        std::sync::Arc::new(DataDir {
            dir,
            postgres: first.postgres.clone(),
        })
    }

    fn cluster() -> carecall_admin::sql::temp_postgres::TempPostgres {
        carecall_admin::sql::temp_postgres::TempPostgres::start()
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every file the records are stored in: the SQLite file and its
    /// write-ahead log, or every file of the PostgreSQL cluster.
    pub fn record_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        match &self.postgres {
            Some(pg) => walk(&pg.data_dir(), &mut files),
            None => files.extend(
                ["carecall.db", "carecall.db-wal"]
                    .map(|f| self.path().join(f))
                    .into_iter()
                    .filter(|p| p.exists()),
            ),
        }
        files
    }

    /// Restarts its PostgreSQL at once, cutting every connection (panics
    /// on SQLite).
    pub fn restart_database(&self) {
        self.postgres
            .as_ref()
            .expect("records in PostgreSQL")
            .restart();
    }

    /// The call log its records are in, opened from the test.
    pub fn call_log(&self) -> carecall_admin::CallLog {
        let database = match &self.postgres {
            Some(pg) => carecall_admin::sql::Database::Postgres(pg.url()),
            None => carecall_admin::sql::Database::Sqlite(self.path().join("carecall.db")),
        };
        carecall_admin::CallLog::connect(&database).expect("the call log opens")
    }

    /// What a `carecall` process needs besides the directory to find the
    /// records: `CARECALL_DATABASE_URL` when they are in PostgreSQL.
    pub fn database_env(&self) -> Vec<(&'static str, String)> {
        self.postgres
            .iter()
            .map(|pg| ("CARECALL_DATABASE_URL", pg.url()))
            .collect()
    }
}

/// How a test server differs from the defaults.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The address for HTTP and media (a free port each).
    pub ip: std::net::IpAddr,
    /// `media.bandwidth_estimation` (on by default, as in production).
    pub estimate_bandwidth: bool,
    /// Write JSON logs at debug level to [`Server::log_path`] instead of
    /// the test's standard error.
    pub json_log: bool,
    /// Write text logs at info level to [`Server::log_path`] instead of the
    /// test's standard error (what a journal would show).
    pub text_log: bool,
    /// More environment for the server (configuration overrides).
    pub env: Vec<(String, String)>,
    /// Another server's data directory, to start where it stopped.
    pub data_dir: Option<std::sync::Arc<DataDir>>,
    /// A configuration file's text (written into the data directory).
    pub config: Option<String>,
    /// The HTTP port (default: a free one): a restarted server takes its
    /// predecessor's, so the pages find it again.
    pub http_port: u16,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            ip: [127, 0, 0, 1].into(),
            estimate_bandwidth: true,
            json_log: false,
            text_log: false,
            env: Vec::new(),
            data_dir: None,
            config: None,
            http_port: 0,
        }
    }
}

impl Server {
    /// Starts a server on loopback only: HTTP on a free port, media announced on 127.0.0.1.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    /// Starts a server on `options.ip`: HTTP and media on free ports there.
    pub fn start_with(options: ServerOptions) -> Server {
        let data_dir = options.data_dir.clone().unwrap_or_else(DataDir::new);
        let (log_format, stderr, log_filter) = if options.json_log {
            let file = std::fs::File::create(data_dir.path().join(LOG_FILE)).expect("log file");
            let filter = "info,carecall_sfu=debug,carecall_signalling=debug,str0m=warn";
            ("json", Stdio::from(file), filter.to_owned())
        } else if options.text_log {
            let file = std::fs::File::create(data_dir.path().join(LOG_FILE)).expect("log file");
            ("text", Stdio::from(file), "info,str0m=warn".to_owned())
        } else {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,str0m=warn".into());
            ("text", Stdio::inherit(), filter)
        };
        // The hub has its machine to itself; here it shares two cores with up
        // to four Chromiums. Ahead of them for the CPU, its packet arrival
        // times stay true, so a publisher's estimate does not read the
        // server's CPU waits as congestion and drop a layer. Raising the
        // priority needs root (CI runs as root); elsewhere `nice` only warns.
        let mut command = Command::new("nice");
        command.args(["-n", "-10"]).arg(binary());
        if let Some(text) = &options.config {
            let file = data_dir.path().join("carecall.toml");
            std::fs::write(&file, text).expect("config file");
            command.arg("--config").arg(file);
        }
        let mut child = command
            .args(["serve", "--http-addr"])
            .arg(std::net::SocketAddr::new(options.ip, options.http_port).to_string())
            .args(["--media-port", "0", "--data-dir"])
            .arg(data_dir.path())
            .envs(data_dir.database_env())
            .env("CARECALL_MEDIA_ANNOUNCE", options.ip.to_string())
            .env(
                "CARECALL_MEDIA_BANDWIDTH_ESTIMATION",
                options.estimate_bandwidth.to_string(),
            )
            .env("CARECALL_MEDIA_WORKERS", "1")
            .env("CARECALL_MEDIA_TCP_PORT", "0")
            .env("CARECALL_TURN_PORT", "0")
            .env("CARECALL_TURN_TLS_PORT", "0")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", log_filter)
            .env("CARECALL_LOG_FORMAT", log_format)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start carecall serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut base_url = None;
        let mut media_addrs = Vec::new();
        let mut tcp_addrs = Vec::new();
        let mut turn_urls = Vec::new();
        let mut turn_spki = None;
        let mut https_spki = None;
        let mut http_redirect_port = None;
        let mut banner = Vec::new();
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            banner.push(line.clone());
            if let Some(url) = line.strip_prefix("carecall listening on ") {
                base_url = Some(url.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("plain HTTP on http://") {
                http_redirect_port = rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.port());
            }
            if let Some(list) = line.strip_prefix("media (UDP) on ") {
                media_addrs = list.split(", ").filter_map(|a| a.parse().ok()).collect();
            }
            if let Some(list) = line.strip_prefix("media (TCP) on ") {
                tcp_addrs = list.split(", ").filter_map(|a| a.parse().ok()).collect();
            }
            if let Some((_, spki)) = line.split_once("--ignore-certificate-errors-spki-list=") {
                if line.starts_with("HTTPS") {
                    https_spki = Some(spki.trim().to_owned());
                } else {
                    turn_spki = Some(spki.trim().to_owned());
                }
            }
            if let Some(list) = line.strip_prefix("TURN for browsers: ") {
                turn_urls = list.split(", ").map(str::to_owned).collect();
            }
            if line.starts_with("More links:") {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let base_url = base_url.expect("server printed its URL");
        Server {
            child,
            base_url,
            media_addrs,
            tcp_addrs,
            turn_urls,
            turn_spki,
            https_spki,
            http_redirect_port,
            data_dir,
            banner,
        }
    }

    /// A join link made by `carecall link` against this server's data directory.
    pub fn link(&self, room: &str, role: &str, name: &str, ttl: &str) -> String {
        let out = Command::new(binary())
            .args([
                "link", "--room", room, "--role", role, "--name", name, "--ttl", ttl,
            ])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--base-url", &self.base_url])
            .output()
            .expect("run carecall link");
        assert!(
            out.status.success(),
            "carecall link failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 link")
            .trim()
            .to_owned()
    }

    /// Drops every open connection to the server's HTTP port at once, as a
    /// network blip does: both ends see the TCP connection reset, with no
    /// WebSocket close frame (`ss -K`, which needs root).
    pub fn drop_connections(&self) {
        let port = self.base_url.rsplit(':').next().expect("a port");
        let filter = format!("( sport = :{port} )");
        let out = Command::new("ss")
            .args(["-K", "-t", "state", "established", &filter])
            .output()
            .expect("ss (iproute2) is installed");
        assert!(
            out.status.success(),
            "ss -K: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base_url.replacen("http://", "ws://", 1))
    }

    /// Creates an admin account with `carecall admin add`, the password
    /// piped on standard input.
    pub fn add_admin(&self, name: &str, password: &str) -> std::process::Output {
        self.add_account(name, password, "admin")
    }

    /// Creates an account with `role` (admin, operator, clinician or
    /// specialist) with `carecall admin add`.
    pub fn add_account(&self, name: &str, password: &str, role: &str) -> std::process::Output {
        self.admin_command(&["add", name, "--role", role], &format!("{password}\n"))
    }

    /// Runs `carecall admin ARGS` on this server's data directory, with
    /// `stdin` piped in.
    pub fn admin_command(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(binary())
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .envs(self.data_dir.database_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run carecall admin");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).expect("write stdin");
        drop(pipe);
        child.wait_with_output().expect("carecall admin")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the server's log goes (with `json_log` or `text_log`).
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.path().join(LOG_FILE)
    }

    /// The address pages are served on (HTTPS when it is on).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let host = self
            .base_url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        host.parse().expect("an HTTP address")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join("carecall.db")
    }
}

impl Server {
    /// Stops the server with SIGTERM, as `systemctl stop` or an upgrade
    /// does, and waits for it to exit: how long it took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM not sent");
        let status = self.child.wait().expect("the server exits");
        assert!(
            status.success(),
            "the server exited with {status} on SIGTERM"
        );
        started.elapsed()
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_addr().port()
    }

    /// Stops the server with SIGKILL, as a crash or power cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token in a join link.
pub fn token_of(link: &str) -> String {
    link.split_once("t=")
        .expect("link has a token")
        .1
        .to_owned()
}
