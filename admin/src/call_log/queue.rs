//! Care homes and the hub's call queue, kept in the call log's database so
//! a waiting call survives a restart. Answering is one conditional UPDATE:
//! of two operators answering at the same instant, exactly one changes the
//! row.

use crate::sql::{values, Db, OptionalRow, Row, SqlResult};
use rand_free::random_id;

use super::CallLog;
use crate::AdminError;

/// One care home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// Its id (random, in its link).
    pub id: String,
    /// Its name, shown to the hub.
    pub name: String,
    /// When its link was withdrawn, if it was.
    pub revoked_at_ms: Option<i64>,
    /// Bumped by each new link: older links stop working.
    pub link_version: i64,
}

/// One call from a home, from queued to answered (or cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCall {
    /// Its number.
    pub id: i64,
    /// The calling home.
    pub home_id: String,
    /// The home's name.
    pub home_name: String,
    /// Urgent calls go first.
    pub urgent: bool,
    /// Free text from the home (no patient identifiers are asked for).
    pub reason: String,
    /// What it is about, from the hub's list ("" when not chosen).
    pub reason_category: String,
    /// The resident's initials, if given.
    pub initials: String,
    /// The room the call happens in.
    pub room: String,
    /// `waiting`, `answered` (someone holds it), `transferring` (passed to
    /// a clinician who has not taken it yet), `cancelled` or `ended`.
    pub state: String,
    /// When it was queued, ms since the epoch.
    pub queued_at_ms: i64,
    /// When it was first answered.
    pub answered_at_ms: Option<i64>,
    /// Who first answered (an account's name).
    pub answered_by: Option<String>,
    /// The named queue it waits in ("" is the hub's main queue).
    pub queue_name: String,
    /// Who has it now (or is being passed it).
    pub held_by: Option<String>,
    /// Since when it waits in its current queue (its place in the order).
    pub waiting_since_ms: i64,
    /// Who passed it to the clinician it is waiting for, while it waits.
    pub passed_by: Option<String>,
    /// Why an operator declined it, if one did.
    pub declined_reason: Option<String>,
}

impl QueuedCall {
    /// Whether the home is in a call with the hub on it.
    pub fn in_progress(&self) -> bool {
        matches!(self.state.as_str(), "answered" | "transferring")
    }
}

/// Random ids without another dependency: ring's generator, base64url.
mod rand_free {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::{SecureRandom, SystemRandom};

    pub fn random_id(prefix: &str) -> Option<String> {
        let mut bytes = [0u8; 9];
        SystemRandom::new().fill(&mut bytes).ok()?;
        Some(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }
}

fn home(r: &Row) -> SqlResult<Home> {
    Ok(Home {
        id: r.get(0)?,
        name: r.get(1)?,
        revoked_at_ms: r.get(2)?,
        link_version: r.get(3)?,
    })
}

pub(super) const CALL_COLUMNS: &str = "c.id, c.home_id, h.name, c.urgent, c.reason, c.initials, c.room, c.state, c.queued_at_ms, c.answered_at_ms, c.answered_by, c.queue_name, c.held_by, c.waiting_since_ms, c.passed_by, c.declined_reason, c.reason_category";

pub(super) fn call(r: &Row) -> SqlResult<QueuedCall> {
    call_at(r, 0)
}

/// A call read from [`CALL_COLUMNS`] starting at column `at`.
pub(super) fn call_at(r: &Row, at: usize) -> SqlResult<QueuedCall> {
    Ok(QueuedCall {
        id: r.get(at)?,
        home_id: r.get(at + 1)?,
        home_name: r.get(at + 2)?,
        urgent: r.get(at + 3)?,
        reason: r.get(at + 4)?,
        initials: r.get(at + 5)?,
        room: r.get(at + 6)?,
        state: r.get(at + 7)?,
        queued_at_ms: r.get(at + 8)?,
        answered_at_ms: r.get(at + 9)?,
        answered_by: r.get(at + 10)?,
        queue_name: r.get(at + 11)?,
        held_by: r.get(at + 12)?,
        waiting_since_ms: r.get(at + 13)?,
        passed_by: r.get(at + 14)?,
        declined_reason: r.get(at + 15)?,
        reason_category: r.get(at + 16)?,
    })
}

/// A home's name, trimmed, or why it cannot be one.
fn home_name(name: &str) -> Result<&str, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AdminError::BadAccount(
            "a home's name is 1 to 80 characters".into(),
        ));
    }
    Ok(name)
}

