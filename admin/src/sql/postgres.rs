//! The PostgreSQL side: connecting, its migrations, and turning the
//! stores' SQLite-style SQL and values into PostgreSQL's.

use postgres::types::Type;
use postgres::{Client, NoTls};

use super::{Db, Row, SqlError, Value};

/// The stores that run on PostgreSQL so far; the rest still need SQLite.
pub const PORTED: &[&str] = &["connectivity checks", "accounts and their sessions"];

/// PostgreSQL's schema changes, in order; `carecall_schema` records how
/// many ran. Column types follow what the stores bind: BIGINT for every
/// integer, TEXT, BYTEA, DOUBLE PRECISION.
const MIGRATIONS: &[&str] = &[
    // Connectivity checks run from care homes' tablets, looked up by code
    // (the SQLite table as its migrations left it).
    "CREATE TABLE connectivity_checks (
        code TEXT PRIMARY KEY,
        created_at_ms BIGINT NOT NULL,
        remote_addr TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        result_json TEXT NOT NULL,
        home_id TEXT
    );
    CREATE INDEX connectivity_checks_age ON connectivity_checks (created_at_ms);
    CREATE INDEX connectivity_checks_home ON connectivity_checks (home_id, created_at_ms);",
    // Admin accounts and their sign-in sessions, as SQLite's migrations
    // left them (roles, disabling).
    "CREATE TABLE admin_accounts (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        role TEXT NOT NULL DEFAULT 'admin',
        disabled_at_ms BIGINT
    );
    CREATE TABLE admin_sessions (
        token_sha256 BYTEA PRIMARY KEY,
        name TEXT NOT NULL REFERENCES admin_accounts (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL
    );",
];

/// Any number: two nodes starting at once take turns to migrate.
const MIGRATION_LOCK: i64 = 0x6361_7265_6361_6c6c;

/// Connects to the PostgreSQL database at `url`
/// (`postgres://user@host:port/name`) and brings its schema up to date.
/// Without TLS: the database is on the hub's own network, as its nodes are.
pub fn connect(url: &str) -> Result<Db, SqlError> {
    let mut client = Client::connect(url, NoTls)?;
    migrate(&mut client)?;
    Ok(Db::Postgres(Box::new(client)))
}

fn migrate(client: &mut Client) -> Result<(), SqlError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS carecall_schema (version BIGINT NOT NULL)")?;
    let version: i64 = match tx.query_opt("SELECT version FROM carecall_schema", &[])? {
        Some(r) => r.get(0),
        None => {
            tx.execute("INSERT INTO carecall_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let done = usize::try_from(version).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.batch_execute(sql)?;
        tx.execute(
            "UPDATE carecall_schema SET version = $1",
            &[&(i as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `sql` with SQLite's `?N` placeholders as PostgreSQL's `$N`, leaving
/// quoted text alone.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A PostgreSQL row as the stores read it.
pub(crate) fn row(r: &postgres::Row) -> Result<Row, SqlError> {
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let v = match *column.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            // TEXT, VARCHAR, NAME; anything else a store would not select.
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row::new(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quoted_text() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?1 AND c = '?2' LIMIT ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' LIMIT $12"
        );
        assert_eq!(numbered("SELECT '?' || ?3"), "SELECT '?' || $3");
    }
}
