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
//! Stores move onto this one at a time; those not yet moved still take a
//! SQLite connection, and [`postgres::PORTED`] says which have moved.

pub mod postgres;
#[cfg(test)]
pub(crate) mod temp_postgres;
mod value;

use std::path::Path;

pub use value::{FromValue, Row, Value};

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

/// An open database, either engine.
pub enum Db {
    /// The embedded file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL server's connection (boxed: it is large).
    Postgres(Box<::postgres::Client>),
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

    /// The hub's SQLite file at `path`, created and migrated as needed.
    pub fn sqlite(path: &Path) -> Result<Db, crate::AdminError> {
        Ok(Db::Sqlite(crate::db::open(path)?))
    }

    /// Runs one statement; how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(params))? as u64),
            Db::Postgres(c) => Ok(c.execute(postgres::numbered(sql).as_str(), &pg(params))?),
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
            Db::Postgres(c) => {
                let rows = c.query(postgres::numbered(sql).as_str(), &pg(params))?;
                rows.iter().map(postgres::row).collect()
            }
        }
    }

    /// The first row a query gives, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// `params` as the PostgreSQL client takes them.
fn pg(params: &[Value]) -> Vec<&(dyn ::postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p as _).collect()
}

/// A store made by `store` on each engine, for tests that must hold on
/// both: on a fresh SQLite file, then on a fresh database of a throwaway
/// PostgreSQL cluster; each with what keeps its engine alive.
#[cfg(test)]
pub(crate) fn each_engine<T>(store: impl Fn(Db) -> T) -> Vec<(T, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Db::sqlite(&dir.path().join("carecall.db")).expect("sqlite");
    let cluster = temp_postgres::TempPostgres::start();
    let pg = postgres::connect(&cluster.url()).expect("postgres");
    vec![
        (store(sqlite), Box::new(dir)),
        (store(pg), Box::new(cluster)),
    ]
}
