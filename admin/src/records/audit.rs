//! The audit trail of the clinical record: every look at a resident's
//! identifiers, every recording fetched, every outcome written or changed,
//! with who, when and from where. Rows are only ever added; a subject names
//! the consultation and encounter, never the resident.

use crate::sql::{values, Db, SqlResult};
use serde::Serialize;

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The account (or `signed link`, `command line`) that did it.
    pub account: String,
    /// The client's address, or where else it came from.
    pub from: String,
    /// What was done, e.g. `residents.viewed`.
    pub action: String,
    /// What it was done to, e.g. `consultation 17, encounter 3`.
    pub subject: String,
}

/// Who did something, and from where.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) account: String,
    pub(crate) from: String,
}

/// Adds an entry, in the caller's transaction.
pub(crate) fn note(
    c: &mut Db,
    who: &Actor,
    action: &str,
    subject: &str,
    at_ms: i64,
) -> SqlResult<()> {
    c.execute(
        "INSERT INTO audit_log (at_ms, account, from_addr, action, subject) VALUES (?1, ?2, ?3, ?4, ?5)",
        values![at_ms, who.account, who.from, action, subject],
    )?;
    Ok(())
}

impl crate::CallLog {
    /// Notes `action` on `subject` by `account` from `from` in the audit
    /// trail: for what happens outside an admin request (a signed download
    /// link, the command line).
    pub fn audit(
        &self,
        account: &str,
        from: &str,
        action: &str,
        subject: &str,
        at: std::time::SystemTime,
    ) -> Result<(), crate::AdminError> {
        let who = Actor {
            account: account.to_owned(),
            from: from.to_owned(),
        };
        self.change(|c| note(c, &who, action, subject, crate::clock::ms(at)))
    }
}

/// The entries as CSV, times in the hub's zone, newest first.
pub(crate) fn csv(entries: &[AuditEntry], zone: &jiff::tz::TimeZone) -> String {
    use crate::clock::local_time;
    use crate::history::field;
    let mut out = String::from("time,account,from,action,subject\r\n");
    for e in entries {
        let row = [
            local_time(e.at_ms, zone),
            field(&e.account),
            field(&e.from),
            field(&e.action),
            field(&e.subject),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The latest `limit` entries, newest first.
pub(crate) fn latest(c: &mut Db, limit: u32) -> SqlResult<Vec<AuditEntry>> {
    let rows = c.query_map("SELECT at_ms, account, from_addr, action, subject FROM audit_log ORDER BY id DESC LIMIT ?1", values![limit], |r| {
        Ok(AuditEntry {
            at_ms: r.get(0)?,
            account: r.get(1)?,
            from: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
        })
    })?;
    Ok(rows)
}
