//! Environment overrides. Each `CARECALL_*` variable names one key of the
//! TOML file; its value is put at that key in the file's table before the
//! table is deserialised, so a value from the environment meets the same
//! serde rules, with the same messages, as one in a file. Each variable is
//! named once, in [`VARS`] (and `[limits]`'s, which follow their keys).

use anyhow::{bail, Context};
use toml::{Table, Value};

/// How a variable's text becomes a TOML value.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A string, as it is (addresses, paths and names are checked by serde).
    Text,
    /// A string, or the key left unset when the variable is empty.
    TextOrUnset,
    /// A string, or the key left unset when the variable is empty or only
    /// spaces.
    TextOrUnsetIfBlank,
    /// A whole number.
    Number,
    /// `true` or `false`.
    Switch,
    /// Comma-separated strings, blanks dropped.
    List,
}

use Kind::*;

/// Every variable, the TOML key it sets and how its text is read.
const VARS: &[(&str, &str, Kind)] = &[
    ("CARECALL_HTTP_ADDR", "http_addr", Text),
    ("CARECALL_PUBLIC_URL", "public_url", Text),
    ("CARECALL_DATA_DIR", "data_dir", Text),
    ("CARECALL_DATABASE_URL", "database.url", TextOrUnset),
    ("CARECALL_RELAY_ADDR", "relay.addr", TextOrUnset),
    (
        "CARECALL_RELAY_PUBLIC_ADDR",
        "relay.public_addr",
        TextOrUnset,
    ),
    ("CARECALL_RELAY_NAME", "relay.name", TextOrUnset),
    ("CARECALL_RELAY_CERT", "relay.cert", TextOrUnset),
    ("CARECALL_RELAY_KEY", "relay.key", TextOrUnset),
    ("CARECALL_RELAY_HUB_CA", "relay.hub_ca", TextOrUnset),
    ("CARECALL_LINK_SECRET", "link_secret", Text),
    ("CARECALL_LINK_SECRET_FILE", "link_secret_file", Text),
    ("CARECALL_MODE", "mode", Text),
    ("CARECALL_METRICS_TOKEN", "metrics_token", TextOrUnset),
    ("CARECALL_TIMEZONE", "timezone", Text),
    ("CARECALL_LOG_FORMAT", "log_format", Text),
    ("CARECALL_LOG_LEVEL", "log_level", Text),
    ("CARECALL_MEDIA_PORT", "media.port", Number),
    ("CARECALL_MEDIA_ANNOUNCE", "media.announce", List),
    ("CARECALL_MEDIA_ICE_TCP", "media.ice_tcp", Switch),
    ("CARECALL_MEDIA_TCP_PORT", "media.tcp_port", Number),
    ("CARECALL_MEDIA_WORKERS", "media.workers", Number),
    (
        "CARECALL_MEDIA_MAX_PARTICIPANTS",
        "media.max_participants",
        Number,
    ),
    (
        "CARECALL_MEDIA_BANDWIDTH_ESTIMATION",
        "media.bandwidth_estimation",
        Switch,
    ),
    ("CARECALL_TURN_ENABLED", "turn.enabled", Switch),
    ("CARECALL_TURN_PORT", "turn.port", Number),
    ("CARECALL_TURN_TLS_PORT", "turn.tls_port", Number),
    ("CARECALL_TURN_CERT", "turn.cert", Text),
    ("CARECALL_TURN_KEY", "turn.key", Text),
    ("CARECALL_TURN_HOST", "turn.host", TextOrUnset),
    ("CARECALL_TURN_SECRET", "turn.secret", Text),
    ("CARECALL_TURN_SECRET_FILE", "turn.secret_file", Text),
    ("CARECALL_TURN_URLS", "turn.urls", List),
    (
        "CARECALL_HOOKS_GIVE_UP_HOURS",
        "hooks.give_up_after_hours",
        Number,
    ),
    (
        "CARECALL_HOOKS_MAX_BACKOFF_SECS",
        "hooks.max_backoff_secs",
        Number,
    ),
    ("CARECALL_HOOKS_TIMEOUT_SECS", "hooks.timeout_secs", Number),
    (
        "CARECALL_QUEUE_NO_ANSWER_SECS",
        "queue.no_answer_secs",
        Number,
    ),
    ("CARECALL_HUB_PHONE", "queue.hub_phone", TextOrUnsetIfBlank),
    ("CARECALL_QUEUE_NAMES", "queue.named_queues", List),
    ("CARECALL_HTTPS_ENABLED", "https.enabled", Switch),
    ("CARECALL_HTTPS_ADDR", "https.addr", Text),
    ("CARECALL_HTTPS_CERT", "https.cert", Text),
    ("CARECALL_HTTPS_KEY", "https.key", Text),
    ("CARECALL_RECORDING_ENABLED", "recording.enabled", Switch),
    ("CARECALL_RECORDING_DIR", "recording.dir", Text),
    ("CARECALL_RECORDING_SECRET", "recording.secret", Text),
    (
        "CARECALL_RECORDING_SECRET_FILE",
        "recording.secret_file",
        Text,
    ),
    ("CARECALL_RECORDING_PLAIN", "recording.plain", Switch),
    (
        "CARECALL_RECORDING_RETENTION_DAYS",
        "recording.retention_days",
        Number,
    ),
    (
        "CARECALL_RECORDING_DOWNLOAD_HOURS",
        "recording.download_hours",
        Number,
    ),
];

