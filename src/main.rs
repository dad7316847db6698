//! `carecall`: the one binary a hub runs. It parses the command line and the
//! configuration, builds the media plane, signalling and admin plane, and wires
//! them together. Everything else lives in the workspace's crates.

mod accounts;
mod certs;
mod config;
mod https;
mod listen;
mod logs;
mod pem;
mod recording;
mod reload;
mod secret;
mod serve;
mod shutdown;
mod turn;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use carecall_signalling::{JoinClaims, LinkSigner, Role};
use config::{parse_ttl, Config};

#[derive(Parser)]
#[command(
    name = "carecall",
    version,
    about = "Video consultations between care homes and the clinical hub"
)]
struct Cli {
    /// TOML configuration file (see deploy/ for an example).
    #[arg(long, global = true, env = "CARECALL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: pages, signalling and the media plane.
    Serve {
        /// HTTP listen address (e.g. 127.0.0.1:8080).
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
        /// Data directory (SQLite call log, generated link secret).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// UDP port of the first media worker (0 picks free ports).
        #[arg(long)]
        media_port: Option<u16>,
    },
    /// Print one signed join link on standard output.
    Link {
        /// Room name: letters, digits, '-', '_' or '.'.
        #[arg(long)]
        room: String,
        /// home, operator, clinician, specialist or observer.
        #[arg(long)]
        role: Role,
        /// Name shown under the participant's video (default: the role).
        #[arg(long)]
        name: Option<String>,
        /// How long the link works: e.g. 30m, 2h, 7d.
        #[arg(long, default_value = "2h")]
        ttl: String,
        /// Data directory of the server that will honour the link.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Base URL for the link (default: the configured public URL).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Manage admin accounts (the dashboard's sign-in).
    Admin {
        #[command(subcommand)]
        action: accounts::AdminAction,
        /// Data directory of the server the account is on.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Print a new record-hook signing secret, for a `[[hooks.endpoints]]`
    /// entry and the receiver that checks its signatures.
    HookSecret,
    /// Copy the database (call history, accounts, hook outbox, recordings'
    /// metadata) to FILE while the server runs. Recordings' files are
    /// copied separately (docs/backup.md).
    Backup {
        /// The backup file to write; it must not exist.
        file: PathBuf,
        /// Data directory of the server.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Put a backup made by `carecall backup` back, with the server stopped.
    /// The current database is kept as carecall.db.before-restore.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Data directory of the server.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Care homes and their permanent "Call the hub" links.
    Home {
        #[command(subcommand)]
        action: HomeAction,
    },
    /// Configuration files.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Recordings kept by this hub.
    Recording {
        #[command(subcommand)]
        action: RecordingAction,
    },
}

#[derive(Subcommand)]
enum HomeAction {
    /// Add a home and print its link.
    Add {
        /// The home's name, as the hub sees it.
        name: String,
    },
    /// List homes with their ids.
    List,
    /// Rename a home.
    Rename {
        /// The home's id (from `carecall home list`).
        id: String,
        /// Its new name.
        name: String,
    },
    /// Withdraw a home's link.
    Revoke {
        /// The home's id (from `carecall home list`).
        id: String,
    },
    /// Give a home a new link (the old one stops working) and print it.
    Reissue {
        /// The home's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check a configuration file: every mistake, with its key and line.
    Check {
        /// The file (default: the --config file).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RecordingAction {
    /// List recordings, newest first.
    List {
        /// Data directory of the server that made them.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write one recording as a plain WebM file (decrypting a sealed one
    /// with the hub's recording secret).
    Export {
        /// The recording's id (from `carecall recording list` or its event).
        id: String,
        /// The file to write (default: ID.webm here); it must not exist.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Data directory of the server that made it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checking a file must not fail on the file before it can explain it.
    if let Command::Config {
        action: ConfigAction::Check { file },
    } = &cli.command
    {
        return config_check(file.as_deref().or(cli.config.as_deref()));
    }
    let result = Config::load(cli.config.as_deref()).and_then(|config| {
        logs::init(config.log_format, &config.log_level);
        run(cli, config)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carecall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, mut config: Config) -> anyhow::Result<()> {
    let file = cli.config.clone();
    match cli.command {
        Command::Serve {
            http_addr,
            data_dir,
            media_port,
        } => {
            if let Some(a) = http_addr {
                config.http_addr = a;
            }
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if let Some(p) = media_port {
                config.media.port = p;
            }
            serve::serve(config, file)
        }
        Command::Link {
            room,
            role,
            name,
            ttl,
            data_dir,
            base_url,
        } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if let Some(u) = base_url {
                config.public_url = Some(u);
            }
            let secret = secret::link_secret(config.link_secret.as_deref(), &config.data_dir)?;
            let ttl = parse_ttl(&ttl)?;
            let link = make_link(&config, &LinkSigner::new(&secret), &room, role, name, ttl)?;
            println!("{link}");
            Ok(())
        }
        Command::Admin { action, data_dir } => accounts::run(action, data_dir, config),
        Command::HookSecret => {
            println!("{}", carecall_admin::hooks::HookSecret::generate());
            Ok(())
        }
        Command::Recording { action } => recording::run(action, config),
        Command::Config { .. } => unreachable!("handled before the configuration is loaded"),
        Command::Home { action } => homes(action, &config),
        Command::Backup { file, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let counts =
                carecall_admin::backup::backup(&config.data_dir.join("carecall.db"), &file)?;
            println!("backed up to {}", file.display());
            print_counts(&counts);
            Ok(())
        }
        Command::Restore { file, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let _lock = serve::lock_data_dir(&config.data_dir)?;
            let counts =
                carecall_admin::backup::restore(&file, &config.data_dir.join("carecall.db"))?;
            println!(
                "restored {} into {}",
                file.display(),
                config.data_dir.display()
            );
            print_counts(&counts);
            Ok(())
        }
    }
}

/// `carecall config check [FILE]`: exit 0 when good, 1 with every problem.
fn config_check(file: Option<&std::path::Path>) -> ExitCode {
    let Some(file) = file else {
        eprintln!(
            "carecall: give the file to check (carecall config check FILE, or --config FILE)"
        );
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("carecall: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let problems = config::check::check(&text);
    if problems.is_empty() {
        println!("{}: no problems found", file.display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{}: {} problem{}",
        file.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        println!("  {p}");
    }
    ExitCode::FAILURE
}

/// `carecall home …`: homes are kept in the hub's database.
fn homes(action: HomeAction, config: &Config) -> anyhow::Result<()> {
    let log = carecall_admin::CallLog::open(&config.data_dir.join("carecall.db"))?;
    let secret = secret::link_secret(config.link_secret.as_deref(), &config.data_dir)?;
    let links = carecall_admin::home_links::HomeLinks::new(&secret);
    let link = |h: &carecall_admin::Home| {
        format!(
            "{}/home?t={}",
            config.base_url(),
            links.token(&h.id, h.link_version)
        )
    };
    let now = jiff::Timestamp::now().as_millisecond();
    match action {
        HomeAction::Add { name } => {
            let home = log.add_home(&name, now)?;
            println!("{}  {}", home.id, home.name);
            println!("{}", link(&home));
        }
        HomeAction::List => {
            for h in log.homes()? {
                let state = if h.revoked_at_ms.is_some() {
                    "withdrawn"
                } else {
                    "active"
                };
                println!("{}  {:<9}  {}", h.id, state, h.name);
            }
        }
        HomeAction::Rename { id, name } => {
            if !log.rename_home(&id, &name)? {
                anyhow::bail!("no home {id:?} (see carecall home list)");
            }
            println!("{id}: now {}", name.trim());
        }
        HomeAction::Revoke { id } => {
            if !log.revoke_home(&id, now)? {
                anyhow::bail!("no active home {id:?} (see carecall home list)");
            }
            println!("{id}: link withdrawn");
        }
        HomeAction::Reissue { id } => {
            let Some(home) = log.reissue_home(&id, now)? else {
                anyhow::bail!("no home {id:?} (see carecall home list)");
            };
            println!("{}", link(&home));
        }
    }
    Ok(())
}

/// One line per table: `calls 12`.
fn print_counts(counts: &carecall_admin::backup::RowCounts) {
    for (table, n) in counts {
        println!("  {table} {n}");
    }
}

/// A join URL for `room` and `role`, valid for `ttl`.
pub(crate) fn make_link(
    config: &Config,
    signer: &LinkSigner,
    room: &str,
    role: Role,
    name: Option<String>,
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    let name = name.unwrap_or_else(|| role.to_string());
    let claims = JoinClaims::lasting(room, role, &name, ttl);
    let token = signer
        .sign(&claims)
        .map_err(|e| anyhow::anyhow!("cannot make a link for room {room:?}: {e}"))?;
    Ok(format!("{}/join?t={token}", config.base_url()))
}
