//! Admin accounts and their sign-in sessions, in the hub's database.
//!
//! Passwords are kept as Argon2id hashes (PHC strings, salt and parameters
//! included). A session is a random 256-bit token held in the browser's
//! cookie; the database keeps only its SHA-256, so a copy of the database
//! signs nobody in. Each session has its own CSRF token, which every
//! state-changing request must echo in a header.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::now_ms;

use crate::sql::{Database, Db, SqlError, Value};
use crate::AdminError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

mod manage;

pub use manage::SessionInfo;

/// How long a sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The shortest password accepted: long enough that the rate limit on
/// sign-ins makes guessing hopeless.
pub const MIN_PASSWORD_LEN: usize = 12;

/// What an account is for. Admins run the hub (dashboard, homes, history);
/// the others work the call queue in the hub console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountRole {
    /// Everything: the dashboard, homes, history, and the queue.
    Admin,
    /// Answers calls from the queue and passes them on.
    Operator,
    /// Takes calls passed on, answers named queues, invites specialists.
    Clinician,
    /// Joins calls they are invited to.
    Specialist,
}

impl AccountRole {
    /// Every role, in the order the console lists people.
    pub const ALL: [AccountRole; 4] = [
        AccountRole::Admin,
        AccountRole::Operator,
        AccountRole::Clinician,
        AccountRole::Specialist,
    ];

    /// The role's name, as stored and as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::Operator => "operator",
            AccountRole::Clinician => "clinician",
            AccountRole::Specialist => "specialist",
        }
    }

    /// May run the hub: dashboard, homes, history, hooks.
    pub fn is_admin(self) -> bool {
        self == AccountRole::Admin
    }

    /// May answer calls waiting in a queue.
    pub fn answers_calls(self) -> bool {
        self != AccountRole::Specialist
    }

    /// May bring a specialist into a call they hold.
    pub fn invites_specialists(self) -> bool {
        matches!(self, AccountRole::Admin | AccountRole::Clinician)
    }
}

impl std::str::FromStr for AccountRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: use admin, operator, clinician or specialist")
            })
    }
}

impl std::fmt::Display for AccountRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed-in account, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// The account's name.
    pub name: String,
    /// What the account may do.
    pub role: AccountRole,
    /// What state-changing requests must send in `x-csrf-token`.
    pub csrf: String,
}

/// A session just created: the token goes into the cookie, once.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// Who, and the CSRF token.
    pub session: AdminSession,
}

/// The account store.
pub struct Accounts {
    db: Mutex<Db>,
    /// Where it is, for errors: the SQLite file, or "PostgreSQL".
    at: String,
    random: SystemRandom,
    /// A hash of no account's password, checked against for unknown names
    /// so they cost one hash, as a known name does. Made on first use.
    stand_in: std::sync::OnceLock<String>,
}