/// One call, read inside a change.
pub(super) fn queued_call(c: &mut Db, id: i64) -> SqlResult<QueuedCall> {
    c.query_row(
        &format!("SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id WHERE c.id = ?1"),
        values![id],
        call,
    )
}

/// One call, read inside a change that goes on to change it by what it
/// read: locked until the change ends (see [`Db::lock_rows_of`]).
pub(super) fn queued_call_to_change(c: &mut Db, id: i64) -> SqlResult<QueuedCall> {
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id WHERE c.id = ?1{}",
        c.lock_rows_of("c")
    );
    c.query_row(&sql, values![id], call)
}

/// The queue's order: urgent first, then by waiting time.
const ORDER: &str = "c.urgent DESC, c.waiting_since_ms, c.id";

/// Who cancelled a call whose home's link was withdrawn or re-issued, in
/// the call's steps.
pub(crate) const WITHDRAWN: &str = "hub (home link withdrawn)";

/// What a home asks for when it calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallAsk {
    /// Urgent calls go first.
    pub urgent: bool,
    /// Free text, checked for length by the caller.
    pub reason: String,
    /// One of the hub's categories, or "".
    pub reason_category: String,
    /// The resident's initials, if given.
    pub initials: String,
}

/// What an answer (or decline) attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This operator has the call.
    Answered(QueuedCall),
    /// Someone else answered it first (or the home cancelled).
    AlreadyTaken(QueuedCall),
    /// No such call.
    NoSuchCall,
}

impl CallLog {
    /// Adds a home called `name`.
    pub fn add_home(&self, name: &str, now_ms: i64) -> Result<Home, AdminError> {
        let name = home_name(name)?;
        let id = random_id("h").ok_or(AdminError::Random)?;
        self.read(|c| {
            c.execute(
                "INSERT INTO homes (id, name, created_at_ms, link_version) VALUES (?1, ?2, ?3, 1)",
                values![id, name, now_ms],
            )
        })?;
        self.home(&id)?.ok_or(AdminError::Interrupted)
    }

    /// One home.
    pub fn home(&self, id: &str) -> Result<Option<Home>, AdminError> {
        self.read(|c| {
            c.query_row(
                "SELECT id, name, revoked_at_ms, link_version FROM homes WHERE id = ?1",
                values![id],
                home,
            )
            .optional()
        })
    }

    /// Every home, by name.
    pub fn homes(&self) -> Result<Vec<Home>, AdminError> {
        self.read(|c| {
            c.query_map(
                "SELECT id, name, revoked_at_ms, link_version FROM homes ORDER BY name, id",
                &[],
                home,
            )
        })
    }

    /// Withdraws a home's link; false if there is no such home. A call the
    /// home placed and nobody has answered yet is cancelled with it: nobody
    /// could be reached on it, and its page is refused from now on.
    pub fn revoke_home(&self, id: &str, now_ms: i64) -> Result<bool, AdminError> {
        self.end_home_link(id, now_ms, |c| {
            c.execute(
                "UPDATE homes SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                values![id, now_ms],
            )
        })
    }

    /// Runs `update` on a home's row in one change; if it changed the row
    /// (the home's current link stops working), the calls placed with that
    /// link that nobody answered are cancelled in the same change. Whether
    /// the row changed.
    fn end_home_link(
        &self,
        id: &str,
        now_ms: i64,
        update: impl FnOnce(&mut Db) -> SqlResult<usize>,
    ) -> Result<bool, AdminError> {
        self.change(|c| {
            let changed = update(c)? == 1;
            if changed {
                self.cancel_unanswered(c, id, now_ms)?;
            }
            Ok(changed)
        })
    }

