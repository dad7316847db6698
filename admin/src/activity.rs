//! Activity for commissioners: calls per day and by hour of day over the
//! last weeks, in the hub's time zone, and the out-of-hours share.

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use crate::call_log::CallRecord;
use crate::service_hours::ServiceHours;

/// Days the activity charts cover, today included.
pub const ACTIVITY_DAYS: i32 = 30;

/// Calls counted by local day and by local hour of their start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// Each of the last [`ACTIVITY_DAYS`] days, oldest first: ("2026-11-23", calls).
    pub per_day: Vec<(String, u32)>,
    /// Calls that started in each hour of the day (0-23) over those days.
    pub per_hour: [u32; 24],
    /// Calls over those days.
    pub calls: u32,
    /// Of them, started out of hours.
    pub out_of_hours: u32,
}

/// The activity of `calls` over the days up to `today` (local).
pub fn activity(calls: &[CallRecord], hours: &ServiceHours, today: Date) -> Activity {
    let zone = hours.zone();
    let first = today
        .checked_sub((ACTIVITY_DAYS - 1).days())
        .unwrap_or(today);
    let mut per_day: Vec<(Date, u32)> = (0..ACTIVITY_DAYS)
        .filter_map(|i| first.checked_add(i.days()).ok())
        .map(|d| (d, 0))
        .collect();
    let mut per_hour = [0; 24];
    let (mut total, mut ooh) = (0, 0);
    for c in calls {
        let Ok(t) = Timestamp::from_millisecond(c.started_at_ms) else {
            continue;
        };
        let local = t.to_zoned(zone.clone());
        let Some(day) = per_day.iter_mut().find(|(d, _)| *d == local.date()) else {
            continue;
        };
        day.1 += 1;
        per_hour[local.hour() as usize] += 1;
        total += 1;
        if hours.out_of_hours(c.started_at_ms) {
            ooh += 1;
        }
    }
    Activity {
        per_day: per_day
            .into_iter()
            .map(|(d, n)| (d.to_string(), n))
            .collect(),
        per_hour,
        calls: total,
        out_of_hours: ooh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(rfc3339: &str) -> CallRecord {
        CallRecord {
            id: 1,
            room: "r".into(),
            started_at_ms: rfc3339.parse::<Timestamp>().unwrap().as_millisecond(),
            ended_at_ms: None,
            homes: 1,
            operators: 0,
            clinicians: 1,
            specialists: 0,
            observers: 0,
            worst_badge: None,
            reconnects: 0,
        }
    }

    #[test]
    fn calls_count_on_their_local_day_and_hour() {
        let zone = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let today = jiff::civil::date(2026, 7, 6);
        let calls = [
            // 23:30 UTC on the 5th is 00:30 on the 6th in summer time.
            call("2026-07-05T23:30:00Z"),
            call("2026-07-06T09:15:00Z"),
            call("2026-07-06T09:45:00Z"),
            // 29 days back: the first day shown.
            call("2026-06-07T12:00:00Z"),
            // 30 days back: too old.
            call("2026-06-06T12:00:00Z"),
        ];
        let a = activity(&calls, &ServiceHours::around_the_clock(zone), today);
        assert_eq!(a.per_day.len(), 30);
        assert_eq!(a.per_day[0], ("2026-06-07".into(), 1));
        assert_eq!(a.per_day[29], ("2026-07-06".into(), 3));
        assert_eq!(a.per_hour[0], 1);
        assert_eq!(a.per_hour[10], 2);
        assert_eq!(a.per_hour[13], 1);
        assert_eq!(a.calls, 4);
        // 00:30 Monday and Sunday 7 June are out of hours.
        assert_eq!(a.out_of_hours, 2);
    }
}
