//! What happens to a hub call after it is answered: passed to a clinician
//! or a named queue, a specialist brought in. Every step is a row in
//! `queue_events` (the call's history) and, for the steps a patient record
//! cares about, a record-hook event written in the same transaction.

use crate::sql::{values, Db, OptionalRow, SqlResult};
use serde_json::json;

use super::queue::{queued_call, queued_call_to_change, QueuedCall, CALL_COLUMNS};
use super::CallLog;
use crate::AdminError;

/// One step in a hub call's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueEvent {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// `queued`, `answered`, `transferred`, `accepted`, `invited`,
    /// `joined`, `cancelled` or `ended`.
    pub kind: String,
    /// Who did it (an account's name, or the home's).
    pub actor: String,
    /// To whom or where: a clinician's or specialist's name, or
    /// `queue:NAME` for a named queue.
    pub target: String,
}

/// Where a call is passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A clinician's account: they see it in their console and take it.
    Clinician(String),
    /// A named queue ("GP", "frailty"): the call waits there to be answered.
    Queue(String),
}

/// What a handover attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Done; the call as it is now.
    Done(QueuedCall),
    /// The call is not held by the one asking (or not in that state).
    NotYours(QueuedCall),
    /// No such call.
    NoSuchCall,
}

/// The record-hook event type for a step, if the step has one.
fn hook_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "queued" => "call.queued",
        "answered" => "call.answered",
        "transferred" => "call.transferred",
        "invited" => "specialist.invited",
        "cancelled" => "call.cancelled",
        "declined" => "call.declined",
        _ => return None,
    })
}

impl CallLog {
    /// Records step `kind` of `call` (inside a change), with its hook event.
    pub(super) fn happened(
        &self,
        c: &mut Db,
        call: &QueuedCall,
        kind: &str,
        actor: &str,
        target: &str,
        now_ms: i64,
    ) -> SqlResult<()> {
        c.execute(
            "INSERT INTO queue_events (call_id, at_ms, kind, actor, target) VALUES (?1, ?2, ?3, ?4, ?5)",
            values![call.id, now_ms, kind, actor, target],
        )?;
        let Some(hook) = hook_kind(kind) else {
            return Ok(());
        };
        let mut data = json!({
            "home": call.home_name,
            "urgent": call.urgent,
            "queued_at": crate::hooks::rfc3339(call.queued_at_ms),
            "waited_seconds": (now_ms - call.queued_at_ms).max(0) / 1000,
        });
        match kind {
            "queued" => {
                data["reason"] = json!(call.reason);
                data["reason_category"] = json!(call.reason_category);
                data["initials"] = json!(call.initials);
            }
            "answered" => {
                data["answered_by"] = json!(actor);
                data["queue"] = json!(queue_label(target));
            }
            "transferred" => {
                data["by"] = json!(actor);
                match target.strip_prefix("queue:") {
                    Some(q) => data["to_queue"] = json!(q),
                    None => data["to"] = json!(target),
                }
            }
            "invited" => {
                data["by"] = json!(actor);
                let guest = target.strip_prefix("guest:");
                data["specialist"] = json!(guest.unwrap_or(target));
                data["guest"] = json!(guest.is_some());
            }
            "declined" => {
                data["by"] = json!(actor);
                data["reason"] = json!(target);
            }
            _ => {}
        }
        self.hooks
            .emit_hub_call(c, call.id, &call.room, hook, data, now_ms)
    }

    /// `by` passes call `id`, which they hold, to `to`. An admin (`anyone`)
    /// may pass on a call someone else holds.
    pub fn transfer(
        &self,
        id: i64,
        by: &str,
        anyone: bool,
        to: &TransferTarget,
        now_ms: i64,
    ) -> Result<Handover, AdminError> {
        self.change(|c| {
            let Some(call) = queued_call_to_change(c, id).optional()? else {
                return Ok(Handover::NoSuchCall);
            };
            // Whoever passed it on keeps the right to pass it again until it
            // is taken: a clinician who never takes it cannot strand it.
            let yours = call.held_by.as_deref() == Some(by)
                || (call.state == "transferring" && call.passed_by.as_deref() == Some(by))
                || anyone;
            if !(call.in_progress() && yours) {
                return Ok(Handover::NotYours(call));
            }
            let target = match to {
                TransferTarget::Clinician(name) => {
                    c.execute(
                        "UPDATE queued_calls SET state = 'transferring', held_by = ?2, passed_by = ?3 WHERE id = ?1",
                        values![id, name, by],
                    )?;
                    name.clone()
                }
                TransferTarget::Queue(q) => {
                    c.execute(
                        "UPDATE queued_calls SET state = 'waiting', held_by = NULL, passed_by = NULL, queue_name = ?2, waiting_since_ms = ?3 WHERE id = ?1",
                        values![id, q, now_ms],
                    )?;
                    format!("queue:{q}")
                }
            };
            let call = queued_call(c, id)?;
            self.happened(c, &call, "transferred", by, &target, now_ms)?;
            Ok(Handover::Done(call))
        })
    }

