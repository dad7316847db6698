//! Configuration: embedded defaults, then a TOML file, then `CARECALL_*`
//! environment variables, then command-line flags (each overriding the last).
//! [`check`] explains every mistake in a file; [`Config::production_problems`]
//! is what production mode refuses to start with.

pub mod check;
mod env;
mod limits;
mod secret;
mod service_hours;

pub use limits::{LimitsSection, LiveLimits};
pub use service_hours::ServiceHoursSection;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

pub use secret::Secret;

/// Logs at info, with the WebRTC stack's chatter at warn.
pub const DEFAULT_LOG_LEVEL: &str = "info,str0m=warn,dimpl=warn";

/// Everything `carecall serve` needs. Every field has a default that works on a
/// laptop: `carecall serve` with no file gives a usable demo.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server (pages, WebSocket) listens. `CARECALL_HTTP_ADDR`.
    pub http_addr: SocketAddr,
    /// The base URL put in join links, e.g. `https://carecall.hub.example`.
    /// Default: `http://` + `http_addr`. `CARECALL_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// Holds the SQLite call log and the generated link secret. `CARECALL_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Link-signing secret. Default: generated once into `data_dir/link-secret`.
    /// `CARECALL_LINK_SECRET`.
    pub link_secret: Option<Secret>,
    /// A file holding the link secret (read at start; for secret stores).
    /// `CARECALL_LINK_SECRET_FILE`.
    pub link_secret_file: Option<PathBuf>,
    /// `development` (secrets generated into the data directory, self-signed
    /// certificates) or `production` (refuses to start without configured
    /// secrets and HTTPS). `CARECALL_MODE`.
    pub mode: Mode,
    /// Bearer token that `GET /metrics` requires; none: open to whoever
    /// reaches the HTTP address. `CARECALL_METRICS_TOKEN`.
    pub metrics_token: Option<Secret>,
    /// The hub's time zone (IANA name), for local times and the out-of-hours
    /// flag in the call history. `CARECALL_TIMEZONE`.
    pub timezone: String,
    /// How log lines are written to standard error: `text` for people,
    /// `json` (one object per line) for a log collector. `CARECALL_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Which log lines are written: a level (`info`, `debug`) or a list of
    /// them per module (`info,str0m=warn`). A reload changes it; `RUST_LOG`,
    /// when set, wins at start. `CARECALL_LOG_LEVEL`.
    pub log_level: String,
    /// The media plane.
    pub media: MediaSection,
    /// TURN, for networks that block UDP or all but TCP 443.
    pub turn: TurnSection,
    /// Record hooks: signed events for the hub's integration engine.
    pub hooks: HooksSection,
    /// Recording consultations (clinicians start and stop it in the call).
    pub recording: RecordingSection,
    /// HTTPS, which browsers need for the camera anywhere but localhost.
    pub https: HttpsSection,
    /// The hub's call queue (care homes calling in).
    pub queue: QueueSection,
    /// How much one client may take at each public surface.
    pub limits: LimitsSection,
    /// When the hub's services are open and what is in hours.
    pub service_hours: ServiceHoursSection,
    /// Where the hub's records are kept.
    pub database: DatabaseSection,
    /// The relay that lets a room span this node and the hub's others.
    pub relay: RelaySection,
}

/// `[relay]` in the TOML file: rooms spanning nodes (docs/scaling.md). Off
/// unless `addr` is set; then `cert`, `key` and `hub_ca` are needed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySection {
    /// UDP address of this node's relay (QUIC). With one, a join that
    /// reaches this node for a room another node with a relay hosts stays
    /// here, and the room spans both. `CARECALL_RELAY_ADDR`.
    pub addr: Option<SocketAddr>,
    /// The address other nodes reach the relay at, when not `addr` (an
    /// unspecified address, or NAT). `CARECALL_RELAY_PUBLIC_ADDR`.
    pub public_addr: Option<SocketAddr>,
    /// The name this node's certificate bears (other nodes check it).
    /// `CARECALL_RELAY_NAME`.
    pub name: Option<String>,
    /// This node's certificate (PEM), signed by the hub's CA.
    /// `CARECALL_RELAY_CERT`.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM). `CARECALL_RELAY_KEY`.
    pub key: Option<PathBuf>,
    /// The hub's CA certificate (PEM): only nodes it signed are linked.
    /// `CARECALL_RELAY_HUB_CA`.
    pub hub_ca: Option<PathBuf>,
}

