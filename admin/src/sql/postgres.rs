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

/// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/name`,
/// or `host=… user=… dbname=…`) and brings its schema up to date.
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
    if done > MIGRATIONS.len() {
        return Err(SqlError::NewerSchema {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
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
/// quoted text, quoted names and comments alone.
pub(crate) fn numbered(sql: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Text,
        Name,
        LineComment,
        BlockComment,
    }
    let mut out = String::with_capacity(sql.len());
    let mut state = In::Code;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if state == In::Code && c == '?' && next.is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
            continue;
        }
        out.push(c);
        state = match (state, c, next) {
            (In::Code, '\'', _) => In::Text,
            (In::Code, '"', _) => In::Name,
            (In::Code, '-', Some('-')) => In::LineComment,
            (In::Code, '/', Some('*')) => {
                out.push('*');
                chars.next();
                In::BlockComment
            }
            // A doubled quote inside text or a name closes and reopens it:
            // the same state after both.
            (In::Text, '\'', _) | (In::Name, '"', _) | (In::LineComment, '\n', _) => In::Code,
            (In::BlockComment, '*', Some('/')) => {
                out.push('/');
                chars.next();
                In::Code
            }
            (same, _, _) => same,
        };
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
    use crate::sql::temp_postgres::TempPostgres;

    #[test]
    fn a_value_of_another_kind_than_its_column_is_refused() {
        let cluster = TempPostgres::start();
        let mut db = connect(&cluster.url()).unwrap();
        let wrong = db
            .execute(
                "INSERT INTO connectivity_checks (code, created_at_ms, remote_addr, user_agent, result_json)
                 VALUES ('ABCDEF', ?1, 'a', 'b', '{}')",
                &[Value::Text("yesterday".into())],
            )
            .unwrap_err();
        assert!(wrong.to_string().contains("cannot be bound"), "{wrong}");
        let right = db.execute(
            "INSERT INTO connectivity_checks (code, created_at_ms, remote_addr, user_agent, result_json)
             VALUES ('ABCDEF', ?1, 'a', 'b', '{}')",
            &[Value::Int(1)],
        );
        assert_eq!(right.unwrap(), 1);
        let row = db
            .query_opt(
                "SELECT created_at_ms, home_id FROM connectivity_checks",
                &[],
            )
            .unwrap()
            .expect("the row");
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(
            row.get::<Option<String>>(1).unwrap(),
            None,
            "NULL reads as None"
        );
        assert!(matches!(row.get::<i64>(2), Err(SqlError::NoColumn(2))));
    }

    #[test]
    fn a_database_migrated_further_than_this_program_knows_is_refused() {
        let cluster = TempPostgres::start();
        drop(connect(&cluster.url()).unwrap());
        // A second start migrates nothing again.
        let mut db = connect(&cluster.url()).unwrap();
        let version = db.query_opt("SELECT version FROM carecall_schema", &[]);
        let version: i64 = version.unwrap().expect("a version").get(0).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        db.execute("UPDATE carecall_schema SET version = 999", &[])
            .unwrap();
        drop(db);
        let refused = connect(&cluster.url()).unwrap_err();
        assert!(
            matches!(refused, SqlError::NewerSchema { found: 999, .. }),
            "{refused}"
        );
    }

    #[test]
    fn placeholders_are_numbered_outside_quoted_text() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?1 AND c = '?2' LIMIT ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' LIMIT $12"
        );
        assert_eq!(numbered("SELECT '?' || ?3"), "SELECT '?' || $3");
        assert_eq!(numbered("SELECT 'it''s' || ?1"), "SELECT 'it''s' || $1");
        assert_eq!(
            numbered("SELECT \"a?1\" FROM t -- don't ?2\nWHERE b = ?3 /* it's ?4 */ AND c = ?5"),
            "SELECT \"a?1\" FROM t -- don't ?2\nWHERE b = $3 /* it's ?4 */ AND c = $5"
        );
    }
}
