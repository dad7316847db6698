//! `carecall config check FILE`: every mistake in a configuration file,
//! each with its key and line, not just the first the parser meets.
//!
//! Each setting is tried on its own against the real configuration type
//! (so the messages are serde's and cannot drift from what `serve` reads),
//! then the settings that parsed are checked together for what only makes
//! sense in context: files that must exist, pairs that go together, the
//! time zone, production mode's demands.

use std::path::Path;

use super::Config;

/// One mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting, as written in the file: `media.port`, `hooks.endpoints[1]`.
    pub key: String,
    /// Its line in the file, when it is in the file.
    pub line: Option<usize>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem in `text` (a TOML configuration file). Empty: it is good.
pub fn check(text: &str) -> Vec<Problem> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            return vec![Problem {
                key: "(syntax)".into(),
                line,
                message: e.message().to_owned(),
            }];
        }
    };
    let mut problems = Vec::new();
    let mut good = toml::Table::new();
    for (key, leaf) in leaves(&table) {
        match leaf.clone().try_into::<Config>() {
            Ok(_) => merge(&mut good, leaf),
            Err(e) => problems.push(Problem {
                line: line_of_key(text, &key),
                message: e.message().trim().to_owned(),
                key,
            }),
        }
    }
    let config: Config = match toml::Value::Table(good).try_into() {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem {
                key: "(file)".into(),
                line: None,
                message: e.message().to_owned(),
            });
            return problems;
        }
    };
    for (key, message) in in_context(&config) {
        problems.push(Problem {
            line: line_of_key(text, &key),
            key,
            message,
        });
    }
    // In the file's order; settings not in the file (production mode's
    // demands, say) last.
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    problems
}

/// Each setting alone, as a one-setting table: `(media.port, {media: {port}})`.
/// An entry of an array of tables (`[[hooks.endpoints]]`) is one setting.
fn leaves(table: &toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(section) => {
                for (k2, v2) in section {
                    let entries = match v2 {
                        toml::Value::Array(a)
                            if a.iter().all(toml::Value::is_table) && !a.is_empty() =>
                        {
                            a.len()
                        }
                        _ => 0,
                    };
                    if entries > 0 {
                        for (i, entry) in v2.as_array().into_iter().flatten().enumerate() {
                            let one = toml::Value::Array(vec![entry.clone()]);
                            out.push((format!("{k}.{k2}[{i}]"), nest(k, k2, one)));
                        }
                    } else {
                        out.push((format!("{k}.{k2}"), nest(k, k2, v2.clone())));
                    }
                }
            }
            other => {
                let mut t = toml::Table::new();
                t.insert(k.clone(), other.clone());
                out.push((k.clone(), toml::Value::Table(t)));
            }
        }
    }
    out
}

fn nest(section: &str, key: &str, value: toml::Value) -> toml::Value {
    let mut inner = toml::Table::new();
    inner.insert(key.to_owned(), value);
    let mut outer = toml::Table::new();
    outer.insert(section.to_owned(), toml::Value::Table(inner));
    toml::Value::Table(outer)
}