impl RelaySection {
    /// The media plane's relay settings, the files read; `None` when the
    /// relay is off.
    pub fn settings(&self) -> anyhow::Result<Option<carecall_sfu::RelaySettings>> {
        let Some(listen) = self.addr else {
            return Ok(None);
        };
        let read = |what: &str, path: &Option<PathBuf>| -> anyhow::Result<Vec<u8>> {
            let path = path
                .as_ref()
                .with_context(|| format!("relay.addr is set but relay.{what} is not"))?;
            std::fs::read(path).with_context(|| format!("reading relay.{what} {}", path.display()))
        };
        if self.name.is_none() {
            bail!("relay.addr is set but relay.name (this node's certificate name) is not");
        }
        Ok(Some(carecall_sfu::RelaySettings {
            listen,
            cert_pem: read("cert", &self.cert)?,
            key_pem: read("key", &self.key)?,
            hub_ca_pem: read("hub_ca", &self.hub_ca)?,
        }))
    }
}

/// `[database]` in the TOML file (see `docs/scaling.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// A PostgreSQL that several nodes share (`postgres://user:password@host/name`
    /// or `host=… user=… dbname=…`). None: the embedded SQLite file
    /// `data_dir/carecall.db`. `CARECALL_DATABASE_URL`.
    pub url: Option<Secret>,
}

/// `[queue]` in the TOML file (see `docs/queue.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Seconds a home waits unanswered before it is shown the hub's phone
    /// number. `CARECALL_QUEUE_NO_ANSWER_SECS`.
    pub no_answer_secs: u64,
    /// The hub's phone number, shown to a home nobody has answered.
    /// `CARECALL_HUB_PHONE`.
    pub hub_phone: Option<String>,
    /// The queues a call can be passed to. `CARECALL_QUEUE_NAMES`
    /// (comma-separated).
    pub named_queues: Vec<String>,
    /// Hours after a consultation with a clinician ends before the
    /// dashboard shows it as "outcome missing" if none was recorded.
    pub outcome_due_hours: u64,
    /// The reasons an operator may choose from to decline a call.
    pub decline_reasons: Vec<String>,
    /// What a home may say its call is about.
    pub reason_categories: Vec<String>,
    /// Seconds within which an urgent call should be answered.
    pub urgent_target_secs: u64,
    /// Seconds within which a routine call should be answered.
    pub routine_target_secs: u64,
}

impl Default for QueueSection {
    fn default() -> Self {
        let d = carecall_admin::QueueSettings::default();
        QueueSection {
            no_answer_secs: d.no_answer_after.as_secs(),
            hub_phone: d.hub_phone,
            named_queues: d.named_queues,
            outcome_due_hours: d.outcome_due.as_secs() / 3600,
            decline_reasons: d.decline_reasons,
            reason_categories: d.reason_categories,
            urgent_target_secs: d.urgent_target.as_secs(),
            routine_target_secs: d.routine_target.as_secs(),
        }
    }
}

impl QueueSection {
    /// The settings the admin plane runs the queue with.
    pub fn settings(&self) -> carecall_admin::QueueSettings {
        carecall_admin::QueueSettings {
            no_answer_after: std::time::Duration::from_secs(self.no_answer_secs),
            hub_phone: self.hub_phone.clone(),
            named_queues: self.named_queues.clone(),
            outcome_due: std::time::Duration::from_secs(self.outcome_due_hours * 3600),
            decline_reasons: self.decline_reasons.clone(),
            reason_categories: self.reason_categories.clone(),
            urgent_target: std::time::Duration::from_secs(self.urgent_target_secs),
            routine_target: std::time::Duration::from_secs(self.routine_target_secs),
        }
    }
}

/// `[https]` in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsSection {
    /// Serve HTTPS; `http_addr` then only redirects to it.
    /// `CARECALL_HTTPS_ENABLED` (true/false).
    pub enabled: bool,
    /// Where HTTPS listens (443 in production). `CARECALL_HTTPS_ADDR`.
    pub addr: SocketAddr,
    /// Certificate chain and key (PEM), reloaded when the files change or on
    /// SIGHUP. Neither: a self-signed certificate is made at start
    /// (development only). `CARECALL_HTTPS_CERT`, `CARECALL_HTTPS_KEY`.
    pub cert: Option<PathBuf>,
    /// See `cert`.
    pub key: Option<PathBuf>,
}