impl Accounts {
    /// Opens the accounts in the database at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Accounts, AdminError> {
        Accounts::connect(&Database::Sqlite(path.to_owned()))
    }

    /// The accounts in `database` (created and migrated as needed).
    pub fn connect(database: &Database) -> Result<Accounts, AdminError> {
        let mut accounts = Accounts::on(database.open()?);
        accounts.at = database.to_string();
        Ok(accounts)
    }

    /// The accounts in `db`, already migrated (see `sql::postgres::connect`).
    pub fn on(db: Db) -> Accounts {
        Accounts {
            at: db.engine().into(),
            db: Mutex::new(db),
            random: SystemRandom::new(),
            stand_in: std::sync::OnceLock::new(),
        }
    }

    fn err(&self, source: SqlError) -> AdminError {
        AdminError::sql(&self.at, source)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one statement; how many rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<usize, AdminError> {
        self.db().execute(sql, params).map_err(|e| self.err(e))
    }

    /// Column 0 of each row a query gives.
    fn column<T: crate::sql::FromValue>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<T>, AdminError> {
        let rows = self.db().query(sql, params).map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| r.get(0).map_err(|e| self.err(e)))
            .collect()
    }

    /// Creates an account. Refuses a taken name, a name that is not 1-64
    /// letters, digits, '.', '-' or '_', and a password shorter than
    /// [`MIN_PASSWORD_LEN`].
    pub fn add(&self, name: &str, password: &str, role: AccountRole) -> Result<(), AdminError> {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if !name_ok {
            return Err(AdminError::BadAccount(format!(
                "account name {name:?}: use 1-64 letters, digits, '.', '-' or '_'"
            )));
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AdminError::BadAccount(format!(
                "password for {name}: at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let hash = self.hash(password)?;
        let inserted = self.execute(
            "INSERT INTO admin_accounts (name, password_hash, created_at_ms, role) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            &[name.into(), hash.into(), now_ms().into(), role.as_str().into()],
        )?;
        if inserted == 0 {
            return Err(AdminError::BadAccount(format!(
                "account {name} exists already"
            )));
        }
        Ok(())
    }

    fn hash(&self, password: &str) -> Result<String, AdminError> {
        let mut salt = [0u8; 16];
        self.random
            .fill(&mut salt)
            .map_err(|_| AdminError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| AdminError::Random)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AdminError::BadAccount(format!("password could not be hashed: {e}")))
    }

    /// Checks a password. Takes about as long for an unknown name as for a
    /// wrong password, so timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Result<bool, AdminError> {
        // A disabled account is checked as an unknown one: same cost, no.
        let stored: Option<String> = self
            .column(
                "SELECT password_hash FROM admin_accounts WHERE name = ?1 AND disabled_at_ms IS NULL",
                &[name.into()],
            )?
            .pop();
        let (hash, known) = match stored {
            Some(h) => (h, true),
            None => match self.stand_in.get() {
                Some(h) => (h.clone(), false),
                None => {
                    let h = self.hash("not an account, only its cost")?;
                    (self.stand_in.get_or_init(|| h).clone(), false)
                }
            },
        };
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| AdminError::BadAccount(format!("stored hash for {name}: {e}")))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    }

    /// The names of the accounts with `role`, sorted: whom a call can be
    /// passed to, or a specialist invited.
    pub fn named(&self, role: AccountRole) -> Result<Vec<String>, AdminError> {
        self.column(
            "SELECT name FROM admin_accounts WHERE role = ?1 ORDER BY name",
            &[role.as_str().into()],
        )
    }

    /// Accounts signed in now (a live session, not disabled), by role.
    pub fn signed_in_by_role(&self) -> Result<Vec<(String, i64)>, AdminError> {
        let rows = self
            .db()
            .query(
                "SELECT a.role, COUNT(DISTINCT s.name) FROM admin_sessions s JOIN admin_accounts a ON a.name = s.name
                 WHERE s.expires_at_ms > ?1 AND a.disabled_at_ms IS NULL GROUP BY a.role",
                &[now_ms().into()],
            )
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<Result<_, SqlError>>()
            .map_err(|e| self.err(e))
    }

    /// The role of account `name`, if it exists.
    pub fn role_of(&self, name: &str) -> Result<Option<AccountRole>, AdminError> {
        let role: Option<String> = self
            .column(
                "SELECT role FROM admin_accounts WHERE name = ?1",
                &[name.into()],
            )?
            .pop();
        Ok(role.and_then(|r| r.parse().ok()))
    }

    /// Signs `name` in: a new session valid for [`SESSION_TTL`].
    pub fn create_session(&self, name: &str) -> Result<NewSession, AdminError> {
        let role = self
            .role_of(name)?
            .ok_or_else(|| AdminError::BadAccount(format!("no account {name}")))?;
        let token = self.random_token()?;
        let csrf = self.random_token()?;
        let expires = now_ms() + SESSION_TTL.as_millis() as i64;
        self.execute(
            "DELETE FROM admin_sessions WHERE expires_at_ms < ?1",
            &[now_ms().into()],
        )?;
        self.execute(
            "INSERT INTO admin_sessions (token_sha256, name, csrf, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            &[
                digest(&token),
                name.into(),
                csrf.as_str().into(),
                expires.into(),
            ],
        )?;
        Ok(NewSession {
            token,
            session: AdminSession {
                name: name.to_owned(),
                role,
                csrf,
            },
        })
    }

    /// The live session behind a cookie's token, if any.
    pub fn session(&self, token: &str) -> Result<Option<AdminSession>, AdminError> {
        let row = self
            .db()
            .query_opt(
                "SELECT s.name, s.csrf, a.role FROM admin_sessions s JOIN admin_accounts a ON a.name = s.name
                 WHERE s.token_sha256 = ?1 AND s.expires_at_ms > ?2 AND a.disabled_at_ms IS NULL",
                &[digest(token), now_ms().into()],
            )
            .map_err(|e| self.err(e))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let read = || -> Result<AdminSession, SqlError> {
            let role: String = r.get(2)?;
            Ok(AdminSession {
                name: r.get(0)?,
                role: role.parse().unwrap_or(AccountRole::Specialist),
                csrf: r.get(1)?,
            })
        };
        read().map(Some).map_err(|e| self.err(e))
    }

    /// Signs a session out.
    pub fn end_session(&self, token: &str) -> Result<(), AdminError> {
        self.execute(
            "DELETE FROM admin_sessions WHERE token_sha256 = ?1",
            &[digest(token)],
        )
        .map(drop)
    }

    fn random_token(&self) -> Result<String, AdminError> {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| AdminError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

fn digest(token: &str) -> Value {
    Value::Blob(
        ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::each_engine;

    #[test]
    fn a_password_verifies_and_nothing_else_does() {
        for (a, _keep) in each_engine(Accounts::on) {
            a.add("hub.admin", "correct horse battery", AccountRole::Admin)
                .unwrap();
            assert!(
                a.verify("hub.admin", "correct horse battery").unwrap(),
                "{}",
                a.at
            );
            assert!(!a.verify("hub.admin", "correct horse batterY").unwrap());
            assert!(!a.verify("nobody", "correct horse battery").unwrap());
        }
    }

    #[test]
    fn bad_names_short_passwords_and_duplicates_are_refused() {
        for (a, _keep) in each_engine(Accounts::on) {
            assert!(a
                .add("hub admin", "correct horse battery", AccountRole::Admin)
                .is_err());
            assert!(a
                .add("", "correct horse battery", AccountRole::Admin)
                .is_err());
            assert!(a.add("hub", "short", AccountRole::Admin).is_err());
            a.add("hub", "correct horse battery", AccountRole::Operator)
                .unwrap();
            let again = a
                .add("hub", "another long password", AccountRole::Admin)
                .unwrap_err();
            assert!(again.to_string().contains("exists"), "{}: {again}", a.at);
            assert_eq!(a.named(AccountRole::Operator).unwrap(), ["hub"]);
            assert_eq!(a.role_of("hub").unwrap(), Some(AccountRole::Operator));
        }
    }

    #[test]
    fn sessions_are_found_by_token_only_and_end_on_sign_out() {
        for (a, _keep) in each_engine(Accounts::on) {
            a.add("hub", "correct horse battery", AccountRole::Operator)
                .unwrap();
            let new = a.create_session("hub").unwrap();
            assert_eq!(
                a.session(&new.token).unwrap(),
                Some(new.session.clone()),
                "{}",
                a.at
            );
            assert_eq!(a.session("forged").unwrap(), None);
            assert_eq!(
                a.signed_in_by_role().unwrap(),
                [("operator".to_string(), 1)]
            );
            let stored: Vec<Vec<u8>> = a
                .column("SELECT token_sha256 FROM admin_sessions", &[])
                .unwrap();
            assert_eq!(stored.len(), 1);
            assert_ne!(stored[0], new.token.as_bytes(), "only a digest is stored");
            a.end_session(&new.token).unwrap();
            assert_eq!(a.session(&new.token).unwrap(), None);
        }
    }
}
