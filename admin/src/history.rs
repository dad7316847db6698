//! Call history for commissioners and admins: one CSV row per call, with
//! local times and the out-of-hours flag, from the call log.
//!
//! In hours are Monday to Friday, 08:00 to 18:30, in the hub's time zone
//! (the NHS core hours for general practice); everything else is out of
//! hours. Bank holidays are not known yet: they count as in hours.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use serde::Serialize;

use crate::call_log::CallRecord;
use crate::quality::Badge;
use crate::routes::AdminState;

/// The CSV columns, in order (documented in `docs/admin.md`).
pub const CSV_COLUMNS: [&str; 14] = [
    "call_id",
    "room",
    "started_at",
    "ended_at",
    "duration_seconds",
    "participants",
    "homes",
    "clinicians",
    "specialists",
    "observers",
    "out_of_hours",
    "worst_quality",
    "reconnects",
    "operators",
];

/// Whether a call that started at `ms` (since the epoch) started out of
/// hours in `zone`.
pub fn out_of_hours(ms: i64, zone: &TimeZone) -> bool {
    let Ok(t) = Timestamp::from_millisecond(ms) else {
        return false;
    };
    let local = t.to_zoned(zone.clone());
    let weekend = matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday);
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    weekend || !(8 * 60..18 * 60 + 30).contains(&minute)
}

pub(crate) fn local_time(ms: i64, zone: &TimeZone) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// `GET /admin/api/calls.csv`: every call, as a download.
pub(crate) async fn export(State(state): State<AdminState>) -> Response {
    match crate::blocking_locked(&state.history, |log| log.calls()).await {
        Ok(calls) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"carecall-calls.csv\"",
                ),
            ],
            calls_csv(&calls, &state.zone),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "call history could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "call history unavailable\n",
            )
                .into_response()
        }
    }
}

/// A CSV text field: a leading `'` when a spreadsheet would read it as a
/// formula (`=`, `+`, `-`, `@`, a tab or a carriage return first), so text
/// anyone typed never runs as one; then quoted if it holds a comma, quote or
/// line break.
pub(crate) fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A call as the history shows it: local times, totals and flags. The CSV
/// and the dashboard both show this.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// The call's number.
    pub call_id: i64,
    /// Room name.
    pub room: String,
    /// Local start, RFC 3339 with offset.
    pub started_at: String,
    /// Local end; `None` while the call runs.
    pub ended_at: Option<String>,
    /// Whole seconds; `None` while the call runs.
    pub duration_seconds: Option<i64>,
    /// Participant sessions, and by role.
    pub participants: u32,
    /// See `participants`.
    pub homes: u32,
    /// See `participants`.
    pub clinicians: u32,
    /// Hub operators who answered the call.
    pub operators: u32,
    /// See `participants`.
    pub specialists: u32,
    /// See `participants`.
    pub observers: u32,
    /// Started outside Monday to Friday 08:00-18:30 local time.
    pub out_of_hours: bool,
    /// The worst badge any participant had; `None` if media never came up.
    pub worst_quality: Option<Badge>,
    /// Reconnects of all participants together.
    pub reconnects: u32,
}

impl HistoryRow {
    /// `call` in the hub's time zone.
    pub fn of(call: &CallRecord, zone: &TimeZone) -> Self {
        HistoryRow {
            call_id: call.id,
            room: call.room.clone(),
            started_at: local_time(call.started_at_ms, zone),
            ended_at: call.ended_at_ms.map(|t| local_time(t, zone)),
            duration_seconds: call
                .ended_at_ms
                .map(|t| (t - call.started_at_ms).max(0) / 1000),
            participants: call.homes
                + call.operators
                + call.clinicians
                + call.specialists
                + call.observers,
            homes: call.homes,
            operators: call.operators,
            clinicians: call.clinicians,
            specialists: call.specialists,
            observers: call.observers,
            out_of_hours: out_of_hours(call.started_at_ms, zone),
            worst_quality: call.worst_badge,
            reconnects: call.reconnects,
        }
    }

    fn csv_fields(&self) -> [String; CSV_COLUMNS.len()] {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            self.call_id.to_string(),
            field(&self.room),
            self.started_at.clone(),
            opt(self.ended_at.clone()),
            opt(self.duration_seconds.map(|d| d.to_string())),
            self.participants.to_string(),
            self.homes.to_string(),
            self.clinicians.to_string(),
            self.specialists.to_string(),
            self.observers.to_string(),
            if self.out_of_hours { "yes" } else { "no" }.to_owned(),
            opt(self.worst_quality.map(|b| b.name().to_owned())),
            self.reconnects.to_string(),
            self.operators.to_string(),
        ]
    }
}

/// The calls as CSV, a header line first. A call still running has no end
/// and no duration; one whose media never came up has no worst quality.
pub fn calls_csv(calls: &[CallRecord], zone: &TimeZone) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for c in calls {
        out.push_str(&HistoryRow::of(c, zone).csv_fields().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").unwrap()
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_field_never_starts_a_formula_and_is_quoted_when_it_must_be() {
        assert_eq!(field("ward-7"), "ward-7");
        assert_eq!(
            field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(field("+44 1632"), "'+44 1632");
        assert_eq!(field("-1+1"), "'-1+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(field("a, b"), "\"a, b\"");
    }

    #[test]
    fn in_hours_are_weekdays_from_8_to_half_past_6_local_time() {
        let z = london();
        // Monday 23 November 2026 (GMT).
        assert!(!out_of_hours(ms("2026-11-23T09:00:00Z"), &z));
        assert!(out_of_hours(ms("2026-11-23T07:59:00Z"), &z));
        assert!(!out_of_hours(ms("2026-11-23T18:29:00Z"), &z));
        assert!(out_of_hours(ms("2026-11-23T18:30:00Z"), &z));
        // Saturday.
        assert!(out_of_hours(ms("2026-11-21T11:00:00Z"), &z));
        // Monday 6 July 2026, summer time: 07:30 UTC is 08:30 in London.
        assert!(!out_of_hours(ms("2026-07-06T07:30:00Z"), &z));
        assert!(out_of_hours(ms("2026-07-06T17:45:00Z"), &z));
    }

    #[test]
    fn one_row_per_call_with_local_times() {
        let calls = [
            CallRecord {
                id: 1,
                room: "ward-7".into(),
                started_at_ms: ms("2026-07-06T09:00:00Z"),
                ended_at_ms: Some(ms("2026-07-06T09:12:30Z")),
                homes: 1,
                operators: 0,
                clinicians: 1,
                specialists: 1,
                observers: 0,
                worst_badge: Some(Badge::Amber),
                reconnects: 2,
            },
            CallRecord {
                id: 2,
                room: "odd,name".into(),
                started_at_ms: ms("2026-07-04T22:00:00Z"),
                ended_at_ms: None,
                homes: 1,
                operators: 0,
                clinicians: 0,
                specialists: 0,
                observers: 0,
                worst_badge: None,
                reconnects: 0,
            },
        ];
        let csv = calls_csv(&calls, &london());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "1,ward-7,2026-07-06T10:00:00+01:00,2026-07-06T10:12:30+01:00,750,3,1,1,1,0,no,amber,2,0"
        );
        assert_eq!(
            lines[2],
            "2,\"odd,name\",2026-07-04T23:00:00+01:00,,,1,1,0,0,0,yes,,0,0"
        );
        assert_eq!(lines.len(), 3);
    }
}
