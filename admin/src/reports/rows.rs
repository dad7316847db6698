//! The rows reports are made of: one per call from a home (queued to
//! answered, declined, abandoned or closed, with its consultation's quality)
//! and one per encounter (a resident seen, with the coded outcome). Read
//! from the database in one query each; the columns are the export's, and
//! their names are kept stable (`docs/reports.md`).

use crate::sql::{values, Db, Row, SqlResult};
use serde::Serialize;

use crate::call_log::WITHDRAWN;
use crate::clock::local_time;
use crate::history::field;
use crate::quality::Badge;
use crate::service_hours::{Period, ServiceHours};
use crate::state::QueueSettings;

/// How a call from a home ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The hub answered it.
    Answered,
    /// The home gave up waiting.
    Abandoned,
    /// An operator declined it.
    Declined,
    /// Every service was closed.
    Closed,
    /// The hub withdrew the home's link while it waited.
    Withdrawn,
    /// Still waiting.
    Waiting,
}

impl CallOutcome {
    fn name(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Declined => "declined",
            CallOutcome::Closed => "closed",
            CallOutcome::Withdrawn => "withdrawn",
            CallOutcome::Waiting => "waiting",
        }
    }
}

/// One call from a home.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    /// The call's number in the queue.
    pub call_id: i64,
    /// The calling home.
    pub home_id: String,
    /// Its name.
    pub home_name: String,
    /// Urgent calls have a shorter target.
    #[serde(skip)]
    pub urgent: bool,
    /// `urgent` or `routine`.
    pub urgency: &'static str,
    /// What it is about, from the hub's list ("" when not chosen).
    pub reason_category: String,
    /// The home's words.
    pub reason: String,
    /// The service it came to; none when every service was closed.
    pub service: Option<String>,
    /// In hours, out of hours or closed, when it was queued.
    pub period: Period,
    /// Whether that was in hours.
    #[serde(skip)]
    pub in_hours: bool,
    /// How it ended up.
    pub outcome: CallOutcome,
    /// The operator's reason, for a declined call.
    pub declined_reason: Option<String>,
    /// Local time with offset.
    pub queued_at: String,
    /// When first answered.
    pub answered_at: Option<String>,
    /// When a clinician first had it.
    pub clinician_at: Option<String>,
    /// Queued to answered.
    pub answer_seconds: Option<f64>,
    /// Answered to a clinician.
    pub to_clinician_seconds: Option<f64>,
    /// Queued to a clinician.
    pub total_wait_seconds: Option<f64>,
    /// Answered within its urgency's target.
    pub within_target: bool,
    /// The consultation's length, first join to last leave.
    pub consultation_seconds: Option<f64>,
    /// How participants' media went: `udp`, `tcp`, `turn-udp`… (each once).
    pub transport: String,
    /// The worst quality badge anyone in the consultation had.
    pub worst_quality: Option<&'static str>,
    /// Reconnects of everyone in the consultation.
    pub reconnects: i64,
    /// Local hour of queueing (for the breakdown).
    #[serde(skip)]
    pub local_hour: u8,
    /// Local weekday of queueing, Monday 0.
    #[serde(skip)]
    pub local_weekday: u8,
    /// Its name, `Monday` to `Sunday`.
    pub day_of_week: &'static str,
}

fn urgency(urgent: bool) -> &'static str {
    if urgent {
        "urgent"
    } else {
        "routine"
    }
}

/// The calls export's columns, in order.
pub const CALL_COLUMNS: [&str; 22] = [
    "call_id",
    "home_id",
    "home_name",
    "urgency",
    "reason_category",
    "reason",
    "service",
    "period",
    "outcome",
    "declined_reason",
    "queued_at",
    "answered_at",
    "clinician_at",
    "answer_seconds",
    "to_clinician_seconds",
    "total_wait_seconds",
    "within_target",
    "consultation_seconds",
    "transport",
    "worst_quality",
    "reconnects",
    "day_of_week",
];

