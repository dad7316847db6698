//! `carecall admin add|passwd|disable|enable|delete|sessions`: accounts
//! from the command line, on the hub itself. Taking access away (a new
//! password, disabling, deleting) also ends the account's sessions.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use crate::cli::AdminAction;
use crate::config::Config;
use carecall_admin::Accounts;

/// Runs one account command against the database in `data_dir` (or the
/// configured data directory).
pub(crate) fn run(
    action: AdminAction,
    data_dir: Option<PathBuf>,
    mut config: Config,
) -> anyhow::Result<()> {
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    crate::secret::make_data_dir(&config.data_dir)?;
    let accounts = Accounts::connect(&config.database())?;
    match action {
        AdminAction::Add { name, role } => {
            let password = read_password(&name)?;
            accounts.add(&name, &password, role)?;
            let page = if role.is_admin() {
                "admin"
            } else {
                "admin/hub"
            };
            println!(
                "{role} account {name} created; sign in at {}/{page}",
                config.base_url()
            );
        }
        AdminAction::Passwd { name } => {
            let password = read_password(&name)?;
            accounts.set_password(&name, &password)?;
            println!("password of {name} changed; its sessions ended");
        }
        AdminAction::Disable { name } => {
            accounts.set_disabled(&name, true)?;
            println!("{name} disabled; its sessions ended");
        }
        AdminAction::Enable { name } => {
            accounts.set_disabled(&name, false)?;
            println!("{name} may sign in again");
        }
        AdminAction::Delete { name } => {
            accounts.delete(&name)?;
            println!("{name} deleted");
        }
        AdminAction::Sessions { name, end } => {
            let sessions = accounts.sessions_of(&name)?;
            if end {
                let ended = accounts.end_sessions(&name)?;
                println!("{ended} session(s) of {name} ended");
                return Ok(());
            }
            println!("{} session(s) of {name}", sessions.len());
            for s in sessions {
                let until = jiff::Timestamp::from_millisecond(s.expires_at_ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                println!("  until {until}");
            }
        }
    }
    Ok(())
}

/// A password: asked for twice on a terminal, else the first line of
/// standard input.
fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "))?;
        let again = rpassword::prompt_password("Same password again: ")?;
        anyhow::ensure!(
            first == again,
            "the two passwords differ; nothing was changed"
        );
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