impl Default for HttpsSection {
    fn default() -> Self {
        HttpsSection {
            enabled: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert: None,
            key: None,
        }
    }
}

/// How strict start-up is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Anything missing is generated: for trying it out and for tests.
    #[default]
    Development,
    /// Secrets must be configured and the hub reached over HTTPS.
    Production,
}

impl std::str::FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "development" => Ok(Mode::Development),
            "production" => Ok(Mode::Production),
            other => bail!("{other:?}: use development or production"),
        }
    }
}

/// The placeholder the example file puts where a secret goes.
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// `[recording]` in the TOML file (see `docs/recording.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingSection {
    /// Let clinicians record calls. `CARECALL_RECORDING_ENABLED` (true/false).
    pub enabled: bool,
    /// Where recordings are kept. Default: `data_dir/recordings`.
    /// `CARECALL_RECORDING_DIR`.
    pub dir: Option<PathBuf>,
    /// The secret recordings are sealed with (AES-256-GCM, key = SHA-256 of
    /// it). Default: generated once into `data_dir/recording-secret`; keep
    /// a copy with the backups, or sealed recordings cannot be opened.
    /// `CARECALL_RECORDING_SECRET`.
    pub secret: Option<Secret>,
    /// A file holding it. `CARECALL_RECORDING_SECRET_FILE`.
    pub secret_file: Option<PathBuf>,
    /// Write plain WebM instead (for a hub whose disk is already encrypted
    /// and wants files it can play directly). `CARECALL_RECORDING_PLAIN`.
    pub plain: bool,
    /// Days a recording is kept before its file is deleted.
    /// `CARECALL_RECORDING_RETENTION_DAYS`.
    pub retention_days: u64,
    /// Hours the download link in `recording.ready` works.
    /// `CARECALL_RECORDING_DOWNLOAD_HOURS`.
    pub download_hours: u64,
}

impl Default for RecordingSection {
    fn default() -> Self {
        RecordingSection {
            enabled: true,
            dir: None,
            secret: None,
            secret_file: None,
            plain: false,
            retention_days: 30,
            download_hours: 72,
        }
    }
}

/// `[hooks]` in the TOML file (events and signatures: `docs/hooks.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksSection {
    /// Receivers, as `[[hooks.endpoints]]` tables with `url` and `secret`
    /// (`whsec_` + base64; make one with `carecall hook-secret`). Each gets
    /// every event. `CARECALL_HOOK_URL` with `CARECALL_HOOK_SECRET` adds one.
    pub endpoints: Vec<HookEndpointSection>,
    /// Hours an event is retried before it becomes a dead letter.
    /// `CARECALL_HOOKS_GIVE_UP_HOURS`.
    pub give_up_after_hours: u64,
    /// The longest wait between two attempts, in seconds.
    /// `CARECALL_HOOKS_MAX_BACKOFF_SECS`.
    pub max_backoff_secs: u64,
    /// Seconds one attempt may take before it counts as failed.
    /// `CARECALL_HOOKS_TIMEOUT_SECS`.
    pub timeout_secs: u64,
}

impl Default for HooksSection {
    fn default() -> Self {
        HooksSection {
            endpoints: Vec::new(),
            give_up_after_hours: 24,
            max_backoff_secs: 600,
            timeout_secs: 10,
        }
    }
}

/// One `[[hooks.endpoints]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookEndpointSection {
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret shared with that receiver.
    pub secret: Secret,
    /// `standard` (carecall's JSON), or `fhir`: `consultation.ended` and
    /// `recording.ready` as FHIR R4 resources, the rest as standard JSON.
    #[serde(default)]
    pub format: HookFormat,
}

/// How one receiver wants events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFormat {
    /// carecall's own JSON.
    #[default]
    Standard,
    /// FHIR R4 where an event has a FHIR form.
    Fhir,
}

impl std::str::FromStr for HookFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "standard" => Ok(HookFormat::Standard),
            "fhir" => Ok(HookFormat::Fhir),
            other => bail!("{other:?}: use standard or fhir"),
        }
    }
}

