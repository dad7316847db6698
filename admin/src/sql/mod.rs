//! One way to the hub's database, embedded SQLite or a shared PostgreSQL.
//!
//! A store writes its SQL once, with SQLite's numbered placeholders
//! (`?1` … `?N`), in the part of SQL both engines read alike; on
//! PostgreSQL the placeholders become `$1` … `$N`. Values cross as
//! [`Value`]s and come back in [`Row`]s, so a store's code does not know
//! which engine it runs on. Each engine has its own migrations (their
//! column types and keys differ): SQLite's in `db.rs`, PostgreSQL's in
//! [`postgres`]. SQLite stays the default: one file, nothing to run;
//! PostgreSQL is for several nodes sharing one hub.
//!
//! Every store runs on both; backup and restore (`carecall backup`) are
//! SQLite's, as PostgreSQL has its own (`pg_dump`).

pub mod postgres;
#[cfg(any(test, feature = "test-postgres"))]
#[doc(hidden)]
pub mod temp_postgres;
mod value;

use std::path::Path;

pub use value::{FromValue, Row, ToValue, Value};

/// A database error, with where it happened.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite refused or failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed (or the connection to it).
    #[error("{}", with_cause(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A store read a column its query does not select.
    #[error("no column {0} in the row")]
    NoColumn(usize),
    /// The database's schema is newer than this program knows.
    #[error(
        "the database has {found} migrations, this program knows {known}: run a newer carecall"
    )]
    NewerSchema {
        /// Migrations the database records.
        found: i64,
        /// Migrations this program has.
        known: usize,
    },
    /// A value the store could not turn into a column (a record field
    /// that could not be sealed).
    #[error("a value could not be written: {0}")]
    Unwritable(Box<dyn std::error::Error + Send + Sync>),
    /// A column the store could not turn into its value (a sealed field
    /// that does not open).
    #[error("column {column} could not be read: {source}")]
    Unreadable {
        /// Its index in the row.
        column: usize,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Database work off the async runtime stopped before it finished.
    #[error("database work was interrupted")]
    Interrupted,
    /// A query that must give a row gave none.
    #[error("the query gave no row")]
    NoRow,
    /// PostgreSQL closed the connection inside a transaction, which has
    /// therefore failed; the next statement outside one reconnects.
    #[error("the connection to PostgreSQL was lost during a transaction")]
    ConnectionLost,
    /// A column held another type than the store reads it as.
    #[error("column {column}: expected {wanted}, found {found:?}")]
    Type {
        /// Its index in the row.
        column: usize,
        /// The type the store asked for.
        wanted: &'static str,
        /// What the row held.
        found: Value,
    },
}

