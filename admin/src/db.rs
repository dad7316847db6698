//! The hub's one SQLite database (`data_dir/carecall.db`): the call log and
//! the admin accounts share it, so one backup copies everything. Schema
//! changes are migrations, applied in order; `PRAGMA user_version` records
//! how many ran.

use std::path::Path;

use rusqlite::Connection;

use crate::AdminError;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE participant_sessions (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        participant TEXT NOT NULL,
        role TEXT NOT NULL,
        joined_at_ms INTEGER NOT NULL,
        left_at_ms INTEGER
    );
    CREATE INDEX participant_sessions_room ON participant_sessions (room, joined_at_ms);",
    "CREATE TABLE admin_accounts (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE admin_sessions (
        token_sha256 BLOB PRIMARY KEY,
        name TEXT NOT NULL REFERENCES admin_accounts (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );",
    // A call: a room from its first join to its last leave.
    "CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER
    );
    CREATE INDEX calls_open ON calls (room, ended_at_ms);
    ALTER TABLE participant_sessions ADD COLUMN call_id INTEGER REFERENCES calls (id);",
];

/// Opens the database at `path`, creating and migrating it as needed.
pub(crate) fn open(path: &Path) -> Result<Connection, AdminError> {
    let err = |source| AdminError::database(path, source);
    let conn = Connection::open(path).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    // Two connections (call-log writer, admin requests) may meet.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(err)?;
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(sql).map_err(err)?;
        conn.pragma_update(None, "user_version", i + 1)
            .map_err(err)?;
    }
    Ok(conn)
}