/// Adds a one-setting table into `into` (arrays of tables are appended to).
fn merge(into: &mut toml::Table, leaf: toml::Value) {
    let toml::Value::Table(leaf) = leaf else {
        return;
    };
    for (k, v) in leaf {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(new)) => {
                for (k2, v2) in new {
                    match (existing.get_mut(&k2), v2) {
                        (Some(toml::Value::Array(a)), toml::Value::Array(more)) => a.extend(more),
                        (_, v2) => {
                            existing.insert(k2, v2);
                        }
                    }
                }
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// What can only be judged with the whole configuration.
fn in_context(c: &Config) -> Vec<(String, String)> {
    let mut problems = c.limits.problems();
    problems.extend(c.service_hours.problems());
    if jiff::tz::TimeZone::get(&c.timezone).is_err() {
        problems.push((
            "timezone".into(),
            format!(
                "{:?} is not a known time zone (an IANA name such as Europe/London)",
                c.timezone
            ),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log_level) {
        problems.push((
            "log_level".into(),
            format!("{:?} is not a log level or list of them: {e}", c.log_level),
        ));
    }
    if let Some(addr) = c.relay.addr {
        if addr.ip().is_unspecified() && c.relay.public_addr.is_none() {
            problems.push((
                "relay.public_addr".into(),
                format!("relay.addr is {addr}: other nodes cannot reach that; set relay.public_addr to the address they reach this node at"),
            ));
        }
        if c.relay.name.is_none() {
            problems.push((
                "relay.name".into(),
                "relay.addr is set: relay.name (the name this node's certificate bears) is needed"
                    .into(),
            ));
        }
        for (name, file) in [
            ("cert", &c.relay.cert),
            ("key", &c.relay.key),
            ("hub_ca", &c.relay.hub_ca),
        ] {
            match file.as_deref() {
                None => problems.push((
                    format!("relay.{name}"),
                    format!("relay.addr is set: relay.{name} is needed"),
                )),
                Some(f) if !Path::new(f).is_file() => problems.push((
                    format!("relay.{name}"),
                    format!("{} does not exist or is not a file", f.display()),
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(u) = &c.public_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            problems.push(("public_url".into(), format!("{u:?} is not an http(s) URL")));
        }
    }
    for (key, cert, key_file) in [
        ("https", &c.https.cert, &c.https.key),
        ("turn", &c.turn.cert, &c.turn.key),
    ] {
        match (cert, key_file) {
            (Some(_), None) | (None, Some(_)) => problems.push((
                format!("{key}.cert"),
                format!("{key}.cert and {key}.key go together: set both or neither"),
            )),
            _ => {}
        }
        for (name, file) in [("cert", cert), ("key", key_file)] {
            if let Some(f) = file.as_deref().filter(|f| !Path::new(f).is_file()) {
                problems.push((
                    format!("{key}.{name}"),
                    format!("{} does not exist or is not a file", f.display()),
                ));
            }
        }
    }
    for (key, file) in [
        ("link_secret_file", &c.link_secret_file),
        ("turn.secret_file", &c.turn.secret_file),
        ("recording.secret_file", &c.recording.secret_file),
    ] {
        if let Some(f) = file
            .as_deref()
            .filter(|f| std::fs::read_to_string(f).is_err())
        {
            problems.push((key.into(), format!("{} cannot be read", f.display())));
        }
    }
    for (key, value) in [
        ("link_secret", &c.link_secret),
        ("turn.secret", &c.turn.secret),
        ("recording.secret", &c.recording.secret),
    ] {
        if let Some(s) = value.as_deref().filter(|s| s.len() < 32) {
            problems.push((
                key.into(),
                format!("{} characters; use at least 32", s.len()),
            ));
        }
    }
    if let Err(e) = c.hook_options() {
        problems.push(("hooks.endpoints".into(), format!("{e:#}")));
    }
    let mut with_files = c.clone();
    if with_files.read_secret_files().is_ok() {
        for (key, why) in with_files.production_problems() {
            if !problems.iter().any(|(k, _)| *k == key) {
                problems.push((key, why));
            }
        }
    }
    problems
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `key` (`a.b`, `a.b[i]` or `a`) is set, by reading the
/// file's headers and assignments.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let (path, index) = match key.split_once('[') {
        Some((p, i)) => (p, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (key, None),
    };
    let (section, name) = path.rsplit_once('.').unwrap_or(("", path));
    let mut current = String::new();
    let mut entries_seen = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|l| l.split_once("]]")) {
            current = h.0.trim().to_owned();
            if index.is_some() && current == path {
                if Some(entries_seen) == index {
                    return Some(i + 1);
                }
                entries_seen += 1;
            }
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            current = h.0.trim().to_owned();
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim().trim_matches('"');
        if (current == section && lhs == name) || (current.is_empty() && lhs == path) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_planted_mistakes_are_all_reported_with_their_keys_and_lines() {
        let text = "\
http_addr = \"127.0.0.1:8080\"
timezone = \"Mars/Olympus_Mons\"

[media]
port = \"forty thousand\"
workers = 2

[turn]
sceret = \"0123456789abcdef0123456789abcdef\"
";
        let problems = check(text);
        for p in &problems {
            println!("{p}");
        }
        let keys: Vec<(&str, Option<usize>)> =
            problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [
                ("timezone", Some(2)),
                ("media.port", Some(5)),
                ("turn.sceret", Some(9))
            ]
        );
        assert!(
            problems[1].message.contains("expected u16"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].message.contains("unknown field"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn a_relay_without_its_certificates_is_named_key_by_key() {
        let text = "\
[relay]
addr = \"127.0.0.1:7400\"
cert = \"/nonexistent/node.pem\"
";
        let problems = check(text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["relay.cert", "relay.name", "relay.key", "relay.hub_ca"],
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("does not exist"),
            "{}",
            problems[0]
        );
        assert!(
            check("[relay]\nname = \"node-a\"\n").is_empty(),
            "a relay left off is fine"
        );
    }

    #[test]
    fn service_hours_mistakes_are_named_with_how_to_write_them() {
        let text = "\
[service_hours]
in_hours = [\"Mon-Fry 08:00-18:00\"]
extra_bank_holidays = [\"2027-13-01\"]
bank_holidays = \"scotland\"

[[service_hours.services]]
name = \"Night\"
open = [\"Daily 22:00\"]
";
        let problems = check(text);
        let keys: Vec<(&str, Option<usize>)> =
            problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [
                ("service_hours.in_hours", Some(2)),
                ("service_hours.extra_bank_holidays", Some(3)),
                ("service_hours.bank_holidays", Some(4)),
                ("service_hours.services[0]", Some(6)),
            ]
        );
        assert!(
            problems[0].message.contains("write it like"),
            "{}",
            problems[0]
        );
        assert!(
            problems[3].message.contains("HH:MM-HH:MM"),
            "{}",
            problems[3]
        );
    }

    #[test]
    fn a_good_file_has_no_problems_and_syntax_errors_say_where() {
        assert_eq!(check("[media]\nport = 40000\n"), []);
        let broken = check("[media]\nport = = 4\n");
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].line, Some(2));
    }

    #[test]
    fn production_mode_refuses_missing_and_placeholder_secrets() {
        let text =
            "mode = \"production\"\nlink_secret = \"CHANGE-ME-to-a-long-random-secret-0123\"\n";
        let keys: Vec<String> = check(text).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "link_secret",
                "turn.secret",
                "recording.secret",
                "metrics_token",
                "https.enabled"
            ]
        );
    }
}
