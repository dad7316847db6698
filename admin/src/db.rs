//! The hub's one SQLite database (`data_dir/carecall.db`): the call log and
//! the admin accounts share it, so one backup copies everything. Schema
//! changes are migrations, applied in order; `PRAGMA user_version` records
//! how many ran. PostgreSQL's migrations, for a hub on `database.url`, are
//! in `sql/postgres.rs` and keep to the same final schema.

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
    // Quality over each session: a sample every few seconds, and the worst
    // badge and reconnects kept on the session for the history.
    "ALTER TABLE participant_sessions ADD COLUMN worst_badge INTEGER;
    ALTER TABLE participant_sessions ADD COLUMN reconnects INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE participant_sessions ADD COLUMN transport TEXT;
    CREATE TABLE quality_samples (
        session_id INTEGER NOT NULL REFERENCES participant_sessions (id),
        at_ms INTEGER NOT NULL,
        badge INTEGER NOT NULL,
        receive_kbps INTEGER NOT NULL,
        send_kbps INTEGER NOT NULL,
        receive_loss REAL NOT NULL,
        rtt_ms INTEGER,
        lowest_video_height INTEGER,
        transport TEXT
    );
    CREATE INDEX quality_samples_session ON quality_samples (session_id, at_ms);",
    // Connectivity checks run from care homes' tablets, looked up by code.
    "CREATE TABLE connectivity_checks (
        code TEXT PRIMARY KEY,
        created_at_ms INTEGER NOT NULL,
        remote_addr TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        result_json TEXT NOT NULL
    );
    CREATE INDEX connectivity_checks_age ON connectivity_checks (created_at_ms);",
    // Record hooks: each event once, an outbox row per endpoint, and the
    // rows given up on. AUTOINCREMENT: a sequence number is never reused,
    // so a dead letter put back keeps its place in its consultation's order.
    "CREATE TABLE hook_events (
        id TEXT PRIMARY KEY,
        consultation INTEGER NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE hook_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL REFERENCES hook_events (id),
        consultation INTEGER NOT NULL,
        endpoint TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT
    );
    CREATE INDEX hook_outbox_order ON hook_outbox (endpoint, consultation, seq);
    CREATE INDEX hook_outbox_due ON hook_outbox (next_attempt_ms);
    CREATE TABLE hook_dead_letters (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES hook_events (id),
        consultation INTEGER NOT NULL,
        endpoint TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        failed_at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
    );",
    // Recordings, from start to deletion; the file's figures once ready.
    "CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        room TEXT NOT NULL,
        call_id INTEGER NOT NULL,
        started_by TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER,
        state TEXT NOT NULL,
        path TEXT NOT NULL,
        encrypted INTEGER NOT NULL,
        bytes INTEGER,
        webm_bytes INTEGER,
        sha256 TEXT,
        duration_ms INTEGER,
        tracks_json TEXT,
        error TEXT,
        deleted_at_ms INTEGER
    );
    CREATE INDEX recordings_age ON recordings (state, started_at_ms);",
    // One row, rewritten by each readiness check: proof the disk takes writes.
    "CREATE TABLE health (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at_ms INTEGER NOT NULL
    );",
    // Care homes and the hub's call queue (a waiting call survives a restart).
    "CREATE TABLE homes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER,
        link_version INTEGER NOT NULL
    );
    CREATE TABLE queued_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        home_id TEXT NOT NULL REFERENCES homes (id),
        urgent INTEGER NOT NULL,
        reason TEXT NOT NULL,
        initials TEXT NOT NULL,
        room TEXT NOT NULL,
        state TEXT NOT NULL,
        queued_at_ms INTEGER NOT NULL,
        answered_at_ms INTEGER,
        answered_by TEXT
    );
    CREATE INDEX queued_calls_waiting ON queued_calls (state, urgent, queued_at_ms);",
    // Account roles; calls passed on between queues and people, and what
    // happened to each call from queued to ended.
    "ALTER TABLE admin_accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE queued_calls ADD COLUMN queue_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE queued_calls ADD COLUMN held_by TEXT;
    ALTER TABLE queued_calls ADD COLUMN waiting_since_ms INTEGER;
    UPDATE queued_calls SET waiting_since_ms = queued_at_ms, held_by = answered_by;
    CREATE TABLE queue_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id INTEGER NOT NULL REFERENCES queued_calls (id),
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX queue_events_call ON queue_events (call_id, id);
    CREATE INDEX queue_events_target ON queue_events (kind, target);",
    // Who passed a call to a clinician, until it is taken.
    "ALTER TABLE queued_calls ADD COLUMN passed_by TEXT;",
    // Accounts can be disabled; join links to a room can be withdrawn.
    "ALTER TABLE admin_accounts ADD COLUMN disabled_at_ms INTEGER;
    CREATE TABLE link_revocations (
        room TEXT PRIMARY KEY,
        revoked_before INTEGER NOT NULL
    );",
    // Consent to record each consultation, and refusals, as clinicians
    // recorded them on the call.
    "CREATE TABLE recording_consents (
        id INTEGER PRIMARY KEY,
        call_id INTEGER NOT NULL,
        room TEXT NOT NULL,
        given INTEGER NOT NULL,
        decided_by TEXT NOT NULL,
        manner TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX recording_consents_call ON recording_consents (call_id, at_ms);",
    // The clinical record: one encounter per resident seen in a
    // consultation (identifiers sealed), and the audit trail of who looked
    // at or changed it.
    "CREATE TABLE encounters (
        id INTEGER PRIMARY KEY,
        call_id INTEGER NOT NULL,
        hub_call INTEGER,
        room TEXT NOT NULL,
        resident BLOB NOT NULL,
        created_by TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX encounters_call ON encounters (call_id);
    CREATE INDEX encounters_hub_call ON encounters (hub_call);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        account TEXT NOT NULL,
        from_addr TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL
    );",
    // The outcome of each encounter: coded answers for reports, the free
    // text (referrals, note, care plan) sealed.
    "ALTER TABLE encounters ADD COLUMN disposition TEXT;
    ALTER TABLE encounters ADD COLUMN conveyance_avoided INTEGER;
    ALTER TABLE encounters ADD COLUMN medicines_prescribed INTEGER;
    ALTER TABLE encounters ADD COLUMN restore2_used INTEGER;
    ALTER TABLE encounters ADD COLUMN news2 INTEGER;
    ALTER TABLE encounters ADD COLUMN respect TEXT;
    ALTER TABLE encounters ADD COLUMN treatment_plan INTEGER;
    ALTER TABLE encounters ADD COLUMN written BLOB;
    ALTER TABLE encounters ADD COLUMN outcome_by TEXT;
    ALTER TABLE encounters ADD COLUMN outcome_at_ms INTEGER;
    ALTER TABLE hook_events ADD COLUMN sealed BLOB;",
    // Service levels: the service a call came to (none: every service was
    // closed), and an operator's reason for declining one.
    "ALTER TABLE queued_calls ADD COLUMN service TEXT;
    ALTER TABLE queued_calls ADD COLUMN declined_reason TEXT;
    CREATE INDEX queued_calls_queued ON queued_calls (queued_at_ms);",
    // What a call is about, chosen by the home from the hub's list.
    "ALTER TABLE queued_calls ADD COLUMN reason_category TEXT NOT NULL DEFAULT '';",
    // A check run from a home's page is filed under that home.
    "ALTER TABLE connectivity_checks ADD COLUMN home_id TEXT;
    CREATE INDEX connectivity_checks_home ON connectivity_checks (home_id, created_at_ms);",
    // What a resume needs, while a participant is in a call: a restarted
    // hub takes the session back (the token itself is never stored).
    "CREATE TABLE resumable_sessions (
        resume_hash TEXT PRIMARY KEY,
        room TEXT NOT NULL,
        participant TEXT NOT NULL,
        claims_json TEXT NOT NULL,
        parked_at_ms INTEGER
    );
    CREATE INDEX resumable_by_participant ON resumable_sessions (room, participant);",
    // A recording a restart cut short, and who records again once back.
    "ALTER TABLE recordings ADD COLUMN cut_by_restart INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE resumable_sessions ADD COLUMN recording INTEGER NOT NULL DEFAULT 0;",
    // Clinical images asked for in a call; rows stay when retention
    // deletes the file.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,
        room TEXT NOT NULL,
        call_id INTEGER NOT NULL,
        taken_by TEXT NOT NULL,
        asked_by TEXT NOT NULL,
        asked_at_ms INTEGER NOT NULL,
        stored_at_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        path TEXT NOT NULL,
        encrypted INTEGER NOT NULL,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        upload_ms INTEGER NOT NULL,
        deleted_at_ms INTEGER
    );
    CREATE INDEX images_by_call ON images (call_id, stored_at_ms);",
    // A deliverer's claim on an outbox row while it posts it (see
    // hooks::outbox::claim_due): whose, and until when.
    "ALTER TABLE hook_outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE hook_outbox ADD COLUMN claimed_until_ms INTEGER;",
    // The hub's nodes (see call_log::nodes), and which node holds each
    // session, recording and resumable session: a node starting again
    // closes its own, not another's.
    "CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        heartbeat_at_ms INTEGER NOT NULL,
        stopped_at_ms INTEGER,
        rooms INTEGER NOT NULL DEFAULT 0,
        participants INTEGER NOT NULL DEFAULT 0,
        ids_to INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE participant_sessions ADD COLUMN node TEXT;
    ALTER TABLE recordings ADD COLUMN node TEXT;
    ALTER TABLE resumable_sessions ADD COLUMN node TEXT;",
    // Which node hosts each room (see call_log::placement).
    "CREATE TABLE room_placements (
        room TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        placed_at_ms INTEGER NOT NULL
    );",
    // Where each node's relay is reached (a room spanning nodes, see
    // docs/scaling.md): its QUIC address and its certificate's name.
    "ALTER TABLE nodes ADD COLUMN relay_addr TEXT;
    ALTER TABLE nodes ADD COLUMN relay_name TEXT;",
];

/// Makes the database file readable by the hub's user only, whatever the
/// umask: it holds accounts and patients' call history. SQLite gives its
/// `-wal` and `-shm` files the same permissions. The file is only opened
/// here when it does not exist yet: closing a descriptor of a database
/// this process has open would drop SQLite's locks on it.
fn owner_only(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "database permissions not set to 0600");
    }
}

/// The schema version this build writes (SQLite's `user_version`).
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens the database at `path`, creating and migrating it as needed.
pub(crate) fn open(path: &Path) -> Result<Connection, AdminError> {
    let err = |source| AdminError::database(path, source);
    owner_only(path);
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