/// `[turn]` in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnSection {
    /// Run the embedded TURN server. `CARECALL_TURN_ENABLED` (true/false).
    pub enabled: bool,
    /// UDP and TCP port of TURN; 0 picks free ports. `CARECALL_TURN_PORT`.
    pub port: u16,
    /// TURN over TLS port: 443 in production, so it passes firewalls that
    /// allow only web traffic. `CARECALL_TURN_TLS_PORT`.
    pub tls_port: u16,
    /// Certificate chain and key (PEM) for TURN over TLS. Default: a
    /// self-signed certificate generated at start (development only).
    /// `CARECALL_TURN_CERT`, `CARECALL_TURN_KEY`.
    pub cert: Option<PathBuf>,
    /// See `cert`.
    pub key: Option<PathBuf>,
    /// Host (name or address) in the TURN URLs given to browsers. Default:
    /// the host of `public_url`, else the first media address.
    /// `CARECALL_TURN_HOST`.
    pub host: Option<String>,
    /// Shared secret for TURN credentials. Default: generated once into
    /// `data_dir/turn-secret`. `CARECALL_TURN_SECRET`.
    pub secret: Option<Secret>,
    /// A file holding it. `CARECALL_TURN_SECRET_FILE`.
    pub secret_file: Option<PathBuf>,
    /// URLs of an external TURN server (e.g. coturn with
    /// `use-auth-secret` and the same `secret`) to hand out instead of the
    /// embedded one. `CARECALL_TURN_URLS` (comma-separated).
    pub urls: Vec<String>,
}

impl Default for TurnSection {
    fn default() -> Self {
        TurnSection {
            enabled: true,
            port: 3478,
            tls_port: 5349,
            cert: None,
            key: None,
            host: None,
            secret: None,
            secret_file: None,
            urls: Vec::new(),
        }
    }
}

/// See [`Config::log_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, span fields (room, participant) under `span`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => bail!("{other:?}: expected text or json"),
        }
    }
}

/// `[media]` in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSection {
    /// UDP port of the first media worker (worker i uses port + i); 0 picks
    /// free ports. `CARECALL_MEDIA_PORT`.
    pub port: u16,
    /// Addresses announced to browsers as ICE candidates. Empty: every address
    /// of this machine's interfaces. `CARECALL_MEDIA_ANNOUNCE` (comma-separated).
    pub announce: Vec<IpAddr>,
    /// Offer ICE over TCP (passive candidates) beside UDP, for networks that
    /// block UDP. `CARECALL_MEDIA_ICE_TCP` (true/false).
    pub ice_tcp: bool,
    /// TCP port of the first media worker for ICE-TCP (worker i uses
    /// tcp_port + i); 0 picks free ports. `CARECALL_MEDIA_TCP_PORT`.
    pub tcp_port: u16,
    /// Media worker threads; 0 means one per CPU core. `CARECALL_MEDIA_WORKERS`.
    pub workers: usize,
    /// Estimate each browser's downlink and pick video layers by it (see
    /// `docs/adaptation.md`); off, layers follow tile size alone, and a
    /// viewer on a thin link gets more than it can take.
    /// `CARECALL_MEDIA_BANDWIDTH_ESTIMATION` (true/false).
    pub bandwidth_estimation: bool,
    /// Participants this node hosts before it sends further joins to the
    /// hub's least-loaded other node, which spans the room back (needs a
    /// relay on both, docs/scaling.md); 0: no limit.
    /// `CARECALL_MEDIA_MAX_PARTICIPANTS`.
    pub max_participants: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("carecall-data"),
            link_secret: None,
            link_secret_file: None,
            mode: Mode::Development,
            metrics_token: None,
            timezone: "Europe/London".into(),
            log_format: LogFormat::Text,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            media: MediaSection::default(),
            turn: TurnSection::default(),
            hooks: HooksSection::default(),
            recording: RecordingSection::default(),
            https: HttpsSection::default(),
            queue: QueueSection::default(),
            limits: LimitsSection::default(),
            service_hours: ServiceHoursSection::default(),
            database: DatabaseSection::default(),
            relay: RelaySection::default(),
        }
    }
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            port: 40000,
            ice_tcp: true,
            tcp_port: 40000,
            announce: Vec::new(),
            workers: 0,
            bandwidth_estimation: true,
            max_participants: 0,
        }
    }
}