/// The columns [`call_row`] reads, from `queued_calls c JOIN homes h`.
const CALLS_SELECT: &str = "
SELECT c.id, c.home_id, h.name, c.urgent, c.reason, c.service, c.state, c.queued_at_ms,
  c.answered_at_ms, c.declined_reason,
  (SELECT MIN(e.at_ms) FROM queue_events e LEFT JOIN admin_accounts a ON a.name = e.actor
    WHERE e.call_id = c.id AND (e.kind = 'accepted' OR (e.kind = 'answered' AND a.role = 'clinician'))),
  (SELECT e.actor FROM queue_events e WHERE e.call_id = c.id AND e.kind = 'cancelled' ORDER BY e.id DESC LIMIT 1),
  (SELECT MIN(k.started_at_ms) FROM calls k WHERE k.room = c.room),
  (SELECT MAX(k.ended_at_ms) FROM calls k WHERE k.room = c.room),
  (SELECT MAX(s.worst_badge) FROM participant_sessions s WHERE s.room = c.room),
  (SELECT CAST(COALESCE(SUM(s.reconnects), 0) AS BIGINT) FROM participant_sessions s WHERE s.room = c.room),
  (SELECT string_agg(t.transport, ',') FROM
     (SELECT DISTINCT s.transport FROM participant_sessions s
      WHERE s.room = c.room AND s.transport IS NOT NULL) AS t),
  c.reason_category
FROM queued_calls c JOIN homes h ON h.id = c.home_id";

fn seconds(from: i64, to: Option<i64>) -> Option<f64> {
    to.map(|t| (t - from).max(0) as f64 / 1000.0)
}

/// How the hub's settings read the rows: the service hours (in or out of
/// hours) and the queue's answer targets.
pub(crate) struct Reading<'a> {
    /// The service hours.
    pub hours: &'a ServiceHours,
    /// The queue's settings.
    pub settings: &'a QueueSettings,
}

impl Reading<'_> {
    /// The calls `filter` (a WHERE, ORDER and LIMIT on [`CALLS_SELECT`])
    /// picks with `args`.
    fn calls(
        &self,
        c: &mut Db,
        filter: &str,
        args: &[crate::sql::Value],
    ) -> SqlResult<Vec<CallRow>> {
        let rows = c.query_map(&format!("{CALLS_SELECT} {filter}"), args, |r| {
            call_row(r, self.hours, self.settings)
        })?;
        Ok(rows)
    }

    /// Calls queued from `from_ms` up to (not including) `to_ms`.
    pub(crate) fn between(&self, c: &mut Db, from_ms: i64, to_ms: i64) -> SqlResult<Vec<CallRow>> {
        self.calls(
            c,
            "WHERE c.queued_at_ms >= ?1 AND c.queued_at_ms < ?2 ORDER BY c.queued_at_ms, c.id",
            values![from_ms, to_ms],
        )
    }

    /// A home's latest `limit` calls, newest first.
    pub(crate) fn of_home(&self, c: &mut Db, home_id: &str, limit: u32) -> SqlResult<Vec<CallRow>> {
        self.calls(
            c,
            "WHERE c.home_id = ?1 ORDER BY c.queued_at_ms DESC, c.id DESC LIMIT ?2",
            values![home_id, limit],
        )
    }
}

