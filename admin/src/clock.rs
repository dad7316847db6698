//! The hub's clock as the admin plane keeps and shows it: milliseconds since
//! the Unix epoch in the database, seconds in signed links, the hub's own
//! time zone in exports and on the helpdesk's pages.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// `t` as the database keeps times: milliseconds since the Unix epoch (0
/// for a time before it).
pub(crate) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Now, as the database keeps times.
pub(crate) fn now_ms() -> i64 {
    ms(SystemTime::now())
}

/// Now in Unix seconds, as signed links carry expiry times.
pub(crate) fn unix_now() -> u64 {
    (now_ms() / 1000) as u64
}

/// `ms` in `zone` as an RFC 3339 local time with its offset (empty when out
/// of range).
pub(crate) fn local_time(ms: i64, zone: &TimeZone) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}
