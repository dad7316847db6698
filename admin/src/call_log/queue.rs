//! Care homes and the hub's call queue, kept in the call log's database so
//! a waiting call survives a restart. Answering is one conditional UPDATE:
//! of two operators answering at the same instant, exactly one changes the
//! row.

use rand_free::random_id;
use rusqlite::{params, OptionalExtension, Row};

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
    /// The resident's initials, if given.
    pub initials: String,
    /// The room the call happens in.
    pub room: String,
    /// `waiting`, `answered` or `cancelled`.
    pub state: String,
    /// When it was queued, ms since the epoch.
    pub queued_at_ms: i64,
    /// When it was answered.
    pub answered_at_ms: Option<i64>,
    /// Who answered (an admin account's name).
    pub answered_by: Option<String>,
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

fn home(r: &Row<'_>) -> rusqlite::Result<Home> {
    Ok(Home {
        id: r.get(0)?,
        name: r.get(1)?,
        revoked_at_ms: r.get(2)?,
        link_version: r.get(3)?,
    })
}

const CALL_COLUMNS: &str = "c.id, c.home_id, h.name, c.urgent, c.reason, c.initials, c.room, c.state, c.queued_at_ms, c.answered_at_ms, c.answered_by";

fn call(r: &Row<'_>) -> rusqlite::Result<QueuedCall> {
    Ok(QueuedCall {
        id: r.get(0)?,
        home_id: r.get(1)?,
        home_name: r.get(2)?,
        urgent: r.get(3)?,
        reason: r.get(4)?,
        initials: r.get(5)?,
        room: r.get(6)?,
        state: r.get(7)?,
        queued_at_ms: r.get(8)?,
        answered_at_ms: r.get(9)?,
        answered_by: r.get(10)?,
    })
}

/// The queue's order: urgent first, then by waiting time.
const ORDER: &str = "c.urgent DESC, c.queued_at_ms, c.id";

/// What an answer attempt found.
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
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(AdminError::BadAccount(
                "a home's name is 1 to 80 characters".into(),
            ));
        }
        let id = random_id("h").ok_or(AdminError::Random)?;
        self.conn
            .execute(
                "INSERT INTO homes (id, name, created_at_ms, link_version) VALUES (?1, ?2, ?3, 1)",
                params![id, name, now_ms],
            )
            .map_err(|e| self.err(e))?;
        self.home(&id)?.ok_or(AdminError::Interrupted)
    }

    /// One home.
    pub fn home(&self, id: &str) -> Result<Option<Home>, AdminError> {
        self.conn
            .query_row(
                "SELECT id, name, revoked_at_ms, link_version FROM homes WHERE id = ?1",
                [id],
                home,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every home, by name.
    pub fn homes(&self) -> Result<Vec<Home>, AdminError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, revoked_at_ms, link_version FROM homes ORDER BY name, id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], home).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Withdraws a home's link; false if there is no such home.
    pub fn revoke_home(&self, id: &str, now_ms: i64) -> Result<bool, AdminError> {
        let n = self
            .conn
            .execute(
                "UPDATE homes SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                params![id, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Gives a home a new link (and takes back a withdrawal); the old link
    /// stops working.
    pub fn reissue_home(&self, id: &str) -> Result<Option<Home>, AdminError> {
        self.conn
            .execute("UPDATE homes SET link_version = link_version + 1, revoked_at_ms = NULL WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        self.home(id)
    }

    /// Queues a call from `home`; the call's room is named after it.
    pub fn queue_call(
        &self,
        home: &Home,
        urgent: bool,
        reason: &str,
        initials: &str,
        now_ms: i64,
    ) -> Result<QueuedCall, AdminError> {
        let id = self.change(|c| {
            c.execute(
                "INSERT INTO queued_calls (home_id, urgent, reason, initials, room, state, queued_at_ms)
                 VALUES (?1, ?2, ?3, ?4, '', 'waiting', ?5)",
                params![home.id, urgent, reason, initials, now_ms],
            )?;
            let id = c.last_insert_rowid();
            c.execute("UPDATE queued_calls SET room = 'hub-call-' || id WHERE id = ?1", [id])?;
            Ok(id)
        })?;
        self.queued_call(id)?.ok_or(AdminError::Interrupted)
    }

    /// One call.
    pub fn queued_call(&self, id: i64) -> Result<Option<QueuedCall>, AdminError> {
        self.conn
            .query_row(
                &format!("SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id WHERE c.id = ?1"),
                [id],
                call,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The waiting calls in the order they will be answered.
    pub fn queue(&self) -> Result<Vec<QueuedCall>, AdminError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CALL_COLUMNS} FROM queued_calls c JOIN homes h ON h.id = c.home_id
                 WHERE c.state = 'waiting' ORDER BY {ORDER}"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], call).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Operator `who` answers call `id`: exactly one of several at once wins.
    pub fn answer(&self, id: i64, who: &str, now_ms: i64) -> Result<Answer, AdminError> {
        let won = self
            .conn
            .execute(
                "UPDATE queued_calls SET state = 'answered', answered_at_ms = ?2, answered_by = ?3
                 WHERE id = ?1 AND state = 'waiting'",
                params![id, now_ms, who],
            )
            .map_err(|e| self.err(e))?
            == 1;
        Ok(match (won, self.queued_call(id)?) {
            (true, Some(c)) => Answer::Answered(c),
            (false, Some(c)) => Answer::AlreadyTaken(c),
            (_, None) => Answer::NoSuchCall,
        })
    }

    /// The home cancels its waiting call; false if it was not waiting.
    pub fn cancel_call(&self, id: i64, home_id: &str) -> Result<bool, AdminError> {
        let n = self
            .conn
            .execute(
                "UPDATE queued_calls SET state = 'cancelled' WHERE id = ?1 AND home_id = ?2 AND state = 'waiting'",
                params![id, home_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Seconds from queueing to answer, averaged over the last 20 answered
    /// calls: the basis of the estimated wait shown to a home.
    pub fn mean_wait_seconds(&self) -> Result<Option<f64>, AdminError> {
        self.conn
            .query_row(
                "SELECT AVG(answered_at_ms - queued_at_ms) / 1000.0 FROM
                 (SELECT answered_at_ms, queued_at_ms FROM queued_calls WHERE state = 'answered'
                  ORDER BY answered_at_ms DESC LIMIT 20)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}