/// One more record-hook receiver, beside the file's: the three go together
/// (the format may be left out).
const HOOK_URL: &str = "CARECALL_HOOK_URL";
const HOOK_SECRET: &str = "CARECALL_HOOK_SECRET";
const HOOK_FORMAT: &str = "CARECALL_HOOK_FORMAT";

/// A variable that is set: its name and the value it puts at its key.
pub(super) struct Override {
    pub(super) name: String,
    key: String,
    value: Option<Value>,
}

impl Override {
    /// Puts the value at the key in `table` (or, for a blank optional,
    /// takes the key out so its default holds).
    pub(super) fn apply(&self, table: &mut Table) {
        let mut parts: Vec<&str> = self.key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut at = table;
        for part in parts {
            let next = at.entry(part).or_insert_with(|| Value::Table(Table::new()));
            if !next.is_table() {
                // A file that gave a section a plain value: the override
                // replaces it, and serde says what the section should be.
                *next = Value::Table(Table::new());
            }
            let Value::Table(next) = next else {
                unreachable!("made a table above")
            };
            at = next;
        }
        if last == "endpoints" {
            // The hook receiver is added beside the file's, not instead.
            if let Some(Value::Table(endpoint)) = &self.value {
                let list = at.entry(last).or_insert_with(|| Value::Array(Vec::new()));
                match list {
                    Value::Array(list) => list.push(Value::Table(endpoint.clone())),
                    other => *other = Value::Array(vec![Value::Table(endpoint.clone())]),
                }
            }
            return;
        }
        match &self.value {
            Some(v) => {
                at.insert(last.to_owned(), v.clone());
            }
            None => {
                at.remove(last);
            }
        }
    }
}