/// A PostgreSQL error with what caused it: the client's own message is
/// often only "error serializing parameter 0".
fn with_cause(e: &::postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Where the hub keeps its data, as configured: the embedded SQLite file
/// (the default), or a PostgreSQL that several nodes share.
#[derive(Clone)]
pub enum Database {
    /// `data_dir/carecall.db`.
    Sqlite(std::path::PathBuf),
    /// `database.url`: `postgres://user:password@host:port/name`, or
    /// `host=… user=… dbname=…`.
    Postgres(String),
}

impl std::fmt::Display for Database {
    /// Where it is, for errors and logs: the file, or "PostgreSQL" (the URL
    /// may hold a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(_) => f.write_str("PostgreSQL"),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

impl Database {
    /// A new connection, the schema brought up to date on the way.
    pub fn open(&self) -> Result<Db, crate::AdminError> {
        match self {
            Database::Sqlite(path) => Db::sqlite(path),
            Database::Postgres(url) => {
                postgres::connect(url).map_err(|e| crate::AdminError::sql("PostgreSQL", e))
            }
        }
    }
}

/// What a store's queries give.
pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    /// PostgreSQL's connection was cut or could not be made: see
    /// [`crate::AdminError::is_connection_lost`].
    pub fn is_connection_lost(&self) -> bool {
        match self {
            SqlError::ConnectionLost => true,
            SqlError::Postgres(e) => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }
}

/// `.optional()` on a query that must give a row: no row becomes `None`,
/// as with rusqlite's `OptionalExtension`.
pub trait OptionalRow<T> {
    /// The row's value, `None` if there was no row, or the error.
    fn optional(self) -> SqlResult<Option<T>>;
}

impl<T> OptionalRow<T> for SqlResult<T> {
    fn optional(self) -> SqlResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An open database, either engine.
pub enum Db {
    /// The embedded file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL server's connection (boxed: it is large).
    Postgres(Box<postgres::PgClient>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(_) => "Db::Sqlite",
            Db::Postgres(_) => "Db::Postgres",
        })
    }
}

impl Db {
    /// Which engine, for errors and logs.
    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    /// Whether several carecall processes may share this database (a hub
    /// of several nodes): PostgreSQL. A SQLite file has one process.
    pub fn shared(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// The hub's SQLite file at `path`, created and migrated as needed.
    pub fn sqlite(path: &Path) -> Result<Db, crate::AdminError> {
        Ok(Db::Sqlite(crate::db::open(path)?))
    }

    /// Runs one statement; how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, SqlError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(params))?),
            Db::Postgres(c) => postgres::blocking(|| {
                let sql = postgres::numbered(sql);
                Ok(c.run(|client| client.execute(sql.as_str(), &pg(params)))? as usize)
            }),
        }
    }

    /// Every row a query gives.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, SqlError> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let width = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
                    (0..width)
                        .map(|i| r.get_ref(i).map(Value::from))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?;
                Ok(rows
                    .map(|r| r.map(Row::new))
                    .collect::<rusqlite::Result<_>>()?)
            }
            Db::Postgres(c) => postgres::blocking(|| {
                let sql = postgres::numbered(sql);
                let rows = c.run(|client| client.query(sql.as_str(), &pg(params)))?;
                rows.iter().map(postgres::row).collect()
            }),
        }
    }

    /// The first row a query gives, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Every row a query gives, each read by `read`.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        self.query(sql, params)?.iter().map(read).collect()
    }

    /// The first row a query gives, read by `read`; [`SqlError::NoRow`]
    /// when there is none.
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnOnce(&Row) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        read(&self.query_opt(sql, params)?.ok_or(SqlError::NoRow)?)
    }

    /// The first row a query gives, read by `read`, if there is one.
    pub fn query_row_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnOnce(&Row) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        self.query_opt(sql, params)?.as_ref().map(read).transpose()
    }

    /// Runs `change` in one transaction: all of it is kept, or, when it
    /// fails, none. On SQLite the write lock is taken at the start
    /// (`BEGIN IMMEDIATE`), so two processes never both read and then
    /// fail to write; on PostgreSQL a change that reads and then writes by
    /// what it read locks what it read ([`Db::lock_rows_of`]).
    pub fn transaction<T, E: From<SqlError>>(
        &mut self,
        change: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch(match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        })?;
        self.in_transaction(true);
        let mut open = OpenTransaction {
            db: self,
            committed: false,
        };
        let out = change(open.db)?;
        open.db.batch("COMMIT")?;
        open.committed = true;
        open.db.in_transaction(false);
        Ok(out)
    }

    /// Marks a transaction begun or ended (PostgreSQL reconnects only
    /// outside one).
    fn in_transaction(&mut self, open: bool) {
        if let Db::Postgres(c) = self {
            c.in_transaction(open);
        }
    }

    /// What ends a query that reads rows a transaction goes on to change
    /// by what it read: on PostgreSQL, lock the rows of `table` (its name
    /// or alias in the query) until the transaction ends, so another
    /// connection's change waits instead of being overwritten; on SQLite
    /// nothing, as `BEGIN IMMEDIATE` already holds the one write lock.
    pub fn lock_rows_of(&self, table: &str) -> String {
        match self {
            Db::Sqlite(_) => String::new(),
            Db::Postgres(_) => format!(" FOR UPDATE OF {table}"),
        }
    }

    /// What ends a query that claims rows for a while: on PostgreSQL, lock
    /// the rows of `table` (its name or alias in the query) as they are
    /// read and skip those another connection has locked; on SQLite
    /// nothing, as a transaction there already holds the one write lock.
    pub fn skip_locked_rows_of(&self, table: &str) -> String {
        let lock = self.lock_rows_of(table);
        if lock.is_empty() {
            lock
        } else {
            lock + " SKIP LOCKED"
        }
    }

    /// Makes other transactions that change `table` wait until this one
    /// ends, for a change that reads the whole table first (rows that do
    /// not exist yet cannot be locked). On SQLite nothing: `BEGIN
    /// IMMEDIATE` already holds the one write lock.
    pub fn lock_table(&mut self, table: &str) -> Result<(), SqlError> {
        match self {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(_) => self.batch(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE")),
        }
    }

    /// Runs statements with no parameters and no rows.
    fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => postgres::blocking(|| c.run(|client| client.batch_execute(sql))),
        }
    }
}

