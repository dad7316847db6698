//! Reading carecall's Prometheus `/metrics` in tests.

use super::http::get as http_get;

/// The text of `GET /metrics`; fails the test unless it answers 200.
pub async fn scrape(base_url: &str) -> String {
    let (status, body) = http_get(base_url, "/metrics").await;
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// The value of `name`'s series for `participant` (e.g. "p2"), if there is one.
pub fn participant_value(text: &str, name: &str, participant: &str) -> Option<f64> {
    let label = format!("participant=\"{participant}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find(|l| l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `name`'s series for `participant`, each with the value of its `label`
/// (e.g. the `origin` of a per-sender gauge).
pub fn participant_values_by(
    text: &str,
    name: &str,
    participant: &str,
    label: &str,
) -> Vec<(String, f64)> {
    let who = format!("participant=\"{participant}\"");
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| l.contains(&who))
        .filter_map(|l| {
            let rest = &l[l.find(&key)? + key.len()..];
            let value = rest[..rest.find('"')?].to_owned();
            Some((value, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The value of one series, written as `/metrics` writes it: unlabelled,
/// `carecall_join_seconds_count`, or with its labels in `/metrics`' order,
/// `carecall_queue_waiting_calls{urgency="urgent"}`.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}