fn call_row(r: &Row, hours: &ServiceHours, settings: &QueueSettings) -> SqlResult<CallRow> {
    let zone = hours.zone();
    let urgent: bool = r.get(3)?;
    let state: String = r.get(6)?;
    let queued: i64 = r.get(7)?;
    let answered: Option<i64> = r.get(8)?;
    let clinician: Option<i64> = r.get(10)?;
    let cancelled_by: Option<String> = r.get(11)?;
    let (started, ended): (Option<i64>, Option<i64>) = (r.get(12)?, r.get(13)?);
    let outcome = match state.as_str() {
        "closed" => CallOutcome::Closed,
        "declined" => CallOutcome::Declined,
        _ if answered.is_some() => CallOutcome::Answered,
        "cancelled" if cancelled_by.as_deref() == Some(WITHDRAWN) => CallOutcome::Withdrawn,
        "cancelled" => CallOutcome::Abandoned,
        _ => CallOutcome::Waiting,
    };
    let answer_seconds = seconds(queued, answered);
    let target = settings.target(urgent).as_secs_f64();
    let local = jiff::Timestamp::from_millisecond(queued)
        .unwrap_or_default()
        .to_zoned(zone.clone());
    let period = hours.period(queued);
    Ok(CallRow {
        call_id: r.get(0)?,
        home_id: r.get(1)?,
        home_name: r.get(2)?,
        urgent,
        urgency: urgency(urgent),
        reason_category: r.get(17)?,
        reason: r.get(4)?,
        service: r.get(5)?,
        period,
        in_hours: period == Period::InHours,
        outcome,
        declined_reason: r.get(9)?,
        queued_at: local_time(queued, zone),
        answered_at: answered.map(|t| local_time(t, zone)),
        clinician_at: clinician.map(|t| local_time(t, zone)),
        answer_seconds,
        to_clinician_seconds: answered.and_then(|a| seconds(a, clinician)),
        total_wait_seconds: seconds(queued, clinician),
        within_target: answer_seconds.is_some_and(|s| s <= target),
        consultation_seconds: started.and_then(|s| seconds(s, ended)),
        transport: r
            .get::<Option<String>>(16)?
            .unwrap_or_default()
            .replace(',', " "),
        worst_quality: r
            .get::<Option<i64>>(14)?
            .map(|b| Badge::from_level(b).name()),
        reconnects: r.get(15)?,
        local_hour: local.hour() as u8,
        local_weekday: local.weekday().to_monday_zero_offset() as u8,
        day_of_week: super::figures::WEEKDAYS[local.weekday().to_monday_zero_offset() as usize],
    })
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

impl CallRow {
    fn csv_fields(&self) -> [String; CALL_COLUMNS.len()] {
        [
            self.call_id.to_string(),
            field(&self.home_id),
            field(&self.home_name),
            self.urgency.into(),
            field(&self.reason_category),
            field(&self.reason),
            field(self.service.as_deref().unwrap_or("")),
            self.period.name().into(),
            self.outcome.name().into(),
            field(self.declined_reason.as_deref().unwrap_or("")),
            self.queued_at.clone(),
            opt(&self.answered_at),
            opt(&self.clinician_at),
            opt(&self.answer_seconds),
            opt(&self.to_clinician_seconds),
            opt(&self.total_wait_seconds),
            if self.within_target { "yes" } else { "no" }.into(),
            opt(&self.consultation_seconds),
            field(&self.transport),
            self.worst_quality.unwrap_or("").into(),
            self.reconnects.to_string(),
            self.day_of_week.into(),
        ]
    }
}

/// One resident seen in a consultation, with the coded outcome (no
/// identifiers: those stay sealed in the record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterRow {
    /// The encounter's number.
    pub encounter_id: i64,
    /// The call (queue number) it belongs to, if it came through the queue.
    pub call_id: Option<i64>,
    /// The home.
    pub home_id: Option<String>,
    /// Its name.
    pub home_name: Option<String>,
    /// `urgent` or `routine`, for a call from the queue.
    pub urgency: Option<&'static str>,
    /// The service the call came to.
    pub service: Option<String>,
    /// When the resident was added to the call.
    pub seen_at: String,
    /// Who added them.
    pub seen_by: String,
    /// Where care went next, once recorded.
    pub disposition: Option<String>,
    /// A conveyance or admission avoided.
    pub conveyance_avoided: Option<bool>,
    /// Medicines prescribed.
    pub medicines_prescribed: Option<bool>,
    /// RESTORE2 used.
    pub restore2_used: Option<bool>,
    /// The NEWS2 score, if taken.
    pub news2: Option<i64>,
    /// The ReSPECT form: none, in-place, created, updated.
    pub respect: Option<String>,
    /// A treatment escalation plan was made.
    pub treatment_plan: Option<bool>,
    /// Who recorded the outcome.
    pub outcome_by: Option<String>,
    /// When.
    pub outcome_at: Option<String>,
}

