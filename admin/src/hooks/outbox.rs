//! The hook outbox, on either engine. An event is written in the same transaction
//! as the call-log change that caused it, one outbox row per endpoint, so
//! a crash can lose neither; delivery takes rows out once the endpoint has
//! them, or moves them to the dead letters.
//!
//! Events of one consultation go to an endpoint in order: only the oldest
//! row of each (endpoint, consultation) is ever due.

use crate::sql::{values, Db, OptionalRow, SqlResult};

use crate::records::{unreadable, unsealable, RecordKey};

/// One event waiting for one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub seq: i64,
    pub event_id: String,
    pub endpoint: String,
    pub body: String,
    pub attempts: u32,
    pub created_at_ms: i64,
}

/// An event an endpoint never took: it refused it for good (a 4xx), or
/// kept failing until the retry period ran out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its number, for a retry.
    pub seq: i64,
    /// The event's `webhook-id`.
    pub event_id: String,
    /// The event's type.
    pub kind: String,
    /// The consultation (call) it belongs to.
    pub consultation: i64,
    /// Where it was going.
    pub endpoint: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up on, ms since the epoch.
    pub failed_at_ms: i64,
    /// Why: the status and the start of the response body, or the error.
    pub reason: String,
}

/// What an event body is sealed as (the associated data).
const SEALED_AS: &str = "hook event";

/// Stores an event for every endpoint in `endpoints`, its body sealed with
/// `seal` when given. Runs inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enqueue(
    conn: &mut Db,
    seal: Option<&RecordKey>,
    endpoints: &[String],
    event_id: &str,
    consultation: i64,
    kind: &str,
    body: &str,
    now_ms: i64,
) -> SqlResult<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let (plain, sealed) = match seal {
        Some(key) => {
            let sealed = key.seal(SEALED_AS, body.as_bytes()).map_err(unsealable)?;
            ("", Some(sealed))
        }
        None => (body, None),
    };
    conn.execute(
        "INSERT INTO hook_events (id, consultation, kind, body, sealed, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        values![event_id, consultation, kind, plain, sealed, now_ms],
    )?;
    for endpoint in endpoints {
        conn.execute(
            "INSERT INTO hook_outbox (event_id, consultation, endpoint, next_attempt_ms) VALUES (?1, ?2, ?3, ?4)",
            values![event_id, consultation, endpoint, now_ms],
        )?;
    }
    Ok(())
}

/// Claims for `node` up to `limit` rows due by `now_ms`, each the oldest
/// of its endpoint and consultation, oldest first; sealed bodies opened
/// with `seal`. A claimed row is not due again until the claim ends: when
/// its outcome is written, when `lease_ms` runs out (the node died
/// mid-post; another takes the row) or when the same node starts again
/// ([`release_claims`]). So two deliverers (two nodes on one PostgreSQL)
/// never post one row at once, and the next row of a consultation waits
/// until this one is done. On PostgreSQL the rows are locked as they are
/// read and rows another deliverer is claiming are skipped (`FOR UPDATE …
/// SKIP LOCKED`); SQLite serialises the whole claim.
pub(crate) fn claim_due(
    conn: &mut Db,
    node: &str,
    seal: Option<&RecordKey>,
    now_ms: i64,
    limit: u32,
    lease_ms: i64,
) -> SqlResult<Vec<Pending>> {
    conn.transaction(|tx| {
        let rows = due(tx, seal, now_ms, limit)?;
        for row in &rows {
            tx.execute(
                "UPDATE hook_outbox SET claimed_by = ?2, claimed_until_ms = ?3 WHERE seq = ?1",
                values![row.seq, node, now_ms + lease_ms],
            )?;
        }
        Ok(rows)
    })
}

/// Ends `node`'s claims: it starts again, so nothing of its is in flight.
pub(crate) fn release_claims(conn: &mut Db, node: &str) -> SqlResult<usize> {
    conn.execute(
        "UPDATE hook_outbox SET claimed_by = NULL, claimed_until_ms = NULL WHERE claimed_by = ?1",
        values![node],
    )
}