    /// Clinician `who` takes call `id` passed to them.
    pub fn accept_transfer(&self, id: i64, who: &str, now_ms: i64) -> Result<Handover, AdminError> {
        self.change(|c| {
            let n = c.execute(
                "UPDATE queued_calls SET state = 'answered', passed_by = NULL WHERE id = ?1 AND state = 'transferring' AND held_by = ?2",
                values![id, who],
            )?;
            let Some(call) = queued_call(c, id).optional()? else {
                return Ok(Handover::NoSuchCall);
            };
            if n == 0 {
                return Ok(Handover::NotYours(call));
            }
            self.happened(c, &call, "accepted", who, "", now_ms)?;
            Ok(Handover::Done(call))
        })
    }

    /// `by`, who holds call `id` (or an admin: `anyone`), invites
    /// specialist `specialist` into it.
    pub fn invite(
        &self,
        id: i64,
        by: &str,
        anyone: bool,
        specialist: &str,
        now_ms: i64,
    ) -> Result<Handover, AdminError> {
        self.change(|c| {
            let Some(call) = queued_call_to_change(c, id).optional()? else {
                return Ok(Handover::NoSuchCall);
            };
            let yours = call.held_by.as_deref() == Some(by) || anyone;
            if !(call.state == "answered" && yours) {
                return Ok(Handover::NotYours(call));
            }
            self.happened(c, &call, "invited", by, specialist, now_ms)?;
            Ok(Handover::Done(call))
        })
    }

    /// Specialist `who` joins call `id` they were invited to.
    pub fn accept_invite(&self, id: i64, who: &str, now_ms: i64) -> Result<Handover, AdminError> {
        self.change(|c| {
            let Some(call) = queued_call_to_change(c, id).optional()? else {
                return Ok(Handover::NoSuchCall);
            };
            let invited: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM queue_events WHERE call_id = ?1 AND kind = 'invited' AND target = ?2)",
                values![id, who],
                |r| r.get(0),
            )?;
            if !(invited && call.in_progress()) {
                return Ok(Handover::NotYours(call));
            }
            self.happened(c, &call, "joined", who, "", now_ms)?;
            Ok(Handover::Done(call))
        })
    }

    /// The calls waiting for `who` to act: passed to them, or an invitation
    /// they have not taken up, while the call is on.
    pub fn for_you(&self, who: &str) -> Result<Vec<(String, QueuedCall)>, AdminError> {
        self.read(|c| c.query_map(&format!(
                "SELECT 'transfer', {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id
                 WHERE c.state = 'transferring' AND c.held_by = ?1
                 UNION ALL
                 SELECT 'invitation', {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id
                 WHERE c.state IN ('answered', 'transferring')
                   AND EXISTS (SELECT 1 FROM queue_events e WHERE e.call_id = c.id AND e.kind = 'invited' AND e.target = ?1)
                   AND NOT EXISTS (SELECT 1 FROM queue_events e WHERE e.call_id = c.id AND e.kind = 'joined' AND e.actor = ?1)"
            ), values![who], |r| {
                let kind: String = r.get(0)?;
                let call = super::queue::call_at(r, 1)?;
                Ok((kind, call))
            }))
    }

    /// The calls `who` holds now, or passed on and not yet taken.
    pub fn held_by(&self, who: &str) -> Result<Vec<QueuedCall>, AdminError> {
        self.read(|c| {
            c.query_map(
                &format!(
                    "SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id
                 WHERE (c.state = 'answered' AND c.held_by = ?1)
                    OR (c.state = 'transferring' AND c.passed_by = ?1) ORDER BY c.id"
                ),
                values![who],
                super::queue::call,
            )
        })
    }

    /// Call `id`'s history, oldest first.
    pub fn queue_events(&self, id: i64) -> Result<Vec<QueueEvent>, AdminError> {
        self.read(|c| c.query_map("SELECT at_ms, kind, actor, target FROM queue_events WHERE call_id = ?1 ORDER BY id", values![id], |r| {
                Ok(QueueEvent {
                    at_ms: r.get(0)?,
                    kind: r.get(1)?,
                    actor: r.get(2)?,
                    target: r.get(3)?,
                })
            }))
    }

    /// The hub call held in `room`, if the room is one.
    pub fn hub_call_in(&self, room: &str) -> Result<Option<QueuedCall>, AdminError> {
        let Some(id) = room.strip_prefix("hub-call-").and_then(|n| n.parse().ok()) else {
            return Ok(None);
        };
        self.queued_call(id)
    }
}

/// Marks the hub call in `room` ended when its consultation ends (inside
/// the change that ended it).
pub(super) fn end_hub_call(c: &mut Db, room: &str, now_ms: i64) -> SqlResult<()> {
    // Also one passed to a named queue while the home was in the call: the
    // home has gone, so nobody should answer it.
    let ended = c.execute(
        "UPDATE queued_calls SET state = 'ended' WHERE room = ?1
         AND (state IN ('answered', 'transferring') OR (state = 'waiting' AND answered_at_ms IS NOT NULL))",
        values![room],
    )?;
    if ended == 1 {
        c.execute(
            "INSERT INTO queue_events (call_id, at_ms, kind, actor, target)
             SELECT id, ?2, 'ended', '', '' FROM queued_calls WHERE room = ?1",
            values![room, now_ms],
        )?;
    }
    Ok(())
}

/// How a queue is named to people: the main queue is "the hub".
pub fn queue_label(name: &str) -> &str {
    if name.is_empty() {
        "hub"
    } else {
        name
    }
}