/// The encounters export's columns, in order.
pub const ENCOUNTER_COLUMNS: [&str; 17] = [
    "encounter_id",
    "call_id",
    "home_id",
    "home_name",
    "urgency",
    "service",
    "seen_at",
    "seen_by",
    "disposition",
    "conveyance_avoided",
    "medicines_prescribed",
    "restore2_used",
    "news2",
    "respect",
    "treatment_plan",
    "outcome_by",
    "outcome_at",
];

const ENCOUNTERS_SQL: &str = "
SELECT e.id, e.hub_call, q.home_id, h.name, q.urgent, q.service, e.created_at_ms, e.created_by,
  e.disposition, e.conveyance_avoided, e.medicines_prescribed, e.restore2_used, e.news2,
  e.respect, e.treatment_plan, e.outcome_by, e.outcome_at_ms
FROM encounters e LEFT JOIN queued_calls q ON q.id = e.hub_call LEFT JOIN homes h ON h.id = q.home_id
WHERE e.created_at_ms >= ?1 AND e.created_at_ms < ?2
ORDER BY e.created_at_ms, e.id";

/// Encounters begun from `from_ms` up to `to_ms`.
pub(crate) fn encounters(
    c: &mut Db,
    from_ms: i64,
    to_ms: i64,
    zone: &jiff::tz::TimeZone,
) -> SqlResult<Vec<EncounterRow>> {
    let rows = c.query_map(ENCOUNTERS_SQL, values![from_ms, to_ms], |r| {
        Ok(EncounterRow {
            encounter_id: r.get(0)?,
            call_id: r.get(1)?,
            home_id: r.get(2)?,
            home_name: r.get(3)?,
            urgency: r.get::<Option<bool>>(4)?.map(urgency),
            service: r.get(5)?,
            seen_at: local_time(r.get(6)?, zone),
            seen_by: r.get(7)?,
            disposition: r.get(8)?,
            conveyance_avoided: r.get(9)?,
            medicines_prescribed: r.get(10)?,
            restore2_used: r.get(11)?,
            news2: r.get(12)?,
            respect: r.get(13)?,
            treatment_plan: r.get(14)?,
            outcome_by: r.get(15)?,
            outcome_at: r.get::<Option<i64>>(16)?.map(|t| local_time(t, zone)),
        })
    })?;
    Ok(rows)
}

fn yes_no(v: Option<bool>) -> String {
    v.map(|b| if b { "yes" } else { "no" }.to_owned())
        .unwrap_or_default()
}

impl EncounterRow {
    fn csv_fields(&self) -> [String; ENCOUNTER_COLUMNS.len()] {
        [
            self.encounter_id.to_string(),
            opt(&self.call_id),
            field(self.home_id.as_deref().unwrap_or("")),
            field(self.home_name.as_deref().unwrap_or("")),
            self.urgency.unwrap_or("").into(),
            field(self.service.as_deref().unwrap_or("")),
            self.seen_at.clone(),
            field(&self.seen_by),
            opt(&self.disposition),
            yes_no(self.conveyance_avoided),
            yes_no(self.medicines_prescribed),
            yes_no(self.restore2_used),
            opt(&self.news2),
            opt(&self.respect),
            yes_no(self.treatment_plan),
            field(self.outcome_by.as_deref().unwrap_or("")),
            opt(&self.outcome_at),
        ]
    }
}

/// Rows as CSV: one header line, CRLF line ends.
fn csv<const N: usize, T>(
    columns: [&str; N],
    rows: &[T],
    fields: impl Fn(&T) -> [String; N],
) -> String {
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&fields(r).join(","));
        out.push_str("\r\n");
    }
    out
}

/// The calls as CSV.
pub fn calls_csv(rows: &[CallRow]) -> String {
    csv(CALL_COLUMNS, rows, CallRow::csv_fields)
}

/// The encounters as CSV.
pub fn encounters_csv(rows: &[EncounterRow]) -> String {
    csv(ENCOUNTER_COLUMNS, rows, EncounterRow::csv_fields)
}