/// The rows [`claim_due`] claims, read (and on PostgreSQL locked).
fn due(
    conn: &mut Db,
    seal: Option<&RecordKey>,
    now_ms: i64,
    limit: u32,
) -> SqlResult<Vec<Pending>> {
    let sql = format!(
        "SELECT o.seq, o.event_id, o.endpoint, e.body, o.attempts, e.created_at_ms, e.sealed
         FROM hook_outbox o JOIN hook_events e ON e.id = o.event_id
         WHERE o.next_attempt_ms <= ?1
           AND (o.claimed_until_ms IS NULL OR o.claimed_until_ms <= ?1)
           AND o.seq = (SELECT MIN(seq) FROM hook_outbox f
                        WHERE f.endpoint = o.endpoint AND f.consultation = o.consultation)
         ORDER BY o.seq LIMIT ?2{}",
        conn.skip_locked_rows_of("o")
    );
    let rows = conn.query_map(&sql, values![now_ms, limit], |r| {
        let sealed: Option<Vec<u8>> = r.get(6)?;
        let body = match (sealed, seal) {
            (None, _) => r.get(3)?,
            (Some(sealed), key) => {
                let key = key.ok_or_else(|| unreadable(6, "a sealed event and no key"))?;
                let plain = key.open(SEALED_AS, &sealed).map_err(|e| unreadable(6, e))?;
                String::from_utf8(plain).map_err(|e| unreadable(6, e))?
            }
        };
        Ok(Pending {
            seq: r.get(0)?,
            event_id: r.get(1)?,
            endpoint: r.get(2)?,
            body,
            attempts: r.get(4)?,
            created_at_ms: r.get(5)?,
        })
    })?;
    Ok(rows)
}