/// A transaction begun and not yet committed: rolled back when dropped,
/// so a change that fails, fails to commit or panics leaves nothing
/// half-done and the connection ready for the next.
struct OpenTransaction<'a> {
    db: &'a mut Db,
    committed: bool,
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // The error that matters is the change's; a failed rollback
            // leaves the connection to the next BEGIN, which says so.
            let _ = self.db.batch("ROLLBACK");
            self.db.in_transaction(false);
        }
    }
}

/// Parameters for [`Db`]'s queries: `values![room, at]` is `room` and `at`
/// as [`Value`]s, each read through a reference (as rusqlite's `params!`
/// does), so a field of a borrowed struct can be passed as it is.
macro_rules! values {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::ToValue::to_value(&$v)),*] as &[$crate::sql::Value]
    };
}
pub(crate) use values;

/// `params` as the PostgreSQL client takes them.
fn pg(params: &[Value]) -> Vec<&(dyn ::postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p as _).collect()
}

/// A fresh database on one engine for a test, which can be opened again
/// (a new connection), as a restarted process would.
#[cfg(test)]
pub(crate) struct TestDb {
    /// SQLite or PostgreSQL, for assertion messages.
    pub engine: &'static str,
    open: Box<dyn Fn() -> Db>,
    /// The SQLite file's directory, or the throwaway cluster.
    _keep: Box<dyn std::any::Any>,
}

#[cfg(test)]
impl TestDb {
    /// A new connection to it.
    pub fn open(&self) -> Db {
        (self.open)()
    }
}

/// A fresh database on each engine, for tests that must hold on both: a
/// new SQLite file, then a throwaway PostgreSQL cluster's database.
#[cfg(test)]
pub(crate) fn test_databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("carecall.db");
    let cluster = temp_postgres::TempPostgres::start();
    let url = cluster.url();
    vec![
        TestDb {
            engine: "SQLite",
            open: Box::new(move || Db::sqlite(&file).expect("sqlite")),
            _keep: Box::new(dir),
        },
        TestDb {
            engine: "PostgreSQL",
            open: Box::new(move || postgres::connect(&url).expect("postgres")),
            _keep: Box::new(cluster),
        },
    ]
}

/// A store made by `store` on each engine (see [`test_databases`]), each
/// with what keeps its engine alive.
#[cfg(test)]
pub(crate) fn each_engine<T>(store: impl Fn(Db) -> T) -> Vec<(T, TestDb)> {
    test_databases()
        .into_iter()
        .map(|db| (store(db.open()), db))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &mut Db) -> i64 {
        db.query_row("SELECT COUNT(*) FROM transaction_probe", &[], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_transaction_keeps_all_or_nothing_and_leaves_the_connection_usable() {
        for (mut db, _keep) in each_engine(|db| db) {
            db.execute("CREATE TABLE transaction_probe (n BIGINT NOT NULL)", &[])
                .unwrap();
            let failed: Result<(), SqlError> = db.transaction(|tx| {
                tx.execute("INSERT INTO transaction_probe (n) VALUES (1)", &[])?;
                tx.execute("INSERT INTO no_such_table (n) VALUES (2)", &[])?;
                Ok(())
            });
            assert!(failed.is_err(), "{}", db.engine());
            assert_eq!(
                count(&mut db),
                0,
                "{}: the first insert was kept",
                db.engine()
            );
            // A change that panics half-way is rolled back too.
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _: Result<(), SqlError> = db.transaction(|tx| {
                    tx.execute("INSERT INTO transaction_probe (n) VALUES (3)", &[])?;
                    panic!("half-way");
                });
            }));
            assert!(panicked.is_err());
            let kept: Result<i64, SqlError> = db.transaction(|tx| {
                tx.query_row(
                    "INSERT INTO transaction_probe (n) VALUES (?1) RETURNING n",
                    values![4i64],
                    |r| r.get(0),
                )
            });
            assert_eq!(kept.unwrap(), 4, "{}", db.engine());
            assert_eq!(count(&mut db), 1, "{}", db.engine());
            assert!(matches!(
                db.query_row("SELECT n FROM transaction_probe WHERE n = 5", &[], |r| r
                    .get::<i64>(0))
                    .optional(),
                Ok(None)
            ));
        }
    }
}
