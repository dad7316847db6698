//! The command line: every subcommand and its options, as `carecall --help`
//! shows them. `main.rs` runs them.

use std::path::PathBuf;

use carecall_admin::AccountRole;
use carecall_signalling::Role;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "carecall",
    version,
    about = "Video consultations between care homes and the clinical hub"
)]
pub(crate) struct Cli {
    /// TOML configuration file (see deploy/ for an example).
    #[arg(long, global = true, env = "CARECALL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        action: AdminAction,
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
pub(crate) enum HomeAction {
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
pub(crate) enum ConfigAction {
    /// Check a configuration file: every mistake, with its key and line.
    Check {
        /// The file (default: the --config file).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum RecordingAction {
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

#[derive(Subcommand)]
pub(crate) enum AdminAction {
    /// Create an account. The password is asked for twice on a terminal, or
    /// read as the first line of standard input when that is piped.
    Add {
        /// Account name: letters, digits, '.', '-' or '_'.
        name: String,
        /// admin (the dashboard and everything), operator (answers the
        /// queue), clinician (takes calls, invites specialists) or
        /// specialist (joins when invited).
        #[arg(long, default_value = "admin")]
        role: AccountRole,
    },
    /// Set a new password (asked for as `add` does); the account's
    /// sessions end.
    Passwd {
        /// Account name.
        name: String,
    },
    /// Stop an account signing in; its sessions end.
    Disable {
        /// Account name.
        name: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// Account name.
        name: String,
    },
    /// Remove an account and its sessions (its name stays in the history).
    Delete {
        /// Account name.
        name: String,
    },
    /// List an account's signed-in sessions, or end them all with `--end`.
    Sessions {
        /// Account name.
        name: String,
        /// End every session: the account must sign in again.
        #[arg(long)]
        end: bool,
    },
}
