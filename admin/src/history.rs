//! Call history for commissioners and admins: one CSV row per call, with
//! local times and the out-of-hours flag, from the call log. What is in
//! hours comes from the hub's [`ServiceHours`].

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use serde::Serialize;

use crate::api_error::ApiError;
use crate::call_log::CallRecord;
use crate::clock::local_time;
use crate::quality::Badge;
use crate::service_hours::ServiceHours;
use crate::state::AdminState;

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

/// `GET /admin/api/calls.csv`: every call, as a download.
pub(crate) async fn export(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let calls = crate::blocking_locked(&state.call_log, |log| log.calls())
        .await
        .map_err(|e| ApiError::unavailable("call history", e, "call history unavailable"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"carecall-calls.csv\"",
            ),
        ],
        calls_csv(&calls, &state.hours.get()),
    )
        .into_response())
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
    /// Started out of hours (or while the hub was closed).
    pub out_of_hours: bool,
    /// The worst badge any participant had; `None` if media never came up.
    pub worst_quality: Option<Badge>,
    /// Reconnects of all participants together.
    pub reconnects: u32,
}

impl HistoryRow {
    /// `call` in the hub's time zone.
    pub fn of(call: &CallRecord, hours: &ServiceHours) -> Self {
        let zone = hours.zone();
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
            out_of_hours: hours.out_of_hours(call.started_at_ms),
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
pub fn calls_csv(calls: &[CallRecord], hours: &ServiceHours) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for c in calls {
        out.push_str(&HistoryRow::of(c, hours).csv_fields().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> ServiceHours {
        ServiceHours::around_the_clock(jiff::tz::TimeZone::get("Europe/London").unwrap())
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
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
