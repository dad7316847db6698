//! `carecall recording list|export`: recordings from the command line.

use std::path::PathBuf;

use anyhow::{bail, Context};
use carecall_admin::CallLog;

use crate::cli::RecordingAction;
use crate::config::Config;

pub(crate) fn run(action: RecordingAction, mut config: Config) -> anyhow::Result<()> {
    match action {
        RecordingAction::List { data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let log = CallLog::connect(&config.database())?;
            for r in log.recordings()? {
                println!(
                    "{}  {:<8}  room {}  started {}  {}",
                    r.id,
                    r.state,
                    r.room,
                    jiff::Timestamp::from_millisecond(r.started_at_ms)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    r.duration_ms
                        .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                        .unwrap_or_default(),
                );
            }
            Ok(())
        }
        RecordingAction::Export { id, out, data_dir } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let log = CallLog::connect(&config.database())?;
            let Some(r) = log.recording(&id)? else {
                bail!("no recording {id:?} in {}", config.data_dir.display());
            };
            if r.state != "ready" {
                bail!(
                    "recording {id} is {}: there is no finished file to export",
                    r.state
                );
            }
            let key = if r.encrypted {
                config.recording.plain = false;
                config.recording_key()?
            } else {
                None
            };
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.webm")));
            let n = carecall_sfu::recording::export_to_file(&r.path, key.as_ref(), &out)
                .with_context(|| format!("exporting {} to {}", r.path.display(), out.display()))?;
            if let Some(expected) = r.webm_bytes.filter(|&b| b as u64 != n) {
                bail!("exported {n} bytes but the recording had {expected}: the file was changed");
            }
            let who = format!(
                "command line ({})",
                std::env::var("USER").unwrap_or_else(|_| "unknown user".into())
            );
            let subject = format!("consultation {}, recording {id}", r.consultation);
            log.audit(
                &who,
                "this machine",
                "recording.exported",
                &subject,
                std::time::SystemTime::now(),
            )?;
            println!("{} ({n} bytes)", out.display());
            Ok(())
        }
    }
}