    /// Cancels the home's calls that wait and were never answered (inside a
    /// change); the cancellation is recorded as the hub's, not the home's.
    fn cancel_unanswered(&self, c: &mut Db, home_id: &str, now_ms: i64) -> SqlResult<()> {
        let sql = format!(
            "SELECT id FROM queued_calls c
             WHERE home_id = ?1 AND state = 'waiting' AND answered_at_ms IS NULL ORDER BY id{}",
            c.lock_rows_of("c")
        );
        let ids: Vec<i64> = c.query_map(&sql, values![home_id], |r| r.get(0))?;
        for id in ids {
            c.execute(
                "UPDATE queued_calls SET state = 'cancelled' WHERE id = ?1",
                values![id],
            )?;
            let call = queued_call(c, id)?;
            self.happened(c, &call, "cancelled", WITHDRAWN, "", now_ms)?;
        }
        Ok(())
    }

    /// Renames a home; false if there is no such home.
    pub fn rename_home(&self, id: &str, name: &str) -> Result<bool, AdminError> {
        let name = home_name(name)?;
        let n = self.read(|c| {
            c.execute(
                "UPDATE homes SET name = ?2 WHERE id = ?1",
                values![id, name],
            )
        })?;
        Ok(n == 1)
    }

    /// Gives a home a new link (and takes back a withdrawal); the old link
    /// stops working, and an unanswered call placed with it is cancelled.
    pub fn reissue_home(&self, id: &str, now_ms: i64) -> Result<Option<Home>, AdminError> {
        self.end_home_link(id, now_ms, |c| {
            c.execute(
                "UPDATE homes SET link_version = link_version + 1, revoked_at_ms = NULL WHERE id = ?1",
                values![id],
            )
        })?;
        self.home(id)
    }

    /// Queues a call from `home` to `service` (the one open now); the
    /// call's room is named after it.
    pub fn queue_call(
        &self,
        home: &Home,
        ask: &CallAsk,
        service: &str,
        now_ms: i64,
    ) -> Result<QueuedCall, AdminError> {
        self.add_call(home, ask, Some(service), now_ms)
    }

    /// Counts a call from `home` while every service was closed: it never
    /// waits, and the home is told where else to turn.
    pub fn closed_call(
        &self,
        home: &Home,
        ask: &CallAsk,
        now_ms: i64,
    ) -> Result<QueuedCall, AdminError> {
        self.add_call(home, ask, None, now_ms)
    }

