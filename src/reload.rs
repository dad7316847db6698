//! `SIGHUP` (`systemctl reload carecall`): the configuration file is read
//! again and checked as `carecall config check` does; what can change live
//! is put in force, and what cannot is named for the next restart. A file
//! with problems changes nothing: the running configuration stays, and the
//! log says why. (Certificates are reloaded on SIGHUP too: `certs.rs`.)

use std::path::PathBuf;

use carecall_admin::hooks::LiveReceivers;
use carecall_sfu::turn::TurnSecret;

use crate::config::Config;

/// How long credentials issued with a rotated-out TURN secret keep
/// working: as long as credentials last.
const TURN_OVERLAP: std::time::Duration = crate::turn::CREDENTIAL_TTL;

/// What a reload may change, and the configuration running now.
pub struct Reloadable {
    /// The `--config` file, if there is one.
    pub file: Option<PathBuf>,
    /// The configuration in force.
    pub running: Config,
    /// The record-hook receivers in force.
    pub receivers: LiveReceivers,
    /// Seals hook events at rest (kept across reloads).
    pub record_key: carecall_admin::records::RecordKey,
    /// The TURN secret, when the hub issues TURN credentials.
    pub turn_secret: Option<TurnSecret>,
    /// The service hours in force.
    pub hours: carecall_admin::service_hours::LiveHours,
    /// The hub's time zone (a change waits for a restart).
    pub zone: jiff::tz::TimeZone,
    /// The limits in force at each public surface.
    pub limits: crate::config::LiveLimits,
}

/// What one reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Settings put in force.
    pub applied: Vec<&'static str>,
    /// Settings that changed but take effect at the next restart.
    pub at_restart: Vec<&'static str>,
}

impl Reloadable {
    /// Reloads on every SIGHUP from `hangups`, for as long as the server
    /// runs.
    pub async fn on_hangup(mut self, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            match self.reload() {
                Ok(r) if r.applied.is_empty() && r.at_restart.is_empty() => {
                    tracing::info!("SIGHUP: configuration unchanged")
                }
                Ok(r) => {
                    tracing::info!(applied = ?r.applied, at_next_restart = ?r.at_restart, "configuration reloaded");
                    if !r.at_restart.is_empty() {
                        tracing::warn!(settings = ?r.at_restart, "changed settings that take effect only at the next restart");
                    }
                }
                Err(why) => tracing::error!(
                    reason = %why,
                    "configuration not reloaded: the running configuration stays"
                ),
            }
        }
    }

    /// Reads, checks and applies the file once.
    pub fn reload(&mut self) -> Result<Reloaded, String> {
        let Some(file) = self.file.clone() else {
            return Err("no configuration file (--config) to read again".into());
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let problems = crate::config::check::check(&text);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(format!("{}: {}", file.display(), list.join("; ")));
        }
        let mut new = Config::load(Some(&file)).map_err(|e| format!("{e:#}"))?;
        // Set on the command line, not in the file: they stay.
        new.http_addr = self.running.http_addr;
        new.data_dir = self.running.data_dir.clone();
        new.media.port = self.running.media.port;
        let refusals: Vec<String> = new
            .limits
            .problems()
            .into_iter()
            .chain(new.production_problems())
            .map(|(k, why)| format!("{k}: {why}"))
            .collect();
        if !refusals.is_empty() {
            return Err(refusals.join("; "));
        }
        // Everything is made first: a setting that cannot be used leaves
        // all of them as they were.
        let hooks = if new.hooks != self.running.hooks {
            let mut options = new.hook_options().map_err(|e| format!("{e:#}"))?;
            options.seal = Some(self.record_key.clone());
            Some(options)
        } else {
            None
        };
        let hours_changed =
            format!("{:?}", new.service_hours) != format!("{:?}", self.running.service_hours);
        let hours = if hours_changed {
            let hours = new.service_hours.hours(self.zone.clone());
            Some(hours.map_err(|e| format!("{e:#}"))?)
        } else {
            None
        };
        let mut done = Reloaded::default();
        if new.log_level != self.running.log_level {
            crate::logs::set_level(&new.log_level)?;
            done.applied.push("log_level");
        }
        if let Some(options) = hooks {
            self.receivers.replace(options);
            done.applied.push("hooks");
        }
        if let Some(hours) = hours {
            self.hours.replace(hours);
            done.applied.push("service_hours");
        }
        if self.limits.replace(&self.running.limits, &new.limits) {
            done.applied.push("limits");
        }
        if new.turn.secret != self.running.turn.secret {
            match (&self.turn_secret, new.turn.secret.as_deref()) {
                (Some(secret), Some(fresh)) => {
                    let until = carecall_signalling::token::unix_now() + TURN_OVERLAP.as_secs();
                    secret.rotate(fresh.as_bytes(), until);
                    done.applied.push("turn.secret");
                }
                _ => done.at_restart.push("turn.secret"),
            }
        }
        done.at_restart.extend(needs_restart(&self.running, &new));
        self.running = new;
        Ok(done)
    }
}

/// The settings that differ between `old` and `new` and are read only at
/// start.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let same =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
    let mut changed = Vec::new();
    let mut check = |name, equal: bool| {
        if !equal {
            changed.push(name);
        }
    };
    check("public_url", old.public_url == new.public_url);
    check("mode", same(&old.mode, &new.mode));
    check("timezone", old.timezone == new.timezone);
    check("log_format", same(&old.log_format, &new.log_format));
    check("link_secret", old.link_secret == new.link_secret);
    check("metrics_token", old.metrics_token == new.metrics_token);
    check("media", same(&old.media, &new.media));
    let turn = |c: &Config| {
        let mut t = c.turn.clone();
        t.secret = None;
        format!("{t:?}")
    };
    check("turn", turn(old) == turn(new));
    check(
        "recording",
        same(&old.recording, &new.recording) && old.recording.secret == new.recording.secret,
    );
    check("https", same(&old.https, &new.https));
    check("queue", same(&old.queue, &new.queue));
    let (a, b) = (&old.limits, &new.limits);
    check(
        "limits.sign_in_concurrent_checks",
        a.sign_in_concurrent_checks == b.sign_in_concurrent_checks,
    );
    check(
        "limits.trusted_proxies",
        a.trusted_proxies == b.trusted_proxies,
    );
    changed
}