impl Config {
    /// Where the hub's records are kept: `database.url`'s PostgreSQL, or the
    /// SQLite file in the data directory.
    pub fn database(&self) -> carecall_admin::sql::Database {
        use carecall_admin::sql::Database;
        match &self.database.url {
            Some(url) => Database::Postgres(url.to_string()),
            None => Database::Sqlite(self.data_dir.join("carecall.db")),
        }
    }

    /// Loads the file (if any) with the environment's overrides put in it.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?,
            ),
            None => None,
        };
        let file = file.zip(text.as_deref());
        let mut config = Config::from_sources(file, |k| std::env::var(k).ok())?;
        config.read_secret_files()?;
        Ok(config)
    }

    /// The configuration in `file` (its path and text; none: the
    /// defaults) with the variables `var` finds set put in it (see
    /// [`env`]). The file's own mistakes are reported first, with their
    /// lines; then an override's, naming its variable.
    fn from_sources(
        file: Option<(&Path, &str)>,
        var: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let (path, text) = file.unwrap_or((Path::new(""), ""));
        let in_file = || format!("in config file {}", path.display());
        let from_file: Config = toml::from_str(text).with_context(in_file)?;
        let overrides = env::overrides(&var)?;
        if overrides.is_empty() {
            return Ok(from_file);
        }
        let file: toml::Table = toml::from_str(text).with_context(in_file)?;
        let with = |set: &[env::Override]| {
            let mut table = file.clone();
            for o in set {
                o.apply(&mut table);
            }
            toml::Value::Table(table).try_into::<Config>()
        };
        with(&overrides).or_else(|all| {
            // Which variable: the first that fails on its own.
            for o in &overrides {
                if let Err(e) = with(std::slice::from_ref(o)) {
                    bail!("{}: {e}", o.name);
                }
            }
            Err(all).context("the CARECALL_ variables together")
        })
    }

    /// The record-hook receivers and retry limits, secrets checked.
    pub fn hook_options(&self) -> anyhow::Result<carecall_admin::hooks::HookOptions> {
        use std::time::Duration;
        let endpoints = self
            .hooks
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if !(e.url.starts_with("https://") || e.url.starts_with("http://")) {
                    bail!(
                        "hooks.endpoints[{i}].url: {:?} is not an http(s) URL",
                        e.url
                    );
                }
                let secret = carecall_admin::hooks::HookSecret::parse(&e.secret)
                    .with_context(|| format!("hooks.endpoints[{i}].secret"))?;
                Ok(carecall_admin::hooks::HookEndpoint {
                    url: e.url.clone(),
                    secret,
                    fhir: e.format == HookFormat::Fhir,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(carecall_admin::hooks::HookOptions {
            endpoints,
            give_up_after: Duration::from_secs(self.hooks.give_up_after_hours * 3600),
            max_backoff: Duration::from_secs(self.hooks.max_backoff_secs.max(1)),
            timeout: Duration::from_secs(self.hooks.timeout_secs.max(1)),
            // Set by `serve`: reading the key may create the secret file,
            // which checking a configuration must not do.
            seal: None,
        })
    }

    /// Reads secrets given as files (`*_secret_file`) into their settings.
    pub fn read_secret_files(&mut self) -> anyhow::Result<()> {
        let read = |key: &str, path: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
            path.as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|s| s.trim().to_owned())
                        .with_context(|| format!("{key}: reading {}", p.display()))
                })
                .transpose()
        };
        if let Some(s) = read("link_secret_file", &self.link_secret_file)? {
            self.link_secret = Some(s.into());
        }
        if let Some(s) = read("turn.secret_file", &self.turn.secret_file)? {
            self.turn.secret = Some(s.into());
        }
        if let Some(s) = read("recording.secret_file", &self.recording.secret_file)? {
            self.recording.secret = Some(s.into());
        }
        Ok(())
    }

    /// What production mode refuses to start with: (key, why). Empty in
    /// development mode.
    pub fn production_problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.mode != Mode::Production {
            return problems;
        }
        let mut secret = |key: &str, value: &Option<Secret>, needed: bool| {
            if !needed {
                return;
            }
            match value {
                None => problems.push((
                    key.to_owned(),
                    format!("production mode needs {key} set (in the file, a {key}_file, or the environment): a secret generated into the data directory is for development"),
                )),
                Some(s) if s.contains(PLACEHOLDER) => problems.push((
                    key.to_owned(),
                    format!("{key} is still the example file's placeholder; make one with `openssl rand -hex 32`"),
                )),
                Some(s) if s.len() < 32 => problems.push((
                    key.to_owned(),
                    format!("{key} is {} characters; use at least 32", s.len()),
                )),
                Some(_) => {}
            }
        };
        secret("link_secret", &self.link_secret, true);
        secret(
            "turn.secret",
            &self.turn.secret,
            self.turn.enabled || !self.turn.urls.is_empty(),
        );
        secret(
            "recording.secret",
            &self.recording.secret,
            self.recording.enabled && !self.recording.plain,
        );
        match &self.metrics_token {
            None => problems.push((
                "metrics_token".into(),
                "production mode needs metrics_token: /metrics shows live room names and roles".into(),
            )),
            Some(t) if t.contains(PLACEHOLDER) || t.len() < 16 => problems.push((
                "metrics_token".into(),
                "metrics_token is the placeholder or under 16 characters; make one with `openssl rand -hex 16`".into(),
            )),
            Some(_) => {}
        }
        let https_url = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        if !self.https.enabled && !https_url {
            problems.push((
                "https.enabled".into(),
                "production mode needs HTTPS (https.enabled, or public_url on an HTTPS reverse proxy): browsers give the camera only to secure pages".into(),
            ));
        }
        if self.https.enabled && self.https.cert.is_none() && !https_url {
            problems.push((
                "https.cert".into(),
                "production mode needs a real certificate (https.cert and https.key), not the self-signed development one".into(),
            ));
        }
        problems
    }

    /// Where recordings go.
    pub fn recording_dir(&self) -> PathBuf {
        self.recording
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// The key recordings are sealed with; `None` when `recording.plain`.
    pub fn recording_key(&self) -> anyhow::Result<Option<carecall_sfu::recording::RecordingKey>> {
        if self.recording.plain {
            return Ok(None);
        }
        let secret =
            crate::secret::recording_secret(self.recording.secret.as_deref(), &self.data_dir)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &secret);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        Ok(Some(carecall_sfu::recording::RecordingKey::new(key)))
    }

    /// The key the clinical record's identifiers are sealed with: derived
    /// from the recording secret (another use of it), whether or not
    /// recordings themselves are sealed.
    pub fn record_key(&self) -> anyhow::Result<carecall_admin::records::RecordKey> {
        let secret =
            crate::secret::recording_secret(self.recording.secret.as_deref(), &self.data_dir)?;
        Ok(carecall_admin::records::RecordKey::derive(&secret))
    }

    /// The base URL for join links.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if self.https.enabled => format!("https://{}", self.https.addr),
            None => format!("http://{}", self.http_addr),
        }
    }
}

