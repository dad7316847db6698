//! Connectivity checks kept for the helpdesk, by code, for 90 days, on
//! either engine (see `sql`).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::verdict::CheckResult;
use crate::clock::ms;
use crate::sql::{Database, Db, Row, SqlError, Value};
use crate::AdminError;

/// How long checks are kept.
pub const CHECK_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Letters and digits that cannot be misread over the phone (no 0/O, 1/I).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 6;

/// A stored check.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheck {
    /// Its code, as shown (`ABC-DEF`).
    pub code: String,
    /// When it was stored, ms since the epoch.
    pub created_at_ms: i64,
    /// The address the tablet reached the hub from.
    pub remote_addr: String,
    /// The tablet's browser.
    pub user_agent: String,
    /// What it measured.
    pub result: CheckResult,
}

/// The checks table.
pub struct Checks {
    db: Db,
    /// Where it is, for errors: the SQLite file, or "PostgreSQL".
    at: String,
}

/// `ABCDEF` as `ABC-DEF`.
fn shown(code: &str) -> String {
    format!("{}-{}", &code[..3], &code[3..])
}

/// A code as someone typed it (any case, with or without the dash or
/// spaces), as stored; `None` if it cannot be one.
pub fn normalise_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

impl Checks {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Checks, AdminError> {
        Checks::connect(&Database::Sqlite(path.to_owned()))
    }

    /// The checks in `database` (created and migrated as needed).
    pub fn connect(database: &Database) -> Result<Checks, AdminError> {
        let mut checks = Checks::on(database.open()?);
        checks.at = database.to_string();
        Ok(checks)
    }

    /// The checks in `db`, already migrated (see `sql::postgres::connect`).
    pub fn on(db: Db) -> Checks {
        let at = db.engine().into();
        Checks { db, at }
    }

    fn err(&self, source: SqlError) -> AdminError {
        AdminError::sql(&self.at, source)
    }

    /// Stores a check under a new code (and under the home it was run for,
    /// if any) and returns the code as shown. Checks older than
    /// [`CHECK_RETENTION`] are deleted on the way.
    pub fn store(
        &mut self,
        at: SystemTime,
        remote_addr: &str,
        user_agent: &str,
        result: &CheckResult,
        home_id: Option<&str>,
    ) -> Result<String, AdminError> {
        // Plain structs of numbers and strings: serialising cannot fail.
        let json = serde_json::to_string(result).unwrap_or_else(|_| "{}".into());
        let cutoff = ms(at) - CHECK_RETENTION.as_millis() as i64;
        self.db
            .execute(
                "DELETE FROM connectivity_checks WHERE created_at_ms < ?1",
                &[cutoff.into()],
            )
            .map_err(|e| self.err(e))?;
        // A clash is unlikely (32^6 codes); try a few.
        for _ in 0..5 {
            let code = new_code()?;
            let params: [Value; 6] = [
                code.as_str().into(),
                ms(at).into(),
                remote_addr.into(),
                user_agent.into(),
                json.as_str().into(),
                home_id.into(),
            ];
            let inserted = self
                .db
                .execute(
                    "INSERT INTO connectivity_checks (code, created_at_ms, remote_addr, user_agent, result_json, home_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    &params,
                )
                .map_err(|e| self.err(e))?;
            if inserted == 1 {
                return Ok(shown(&code));
            }
        }
        Err(AdminError::NoFreeCode)
    }

    /// The check with this code, typed any way.
    pub fn find(&mut self, typed: &str) -> Result<Option<StoredCheck>, AdminError> {
        let Some(code) = normalise_code(typed) else {
            return Ok(None);
        };
        let sql = format!("SELECT {COLUMNS} FROM connectivity_checks WHERE code = ?1");
        let found = self
            .db
            .query_opt(&sql, &[code.into()])
            .map_err(|e| self.err(e))?;
        match found {
            Some(row) => stored(&row).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// The latest `limit` checks filed under a home, newest first.
    pub fn of_home(&mut self, home_id: &str, limit: u32) -> Result<Vec<StoredCheck>, AdminError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM connectivity_checks WHERE home_id = ?1
             ORDER BY created_at_ms DESC LIMIT ?2"
        );
        let rows = self
            .db
            .query(&sql, &[home_id.into(), limit.into()])
            .map_err(|e| self.err(e))?;
        let mut checks = Vec::with_capacity(rows.len());
        for row in &rows {
            checks.extend(stored(row).map_err(|e| self.err(e))?);
        }
        Ok(checks)
    }
}