/// The variables `var` finds set, in table order, each read as its kind.
/// A number or switch that does not read is an error naming the variable.
pub(super) fn overrides(var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<Override>> {
    let mut set = Vec::new();
    let limits = limit_vars()?;
    let all = VARS
        .iter()
        .map(|(name, key, kind)| ((*name).to_owned(), (*key).to_owned(), *kind))
        .chain(limits);
    for (name, key, kind) in all {
        let Some(text) = var(&name) else { continue };
        let value = read(&name, &text, kind)?;
        set.push(Override { name, key, value });
    }
    match (var(HOOK_URL), var(HOOK_SECRET)) {
        (Some(url), Some(secret)) => {
            let mut endpoint = Table::new();
            endpoint.insert("url".into(), Value::String(url));
            endpoint.insert("secret".into(), Value::String(secret));
            if let Some(format) = var(HOOK_FORMAT) {
                endpoint.insert("format".into(), Value::String(format));
            }
            set.push(Override {
                name: format!("{HOOK_URL}, {HOOK_SECRET} and {HOOK_FORMAT}"),
                key: "hooks.endpoints".into(),
                value: Some(Value::Table(endpoint)),
            });
        }
        (None, None) => {}
        _ => bail!("{HOOK_URL} and {HOOK_SECRET} go together"),
    }
    Ok(set)
}

/// `CARECALL_LIMITS_<KEY>` for every key of `[limits]`, read as the kind
/// of its default (a number, or a comma-separated list).
fn limit_vars() -> anyhow::Result<Vec<(String, String, Kind)>> {
    let Value::Table(limits) = Value::try_from(super::LimitsSection::default())? else {
        bail!("limits are not a table");
    };
    Ok(limits
        .iter()
        .map(|(key, default)| {
            let kind = match default {
                Value::Array(_) => List,
                Value::Boolean(_) => Switch,
                Value::String(_) => Text,
                _ => Number,
            };
            (
                format!("CARECALL_LIMITS_{}", key.to_ascii_uppercase()),
                format!("limits.{key}"),
                kind,
            )
        })
        .collect())
}

/// `text` as a value of `kind`; `None` is an empty optional (unset).
fn read(name: &str, text: &str, kind: Kind) -> anyhow::Result<Option<Value>> {
    Ok(Some(match kind {
        Text => Value::String(text.to_owned()),
        TextOrUnset if text.is_empty() => return Ok(None),
        TextOrUnsetIfBlank if text.trim().is_empty() => return Ok(None),
        TextOrUnset | TextOrUnsetIfBlank => Value::String(text.to_owned()),
        Number => Value::Integer(
            text.trim()
                .parse()
                .with_context(|| format!("{name}: {text:?} is not a whole number"))?,
        ),
        Switch => Value::Boolean(
            text.trim()
                .parse()
                .with_context(|| format!("{name}: {text:?} is not true or false"))?,
        ),
        List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_named_once_and_sets_its_own_key() {
        let limits = limit_vars().unwrap();
        let mut names: Vec<String> = VARS.iter().map(|v| v.0.to_owned()).collect();
        let mut keys: Vec<String> = VARS.iter().map(|v| v.1.to_owned()).collect();
        names.extend(limits.iter().map(|v| v.0.clone()));
        keys.extend(limits.iter().map(|v| v.1.clone()));
        let (n, k) = (names.len(), keys.len());
        names.sort();
        names.dedup();
        keys.sort();
        keys.dedup();
        assert_eq!((names.len(), keys.len()), (n, k));
        assert!(
            limits.len() > 20,
            "every limit has its variable: {limits:?}"
        );
    }

    #[test]
    fn an_empty_optional_unsets_the_files_value() {
        let file = "metrics_token = \"t\"\n[queue]\nhub_phone = \"0113 000 0000\"";
        let with = |name: &str, value: &str| {
            let mut table: Table = file.parse().unwrap();
            for o in overrides(&|k: &str| (k == name).then(|| value.into())).unwrap() {
                o.apply(&mut table);
            }
            table
        };
        let phone = |t: &Table| t["queue"].as_table().unwrap().get("hub_phone").cloned();
        assert_eq!(phone(&with("CARECALL_HUB_PHONE", " ")), None);
        assert_eq!(
            with("CARECALL_METRICS_TOKEN", "").get("metrics_token"),
            None
        );
        // Spaces are a token, as they always were: never an open /metrics.
        assert_eq!(
            with("CARECALL_METRICS_TOKEN", " ").get("metrics_token"),
            Some(&Value::String(" ".into()))
        );
    }
}
