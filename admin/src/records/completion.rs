//! Completing an encounter: the clinician's outcome is stored (coded
//! answers readable, free text sealed), noted in the audit trail, and sent
//! as `encounter.completed` with the resident's identifiers and the
//! consultation's finished recordings, for the integration engine to file.
//! The care plan is what the home reads afterwards.

use crate::sql::{values, Db, OptionalRow, SqlResult};
use serde_json::json;

use super::audit::{self, Actor};
use super::outcome::{CarePlan, Outcome, Written};
use super::residents::open_resident;
use super::seal::RecordKey;
use super::seal::{unreadable, unsealable};
use crate::hooks::{rfc3339, HookTargets};

const WRITTEN_AS: &str = "outcome";

/// How long a care plan stays on the home's page.
pub const PLAN_SHOWN_FOR_MS: i64 = 72 * 3600 * 1000;

/// Stores `outcome` for encounter `id` and sends `encounter.completed`;
/// `None` when there is no such encounter, else whether this amended an
/// earlier outcome.
pub(crate) fn record(
    c: &mut Db,
    key: &RecordKey,
    hooks: &HookTargets,
    id: i64,
    outcome: &Outcome,
    who: &Actor,
    now_ms: i64,
) -> SqlResult<Option<bool>> {
    let Some((call, resident, before, reason)) = c
        .query_row(
            "SELECT e.call_id, e.resident, e.outcome_at_ms, q.reason
             FROM encounters e LEFT JOIN queued_calls q ON q.id = e.hub_call WHERE e.id = ?1",
            values![id],
            |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<Vec<u8>>(1)?,
                    r.get::<Option<i64>>(2)?,
                    r.get::<Option<String>>(3)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let amended = before.is_some();
    let written = Written {
        referrals: outcome.referrals.clone(),
        note: outcome.note.clone(),
        care_plan: outcome.care_plan.clone(),
    };
    let sealed = key
        .seal(
            WRITTEN_AS,
            &serde_json::to_vec(&written).unwrap_or_default(),
        )
        .map_err(unsealable)?;
    c.execute(
        "UPDATE encounters SET disposition = ?2, conveyance_avoided = ?3, medicines_prescribed = ?4,
         restore2_used = ?5, news2 = ?6, respect = ?7, treatment_plan = ?8, written = ?9,
         outcome_by = ?10, outcome_at_ms = ?11 WHERE id = ?1",
        values![
            id,
            outcome.disposition.code(),
            outcome.conveyance_avoided,
            outcome.medicines_prescribed,
            outcome.restore2_used,
            outcome.news2,
            json!(outcome.respect).as_str(),
            outcome.treatment_plan,
            sealed,
            who.account,
            now_ms
        ],
    )?;
    let action = if amended {
        "outcome.edited"
    } else {
        "outcome.recorded"
    };
    audit::note(
        c,
        who,
        action,
        &format!("consultation {call}, encounter {id}"),
        now_ms,
    )?;
    if hooks.any() {
        let resident = open_resident(key, &resident).map_err(|e| unreadable(1, e))?;
        let (started, ended): (i64, Option<i64>) = c.query_row(
            "SELECT started_at_ms, ended_at_ms FROM calls WHERE id = ?1",
            values![call],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let roles = crate::hooks::sessions_by_role(c, call)?;
        // A photo is filed with a resident only when the consultation saw
        // that resident alone: with two, nothing says whose wound it shows.
        let residents: i64 = c.query_row(
            "SELECT COUNT(*) FROM encounters WHERE call_id = ?1",
            values![call],
            |r| r.get(0),
        )?;
        let images = match residents {
            1 => crate::call_log::ready_images(c, call, hooks, now_ms)?,
            _ => Vec::new(),
        };
        let data = json!({
            "encounter": id,
            "resident": resident,
            "clinician": who.account,
            "reason": reason.filter(|r| !r.is_empty()),
            "participants": roles,
            "started_at": rfc3339(started),
            "ended_at": ended.map(rfc3339),
            "outcome": {
                "disposition": outcome.disposition,
                "conveyance_avoided": outcome.conveyance_avoided,
                "medicines_prescribed": outcome.medicines_prescribed,
                "restore2_used": outcome.restore2_used,
                "news2": outcome.news2,
                "respect": outcome.respect,
                "treatment_plan": outcome.treatment_plan,
                "referrals": outcome.referrals,
            },
            "note": outcome.note,
            "care_plan": outcome.care_plan,
            "recorded_at": rfc3339(now_ms),
            "amended": amended,
            "recordings": crate::call_log::ready_recordings(c, call)?,
            "images": images,
        });
        hooks.emit(c, call, "encounter.completed", data, now_ms)?;
    }
    Ok(Some(amended))
}

/// A consultation a clinician took part in that ended without an outcome
/// for every resident (or with no resident attached at all).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingOutcome {
    /// The consultation.
    pub consultation: i64,
    /// Its room.
    pub room: String,
    /// When it ended, ms since the Unix epoch.
    pub ended_at_ms: i64,
    /// Residents attached.
    pub residents: u32,
    /// Of those, without an outcome.
    pub without_outcome: u32,
}

/// The consultations that ended more than `due_ms` before `now_ms` with a
/// clinician or specialist in them and an outcome missing, newest first
/// (at most 200).
pub(crate) fn missing_outcomes(
    c: &mut Db,
    now_ms: i64,
    due_ms: i64,
) -> SqlResult<Vec<MissingOutcome>> {
    let rows = c.query_map("SELECT c.id, c.room, c.ended_at_ms,
                (SELECT COUNT(*) FROM encounters e WHERE e.call_id = c.id),
                (SELECT COUNT(*) FROM encounters e WHERE e.call_id = c.id AND e.outcome_at_ms IS NULL)
         FROM calls c
         WHERE c.ended_at_ms IS NOT NULL AND c.ended_at_ms <= ?1
           AND EXISTS (SELECT 1 FROM participant_sessions s
                       WHERE s.call_id = c.id AND s.role IN ('clinician', 'specialist'))
         ORDER BY c.ended_at_ms DESC", values![now_ms - due_ms], |r| {
        Ok(MissingOutcome {
            consultation: r.get(0)?,
            room: r.get(1)?,
            ended_at_ms: r.get(2)?,
            residents: r.get(3)?,
            without_outcome: r.get(4)?,
        })
    })?;
    let mut missing = Vec::new();
    for row in rows {
        if row.residents == 0 || row.without_outcome > 0 {
            missing.push(row);
            if missing.len() == 200 {
                break;
            }
        }
    }
    Ok(missing)
}