const COLUMNS: &str = "code, created_at_ms, remote_addr, user_agent, result_json";

/// A row of [`COLUMNS`]; `None` if its result no longer reads.
fn stored(r: &Row) -> Result<Option<StoredCheck>, SqlError> {
    let (code, json): (String, String) = (r.get(0)?, r.get(4)?);
    let (created_at_ms, remote_addr, user_agent) = (r.get(1)?, r.get(2)?, r.get(3)?);
    Ok(serde_json::from_str(&json).ok().map(|result| StoredCheck {
        code: shown(&code),
        created_at_ms,
        remote_addr,
        user_agent,
        result,
    }))
}

fn new_code() -> Result<String, AdminError> {
    let mut bytes = [0u8; CODE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AdminError::Random)?;
    Ok(bytes
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::each_engine;

    #[test]
    fn a_stored_check_is_found_by_its_code_typed_loosely() {
        for (mut checks, _keep) in each_engine(Checks::on) {
            let result = CheckResult {
                upload_kbps: Some(640),
                ..CheckResult::default()
            };
            let now = SystemTime::now();
            let code = checks
                .store(now, "10.0.0.2", "Chromium", &result, None)
                .unwrap();
            assert_eq!(code.len(), 7);
            assert_eq!(&code[3..4], "-");
            let typed = code.to_lowercase().replace('-', " ");
            let found = checks.find(&typed).unwrap().expect("found");
            assert_eq!(found.code, code, "{}", checks.at);
            assert_eq!(found.result, result);
            assert_eq!(found.remote_addr, "10.0.0.2");
            assert_eq!(checks.find("ABC-DE0").unwrap(), None, "not a code");
            assert_eq!(checks.find("nonsense").unwrap(), None);
        }
    }

    #[test]
    fn old_checks_go_after_90_days() {
        for (mut checks, _keep) in each_engine(Checks::on) {
            let long_ago = SystemTime::now() - CHECK_RETENTION - Duration::from_secs(60);
            let old = checks
                .store(long_ago, "a", "b", &CheckResult::default(), Some("h1"))
                .unwrap();
            let new = checks
                .store(
                    SystemTime::now(),
                    "a",
                    "b",
                    &CheckResult::default(),
                    Some("h1"),
                )
                .unwrap();
            assert_eq!(checks.find(&old).unwrap(), None, "{}", checks.at);
            let of_home = checks.of_home("h1", 10).unwrap();
            assert_eq!(of_home.len(), 1);
            assert_eq!(of_home[0].code, new);
            assert_eq!(checks.of_home("h2", 10).unwrap(), []);
        }
    }

    #[test]
    fn a_code_already_taken_is_not_overwritten() {
        for (mut checks, _keep) in each_engine(Checks::on) {
            let first = checks
                .store(
                    SystemTime::now(),
                    "a",
                    "first",
                    &CheckResult::default(),
                    None,
                )
                .unwrap();
            let taken = first.replace('-', "");
            let inserted = checks
                .db
                .execute(
                    "INSERT INTO connectivity_checks (code, created_at_ms, remote_addr, user_agent, result_json)
                     VALUES (?1, 0, 'b', 'second', '{}') ON CONFLICT DO NOTHING",
                    &[taken.into()],
                )
                .unwrap();
            assert_eq!(inserted, 0, "{}", checks.at);
            let found = checks.find(&first).unwrap().expect("still there");
            assert_eq!(found.user_agent, "first");
        }
    }
}