/// Parses a duration like `90s`, `30m`, `2h` or `7d`.
pub fn parse_ttl(s: &str) -> anyhow::Result<std::time::Duration> {
    let s = s.trim();
    let bad = || anyhow::anyhow!("bad duration {s:?}: use e.g. 30m, 2h, 7d (at most 365d)");
    let (split, _) = s.char_indices().last().ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n
        .checked_mul(per_unit)
        .filter(|s| *s <= 365 * 86_400)
        .ok_or_else(bad)?;
    if secs == 0 {
        bail!("a link that expires at once is useless: give a duration above zero");
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration in file `text` with the variables `var` finds.
    fn sources(text: Option<&str>, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        Config::from_sources(text.map(|t| (Path::new("test.toml"), t)), var)
    }

    #[test]
    fn env_overrides_file_values() {
        let file = "http_addr = \"0.0.0.0:9000\"\n[media]\nport = 5000";
        let c = sources(Some(file), |k| match k {
            "CARECALL_MEDIA_PORT" => Some("6000".into()),
            "CARECALL_MEDIA_ANNOUNCE" => Some("192.0.2.1, ::1".into()),
            "CARECALL_TURN_ENABLED" => Some("false".into()),
            "CARECALL_LIMITS_TURN_ALLOCATIONS_PER_ADDRESS" => Some("100".into()),
            "CARECALL_LIMITS_TRUSTED_PROXIES" => Some("127.0.0.1, ::1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.media.port, 6000);
        assert_eq!(c.media.announce.len(), 2);
        assert!(!c.turn.enabled);
        assert_eq!(c.limits.turn_allocations_per_address, 100);
        assert_eq!(c.limits.trusted_proxies.len(), 2);
        assert_eq!(
            c.limits.turn_allocations_per_credential,
            LimitsSection::default().turn_allocations_per_credential
        );
    }

    #[test]
    fn a_bad_override_is_an_error_naming_its_variable() {
        let fails = |name: &str, value: &str| {
            let e = sources(None, |k| (k == name).then(|| value.into())).expect_err(value);
            format!("{e:#}")
        };
        for (name, value) in [
            ("CARECALL_MEDIA_PORT", "x"),
            ("CARECALL_MEDIA_PORT", "70000"),
            ("CARECALL_HTTP_ADDR", "localhost"),
            ("CARECALL_MODE", "prod"),
            ("CARECALL_LIMITS_SIGN_IN_WINDOW_SECS", "x"),
            ("CARECALL_LIMITS_TRUSTED_PROXIES", "proxy"),
            ("CARECALL_HOOK_URL", "https://records.example/hook"),
        ] {
            let e = fails(name, value);
            assert!(e.contains(name), "{name}={value}: {e}");
        }
        // A mistake in the file is still reported with its line.
        let e = sources(Some("[media]\nport = \"x\""), |_| None).unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }

    #[test]
    fn the_hook_variables_add_a_receiver_beside_the_files() {
        let file = "[[hooks.endpoints]]\nurl = \"https://a.example/\"\nsecret = \"s1\"";
        let c = sources(Some(file), |k| match k {
            "CARECALL_HOOK_URL" => Some("https://b.example/".into()),
            "CARECALL_HOOK_SECRET" => Some("s2".into()),
            "CARECALL_HOOK_FORMAT" => Some("fhir".into()),
            _ => None,
        })
        .unwrap();
        let urls: Vec<_> = c.hooks.endpoints.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["https://a.example/", "https://b.example/"]);
        assert_eq!(c.hooks.endpoints[1].format, HookFormat::Fhir);
    }

    #[test]
    fn bandwidth_estimation_is_on_unless_switched_off() {
        let file = Some("[media]\nbandwidth_estimation = true");
        let with = |v: &str| {
            sources(file, |k| {
                (k == "CARECALL_MEDIA_BANDWIDTH_ESTIMATION").then(|| v.into())
            })
        };
        assert!(sources(file, |_| None).unwrap().media.bandwidth_estimation);
        assert!(!with("false").unwrap().media.bandwidth_estimation);
        assert!(Config::default().media.bandwidth_estimation);
        assert!(with("yes").is_err());
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let file = Some(
            r#"link_secret = "link-secret-aaaaaaaaaaaaaaaaaaaaaaaaa"
metrics_token = "metrics-token-bbbbbbbbbbbbbbbbbbbb"
[turn]
secret = "turn-secret-cccccccccccccccccccccccccc"
[recording]
secret = "recording-secret-dddddddddddddddddddddd"
[[hooks.endpoints]]
url = "https://records.example/hook"
secret = "whsec_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
"#,
        );
        let c = sources(file, |k| {
            (k == "CARECALL_LINK_SECRET").then(|| "from-env-ffffffffffffffff".into())
        })
        .unwrap();
        let shown = format!("{c:?}");
        for word in [
            "link-secret",
            "metrics-token",
            "turn-secret",
            "recording-secret",
            "whsec_",
            "from-env",
        ] {
            assert!(!shown.contains(word), "{word} shown in {shown}");
        }
        assert!(shown.contains("records.example"), "the rest is shown");
        assert_eq!(c.link_secret.as_deref(), Some("from-env-ffffffffffffffff"));
    }

    #[test]
    fn unknown_keys_are_errors_not_silently_ignored() {
        assert!(toml::from_str::<Config>("htp_addr = \"x\"").is_err());
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_ttl("45m").unwrap().as_secs(), 2700);
        assert!(parse_ttl("2").is_err());
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("").is_err());
        assert!(parse_ttl("2é").is_err());
        assert!(parse_ttl("300000000000000d").is_err());
    }
}
