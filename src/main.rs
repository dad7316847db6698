//! `carecall`: the one binary a hub runs. It parses the command line and the
//! configuration, builds the media plane, signalling and admin plane, and wires
//! them together. Everything else lives in the workspace's crates.

mod accounts;
mod certs;
mod cli;
mod config;
mod https;
mod listen;
mod logs;
mod pem;
mod placement;
mod recording;
mod reload;
mod secret;
mod serve;
mod shutdown;
mod turn;

use std::process::ExitCode;

use clap::Parser;

use carecall_signalling::{JoinClaims, LinkSigner};
use cli::{Cli, Command, ConfigAction, HomeAction};
use config::{parse_ttl, Config};

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
            let name = name.unwrap_or_else(|| role.to_string());
            let claims = JoinClaims::lasting(&room, role, &name, ttl);
            let link = LinkSigner::new(&secret)
                .join_url(&config.base_url(), &claims)
                .map_err(|e| anyhow::anyhow!("cannot make a link for room {room:?}: {e}"))?;
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
            let counts = carecall_admin::backup::backup(&sqlite_file(&config)?, &file)?;
            println!("backed up to {}", file.display());
            print_counts(&counts);
            Ok(())
        }
        Command::Restore { file, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let _lock = serve::lock_data_dir(&config.data_dir)?;
            let counts = carecall_admin::backup::restore(&file, &sqlite_file(&config)?)?;
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
    let log = carecall_admin::CallLog::connect(&config.database())?;
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

/// The SQLite file `carecall backup` and `restore` copy; an error when the
/// hub keeps its records in PostgreSQL, which has its own tools.
fn sqlite_file(config: &config::Config) -> anyhow::Result<std::path::PathBuf> {
    match config.database() {
        carecall_admin::sql::Database::Sqlite(path) => Ok(path),
        carecall_admin::sql::Database::Postgres(_) => anyhow::bail!(
            "backup and restore copy the embedded SQLite file, and this hub keeps its \
             records in PostgreSQL (database.url): use pg_dump and pg_restore"
        ),
    }
}