    fn add_call(
        &self,
        home: &Home,
        ask: &CallAsk,
        service: Option<&str>,
        now_ms: i64,
    ) -> Result<QueuedCall, AdminError> {
        let (state, kind) = match service {
            Some(_) => ("waiting", "queued"),
            None => ("closed", "closed"),
        };
        self.change(|c| {
            let id: i64 = c.query_row(
                "INSERT INTO queued_calls (home_id, urgent, reason, initials, room, state, queued_at_ms, waiting_since_ms, service, reason_category)
                 VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?6, ?7, ?8) RETURNING id",
                values![home.id, ask.urgent, ask.reason, ask.initials, state, now_ms, service, ask.reason_category],
                |r| r.get(0),
            )?;
            c.execute("UPDATE queued_calls SET room = 'hub-call-' || id WHERE id = ?1", values![id])?;
            let call = queued_call(c, id)?;
            self.happened(c, &call, kind, &home.name, "", now_ms)?;
            Ok(call)
        })
    }

    /// `who` declines waiting call `id` for `reason` (one of the hub's
    /// listed reasons): of several deciding at once, exactly one wins, as
    /// with answering.
    pub fn decline(
        &self,
        id: i64,
        who: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Answer, AdminError> {
        self.change(|c| {
            let won = c.execute(
                "UPDATE queued_calls SET state = 'declined', declined_reason = ?2, held_by = NULL
                 WHERE id = ?1 AND state = 'waiting' AND answered_at_ms IS NULL",
                values![id, reason],
            )? == 1;
            let Some(call) = queued_call(c, id).optional()? else {
                return Ok(Answer::NoSuchCall);
            };
            if !won {
                return Ok(Answer::AlreadyTaken(call));
            }
            self.happened(c, &call, "declined", who, reason, now_ms)?;
            Ok(Answer::Answered(call))
        })
    }

    /// The home's call still waiting to be answered, if it has one: a home
    /// has one place in the queue, however often its button is pressed.
    pub fn waiting_call_of(&self, home_id: &str) -> Result<Option<QueuedCall>, AdminError> {
        self.first_call_of(
            "home_id = ?1 AND state = 'waiting' AND answered_at_ms IS NULL AND ?2 = 0",
            home_id,
            0,
        )
    }

    /// The home's call turned away as closed since `since_ms`, if any: a
    /// home pressing Call again and again while the hub is closed is one
    /// counted call, not a row (and a console refresh) per press.
    pub fn closed_call_of(
        &self,
        home_id: &str,
        since_ms: i64,
    ) -> Result<Option<QueuedCall>, AdminError> {
        self.first_call_of(
            "home_id = ?1 AND state = 'closed' AND queued_at_ms >= ?2",
            home_id,
            since_ms,
        )
    }

    fn first_call_of(
        &self,
        condition: &str,
        home_id: &str,
        number: i64,
    ) -> Result<Option<QueuedCall>, AdminError> {
        let sql = format!("SELECT id FROM queued_calls WHERE {condition} ORDER BY id LIMIT 1");
        let id: Option<i64> = self.read(|c| {
            c.query_row(&sql, values![home_id, number], |r| r.get(0))
                .optional()
        })?;
        match id {
            Some(id) => self.queued_call(id),
            None => Ok(None),
        }
    }

    /// One call.
    pub fn queued_call(&self, id: i64) -> Result<Option<QueuedCall>, AdminError> {
        self.read(|c| queued_call(c, id).optional())
    }

    /// The waiting calls in the order they will be answered.
    pub fn queue(&self) -> Result<Vec<QueuedCall>, AdminError> {
        self.read(|c| {
            c.query_map(
                &format!(
                    "SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id
                 WHERE c.state = 'waiting' ORDER BY {ORDER}"
                ),
                &[],
                call,
            )
        })
    }

    /// `who` answers call `id` (from whichever queue it waits in): exactly
    /// one of several at once wins.
    pub fn answer(&self, id: i64, who: &str, now_ms: i64) -> Result<Answer, AdminError> {
        self.change(|c| {
            let won = c.execute(
                "UPDATE queued_calls SET state = 'answered', held_by = ?3,
                     answered_at_ms = COALESCE(answered_at_ms, ?2), answered_by = COALESCE(answered_by, ?3)
                 WHERE id = ?1 AND state = 'waiting'",
                values![id, now_ms, who],
            )? == 1;
            let call = match queued_call(c, id).optional()? {
                Some(call) => call,
                None => return Ok(Answer::NoSuchCall),
            };
            if !won {
                return Ok(Answer::AlreadyTaken(call));
            }
            self.happened(c, &call, "answered", who, &call.queue_name, now_ms)?;
            Ok(Answer::Answered(call))
        })
    }

    /// The home cancels its waiting call; false if it was not waiting.
    pub fn cancel_call(&self, id: i64, home_id: &str, now_ms: i64) -> Result<bool, AdminError> {
        self.change(|c| {
            let n = c.execute(
                "UPDATE queued_calls SET state = 'cancelled' WHERE id = ?1 AND home_id = ?2 AND state = 'waiting'",
                values![id, home_id],
            )?;
            if n == 1 {
                let call = queued_call(c, id)?;
                self.happened(c, &call, "cancelled", &call.home_name, "", now_ms)?;
            }
            Ok(n == 1)
        })
    }

    /// Seconds from queueing to answer, averaged over the last 20 answered
    /// calls: the basis of the estimated wait shown to a home.
    pub fn mean_wait_seconds(&self) -> Result<Option<f64>, AdminError> {
        self.read(|c| {
            c.query_row(
                "SELECT CAST(AVG(answered_at_ms - queued_at_ms) AS DOUBLE PRECISION) / 1000.0 FROM
                 (SELECT answered_at_ms, queued_at_ms FROM queued_calls WHERE answered_at_ms IS NOT NULL
                  ORDER BY answered_at_ms DESC LIMIT 20) AS latest",
                &[],
                |r| r.get(0),
            )
        })
    }
}
