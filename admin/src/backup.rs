//! Backing up and restoring the hub's database (call history, accounts,
//! record-hook outbox, recordings' metadata) with SQLite's online backup
//! API: a consistent copy taken while calls run, without stopping the
//! server. Recordings' files are copied at file level (`docs/backup.md`).

use std::path::Path;

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use crate::AdminError;

/// The tables whose row counts a backup reports and a restore checks.
pub const TABLES: &[&str] = &[
    "calls",
    "participant_sessions",
    "quality_samples",
    "recordings",
    "hook_events",
    "hook_outbox",
    "hook_dead_letters",
    "admin_accounts",
    "connectivity_checks",
    "homes",
    "queued_calls",
    "queue_events",
];

/// Rows per table, in [`TABLES`] order.
pub type RowCounts = Vec<(&'static str, i64)>;

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> AdminError + '_ {
    move |source| AdminError::database(path, source)
}

/// Copies the database at `db` to a new file `out` (which must not exist)
/// in one read transaction, so the copy is one moment of the live database,
/// checks the copy's integrity, and returns its row counts.
pub fn backup(db: &Path, out: &Path) -> Result<RowCounts, AdminError> {
    if out.exists() {
        return Err(AdminError::Backup(format!(
            "{} already exists; choose a new file",
            out.display()
        )));
    }
    if !db.exists() {
        return Err(AdminError::Backup(format!(
            "no database at {}",
            db.display()
        )));
    }
    let source =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err(db))?;
    source
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err(db))?;
    let mut copy = Connection::open(out).map_err(err(out))?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(err(out))?;
        // All pages in one step: one read transaction, one consistent moment.
        backup.step(-1).map_err(err(out))?;
    }
    check(&copy, out)?;
    counts(&copy, out)
}

/// Replaces the database at `db` with the backup `file`, after checking the
/// backup. The current database, if any, is kept beside it as
/// `carecall.db.before-restore`. The server must be stopped (the caller
/// checks its lock).
pub fn restore(file: &Path, db: &Path) -> Result<RowCounts, AdminError> {
    let source =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err(file))?;
    check(&source, file)?;
    let version: usize = source
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err(file))?;
    if version > crate::db::SCHEMA_VERSION {
        return Err(AdminError::Backup(format!(
            "{} comes from a newer carecall (schema {version}, this one knows {}); restore it with that version",
            file.display(),
            crate::db::SCHEMA_VERSION
        )));
    }
    let expected = counts(&source, file)?;
    if db.exists() {
        let kept = db.with_extension("db.before-restore");
        std::fs::copy(db, &kept).map_err(|e| {
            AdminError::Backup(format!(
                "could not keep the current database as {}: {e}",
                kept.display()
            ))
        })?;
    }
    let mut target = Connection::open(db).map_err(err(db))?;
    {
        let backup = Backup::new(&source, &mut target).map_err(err(db))?;
        backup.step(-1).map_err(err(db))?;
    }
    let restored = counts(&target, db)?;
    if restored != expected {
        return Err(AdminError::Backup(format!(
            "the restored database does not match the backup: {restored:?} against {expected:?}"
        )));
    }
    Ok(restored)
}

/// `PRAGMA integrity_check` must say `ok`.
fn check(conn: &Connection, path: &Path) -> Result<(), AdminError> {
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(err(path))?;
    if verdict != "ok" {
        return Err(AdminError::Backup(format!(
            "{} is damaged: {verdict}",
            path.display()
        )));
    }
    Ok(())
}

/// Row counts of [`TABLES`] (a table an older schema lacks counts 0).
pub fn counts(conn: &Connection, path: &Path) -> Result<RowCounts, AdminError> {
    TABLES
        .iter()
        .map(|&t| {
            let exists: bool = conn
                .query_row(
                    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [t],
                    |r| r.get(0),
                )
                .map_err(err(path))?;
            let n = if exists {
                conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                    .map_err(err(path))?
            } else {
                0
            };
            Ok((t, n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallLog;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_backup_taken_while_writing_restores_to_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("carecall.db");
        let log = CallLog::open(&db).unwrap();
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
        log.joined("ward-7", "p1", "home", t(0)).unwrap();
        log.joined("ward-7", "p2", "clinician", t(1)).unwrap();
        let out = dir.path().join("backup.db");
        let taken = backup(&db, &out).unwrap();
        assert!(taken.contains(&("participant_sessions", 2)));
        assert!(
            backup(&db, &out).is_err(),
            "an existing file is not overwritten"
        );
        // Later changes, then disaster: the restore brings back the moment of the backup.
        log.left("ward-7", "p1", t(60)).unwrap();
        log.joined("ward-9", "p3", "home", t(70)).unwrap();
        drop(log);
        let restored = restore(&out, &db).unwrap();
        assert_eq!(restored, taken);
        assert!(dir.path().join("carecall.db.before-restore").exists());
        let log = CallLog::open(&db).unwrap();
        assert_eq!(log.calls().unwrap().len(), 1);
    }
}