/// When the next row falls due, if any is waiting.
/// Only rows that can be claimed count: the oldest of each endpoint and
/// consultation, at the later of its next attempt and the end of its claim
/// (a row waiting behind another, or claimed, is not due at its own time).
pub(crate) fn next_due_ms(conn: &mut Db) -> SqlResult<Option<i64>> {
    conn.query_row(
        "SELECT MIN(CASE WHEN o.claimed_until_ms > o.next_attempt_ms
                         THEN o.claimed_until_ms ELSE o.next_attempt_ms END)
         FROM hook_outbox o
         WHERE o.seq = (SELECT MIN(seq) FROM hook_outbox f
                        WHERE f.endpoint = o.endpoint AND f.consultation = o.consultation)",
        &[],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

/// The endpoint has the event: the row goes (and the event, once no
/// endpoint or dead letter needs it).
pub(crate) fn delivered(conn: &mut Db, seq: i64) -> SqlResult<()> {
    let event: Option<String> = conn
        .query_row(
            "DELETE FROM hook_outbox WHERE seq = ?1 RETURNING event_id",
            values![seq],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(event) = event {
        forget_if_done(conn, &event)?;
    }
    Ok(())
}

fn forget_if_done(conn: &mut Db, event: &str) -> SqlResult<()> {
    conn.execute(
        "DELETE FROM hook_events WHERE id = ?1
         AND NOT EXISTS (SELECT 1 FROM hook_outbox WHERE event_id = ?1)
         AND NOT EXISTS (SELECT 1 FROM hook_dead_letters WHERE event_id = ?1)",
        values![event],
    )?;
    Ok(())
}

/// A failed attempt: try again at `next_ms`.
pub(crate) fn retry_later(conn: &mut Db, seq: i64, next_ms: i64, error: &str) -> SqlResult<()> {
    conn.execute(
        "UPDATE hook_outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3,
             claimed_by = NULL, claimed_until_ms = NULL WHERE seq = ?1",
        values![seq, next_ms, error],
    )?;
    Ok(())
}

/// Gives up on a row: it moves to the dead letters with `reason`.
pub(crate) fn dead_letter(conn: &mut Db, seq: i64, now_ms: i64, reason: &str) -> SqlResult<()> {
    conn.execute(
        "INSERT INTO hook_dead_letters (seq, event_id, consultation, endpoint, attempts, failed_at_ms, reason)
         SELECT seq, event_id, consultation, endpoint, attempts + 1, ?2, ?3 FROM hook_outbox WHERE seq = ?1",
        values![seq, now_ms, reason],
    )?;
    conn.execute("DELETE FROM hook_outbox WHERE seq = ?1", values![seq])?;
    Ok(())
}

/// Every dead letter, newest first.
pub(crate) fn dead_letters(conn: &mut Db) -> SqlResult<Vec<DeadLetter>> {
    let rows = conn.query_map("SELECT d.seq, d.event_id, e.kind, d.consultation, d.endpoint, d.attempts, d.failed_at_ms, d.reason
         FROM hook_dead_letters d JOIN hook_events e ON e.id = d.event_id
         ORDER BY d.failed_at_ms DESC, d.seq DESC", &[], |r| {
        Ok(DeadLetter {
            seq: r.get(0)?,
            event_id: r.get(1)?,
            kind: r.get(2)?,
            consultation: r.get(3)?,
            endpoint: r.get(4)?,
            attempts: r.get(5)?,
            failed_at_ms: r.get(6)?,
            reason: r.get(7)?,
        })
    })?;
    Ok(rows)
}

/// Puts a dead letter back in the outbox, due now, with its place in its
/// consultation's order. Returns false if there is no such dead letter.
pub(crate) fn retry_dead_letter(conn: &mut Db, seq: i64, now_ms: i64) -> SqlResult<bool> {
    let moved = conn.execute(
        "INSERT INTO hook_outbox (seq, event_id, consultation, endpoint, next_attempt_ms)
         SELECT seq, event_id, consultation, endpoint, ?2 FROM hook_dead_letters WHERE seq = ?1",
        values![seq, now_ms],
    )?;
    conn.execute("DELETE FROM hook_dead_letters WHERE seq = ?1", values![seq])?;
    Ok(moved == 1)
}

/// Rows waiting, for the admin plane and `/metrics`.
pub(crate) fn waiting(conn: &mut Db) -> SqlResult<u64> {
    conn.query_row("SELECT COUNT(*) FROM hook_outbox", &[], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: i64 = 60_000;

    fn enqueue_at(db: &mut Db, event: &str, consultation: i64, at: i64) {
        let endpoints = ["https://records.example/hooks".to_owned()];
        enqueue(db, None, &endpoints, event, consultation, "test", "{}", at).unwrap();
    }

    fn claimed(db: &mut Db, node: &str, now: i64) -> Vec<String> {
        claim_due(db, node, None, now, 10, LEASE)
            .unwrap()
            .into_iter()
            .map(|p| p.event_id)
            .collect()
    }

    /// Two deliverers on one database, as two nodes would be.
    #[test]
    fn two_deliverers_never_hold_one_row_and_a_dead_ones_rows_come_back() {
        for db in crate::sql::test_databases() {
            let (mut a, mut b) = (db.open(), db.open());
            enqueue_at(&mut a, "evt_1a", 1, 0);
            enqueue_at(&mut a, "evt_1b", 1, 1);
            enqueue_at(&mut a, "evt_2a", 2, 2);
            // The oldest of each consultation, once.
            assert_eq!(
                claimed(&mut a, "a", 10),
                ["evt_1a", "evt_2a"],
                "{}",
                db.engine
            );
            assert!(
                claimed(&mut b, "b", 10).is_empty(),
                "{}: claimed twice",
                db.engine
            );
            // Nothing is due until a claim ends: not the row waiting behind
            // a claimed one, whose own time has passed.
            assert_eq!(
                next_due_ms(&mut b).unwrap(),
                Some(10 + LEASE),
                "{}",
                db.engine
            );
            // Consultation 1's first is delivered: its second is next.
            let first = a
                .query_row(
                    "SELECT seq FROM hook_outbox WHERE event_id = 'evt_1a'",
                    &[],
                    |r| r.get(0),
                )
                .unwrap();
            delivered(&mut a, first).unwrap();
            assert_eq!(claimed(&mut b, "b", 20), ["evt_1b"], "{}", db.engine);
            // The deliverer holding consultation 2 died: after its lease,
            // another takes the row.
            assert!(
                claimed(&mut b, "b", 10 + LEASE - 1).is_empty(),
                "{}",
                db.engine
            );
            assert_eq!(
                claimed(&mut b, "b", 10 + LEASE),
                ["evt_2a"],
                "{}",
                db.engine
            );
            // Node b starts again at once: its claim ends with its restart.
            assert_eq!(release_claims(&mut b, "b").unwrap(), 2, "{}", db.engine);
            assert_eq!(
                claimed(&mut b, "b", 30 + LEASE),
                ["evt_1b", "evt_2a"],
                "{}",
                db.engine
            );
        }
    }
}
