//! Looking after accounts once they exist: a password changed, an account
//! disabled when someone leaves (or is suspected of leaking it), removed,
//! and its sessions listed or ended. Each change that takes access away also
//! ends the account's sessions, so it takes effect at once, not when the
//! cookie expires.

use super::{Accounts, MIN_PASSWORD_LEN};
use crate::clock::now_ms;
use crate::AdminError;

/// One signed-in session of an account, as `carecall admin sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// When it ends on its own, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

impl Accounts {
    fn require(&self, name: &str) -> Result<(), AdminError> {
        self.role_of(name)?
            .map(drop)
            .ok_or_else(|| AdminError::BadAccount(format!("no account {name}")))
    }

    /// Sets a new password; the account's sessions end.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AdminError> {
        self.require(name)?;
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AdminError::BadAccount(format!(
                "password for {name}: at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let hash = self.hash(password)?;
        self.execute(
            "UPDATE admin_accounts SET password_hash = ?2 WHERE name = ?1",
            &[name.into(), hash.into()],
        )?;
        self.end_sessions(name).map(drop)
    }

    /// Disables (or with `disabled` false, enables) an account: a disabled
    /// one cannot sign in, and its sessions end.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AdminError> {
        self.require(name)?;
        self.execute(
            "UPDATE admin_accounts SET disabled_at_ms = ?2 WHERE name = ?1",
            &[name.into(), disabled.then(now_ms).into()],
        )?;
        self.end_sessions(name).map(drop)
    }

    /// Whether an account is disabled (`None`: there is no such account).
    pub fn is_disabled(&self, name: &str) -> Result<Option<bool>, AdminError> {
        let disabled_at: Option<Option<i64>> = self
            .column(
                "SELECT disabled_at_ms FROM admin_accounts WHERE name = ?1",
                &[name.into()],
            )?
            .pop();
        Ok(disabled_at.map(|at| at.is_some()))
    }

    /// Removes an account and its sessions. Its name stays in the call
    /// history, which records who did what.
    pub fn delete(&self, name: &str) -> Result<(), AdminError> {
        self.require(name)?;
        self.end_sessions(name)?;
        self.execute("DELETE FROM admin_accounts WHERE name = ?1", &[name.into()])
            .map(drop)
    }

    /// The account's live sessions, soonest to end first.
    pub fn sessions_of(&self, name: &str) -> Result<Vec<SessionInfo>, AdminError> {
        self.require(name)?;
        let ends: Vec<i64> = self.column(
            "SELECT expires_at_ms FROM admin_sessions WHERE name = ?1 AND expires_at_ms > ?2
             ORDER BY expires_at_ms",
            &[name.into(), now_ms().into()],
        )?;
        Ok(ends
            .into_iter()
            .map(|expires_at_ms| SessionInfo { expires_at_ms })
            .collect())
    }

    /// Ends every session of the account; how many there were.
    pub fn end_sessions(&self, name: &str) -> Result<usize, AdminError> {
        self.execute("DELETE FROM admin_sessions WHERE name = ?1", &[name.into()])
    }
}

#[cfg(test)]
mod tests {
    use crate::accounts::AccountRole;
    use crate::Accounts;

    const PASSWORD: &str = "a long enough password";

    /// An account store with one clinician, on each engine.
    fn stores() -> Vec<(Accounts, crate::sql::TestDb)> {
        let stores = crate::sql::each_engine(Accounts::on);
        for (accounts, _) in &stores {
            accounts
                .add("nurse", PASSWORD, AccountRole::Clinician)
                .unwrap();
        }
        stores
    }

    #[test]
    fn a_disabled_account_cannot_sign_in_and_loses_its_sessions() {
        for (accounts, _keep) in stores() {
            let s = accounts.create_session("nurse").unwrap();
            assert_eq!(accounts.sessions_of("nurse").unwrap().len(), 1);
            accounts.set_disabled("nurse", true).unwrap();
            assert_eq!(accounts.is_disabled("nurse").unwrap(), Some(true));
            assert!(!accounts.verify("nurse", PASSWORD).unwrap());
            assert_eq!(accounts.session(&s.token).unwrap(), None);
            assert!(accounts.sessions_of("nurse").unwrap().is_empty());
            accounts.set_disabled("nurse", false).unwrap();
            assert!(accounts.verify("nurse", PASSWORD).unwrap());
        }
    }

    #[test]
    fn a_new_password_ends_sessions_and_the_old_one_stops_working() {
        for (accounts, _keep) in stores() {
            let s = accounts.create_session("nurse").unwrap();
            assert!(accounts.set_password("nurse", "short").is_err());
            accounts
                .set_password("nurse", "another long password")
                .unwrap();
            assert!(!accounts.verify("nurse", PASSWORD).unwrap());
            assert!(accounts.verify("nurse", "another long password").unwrap());
            assert_eq!(accounts.session(&s.token).unwrap(), None);
        }
    }

    #[test]
    fn a_deleted_account_is_gone_with_its_sessions() {
        for (accounts, _keep) in stores() {
            let s = accounts.create_session("nurse").unwrap();
            accounts.delete("nurse").unwrap();
            assert_eq!(accounts.session(&s.token).unwrap(), None);
            assert!(!accounts.verify("nurse", PASSWORD).unwrap());
            assert!(accounts.delete("nurse").is_err(), "no such account");
            assert!(accounts.set_disabled("ghost", true).is_err());
            assert_eq!(accounts.is_disabled("ghost").unwrap(), None);
            assert_eq!(accounts.is_disabled("nurse").unwrap(), None, "deleted");
        }
    }
}
