//! Withdrawn join links, kept so a restart does not bring them back.

use crate::sql::values;

use super::CallLog;
use crate::AdminError;

impl CallLog {
    /// Withdraws the links to `room` made at or before `until` (Unix s).
    pub fn revoke_links(&self, room: &str, until: u64) -> Result<(), AdminError> {
        self.read(|c| {
            c.execute(
                "INSERT INTO link_revocations (room, revoked_before) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET revoked_before =
                     CASE WHEN excluded.revoked_before > link_revocations.revoked_before
                          THEN excluded.revoked_before ELSE link_revocations.revoked_before END",
                values![room, until as i64],
            )
        })
        .map(drop)
    }

    /// Every withdrawal: (room, links made up to this time are withdrawn).
    pub fn link_revocations(&self) -> Result<Vec<(String, u64)>, AdminError> {
        self.read(|c| {
            c.query_map(
                "SELECT room, revoked_before FROM link_revocations",
                &[],
                |r| Ok((r.get(0)?, r.get::<i64>(1)?.max(0) as u64)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawal_is_kept_and_only_moves_forward() {
        for db in crate::sql::test_databases() {
            let log = CallLog::on(db.open());
            log.revoke_links("ward-1", 200).unwrap();
            log.revoke_links("ward-1", 150).unwrap();
            log.revoke_links("ward-2", 100).unwrap();
            drop(log);
            let mut kept = CallLog::on(db.open()).link_revocations().unwrap();
            kept.sort();
            assert_eq!(
                kept,
                [("ward-1".into(), 200), ("ward-2".into(), 100)],
                "{}",
                db.engine
            );
        }
    }
}