/// A care plan as the home sees it: which call, the initials the home gave,
/// who wrote it and when, and the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HomePlan {
    /// The home's call.
    pub hub_call: i64,
    /// The initials the home gave when it called (may be empty).
    pub initials: String,
    /// The clinician who wrote it.
    pub by: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The plan.
    pub plan: CarePlan,
}

/// The care plans written for home `home_id`'s calls in the last 72 hours,
/// newest first.
pub(crate) fn plans_for_home(
    c: &mut Db,
    key: &RecordKey,
    home_id: &str,
    now_ms: i64,
) -> SqlResult<Vec<HomePlan>> {
    let rows = c.query_map(
        "SELECT e.hub_call, q.initials, e.outcome_by, e.outcome_at_ms, e.written
         FROM encounters e JOIN queued_calls q ON q.id = e.hub_call
         WHERE q.home_id = ?1 AND e.outcome_at_ms >= ?2 ORDER BY e.outcome_at_ms DESC",
        values![home_id, now_ms - PLAN_SHOWN_FOR_MS],
        |r| {
            let sealed: Vec<u8> = r.get(4)?;
            let plain = key
                .open(WRITTEN_AS, &sealed)
                .map_err(|e| unreadable(4, e))?;
            let written: Written = serde_json::from_slice(&plain).map_err(|e| unreadable(4, e))?;
            Ok(HomePlan {
                hub_call: r.get(0)?,
                initials: r.get(1)?,
                by: r.get(2)?,
                at_ms: r.get(3)?,
                plan: written.care_plan,
            })
        },
    )?;
    Ok(rows)
}
