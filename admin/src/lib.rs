//! carecall's admin plane. For now it owns the call log: every participant's
//! join and leave, stored in SQLite in the data directory, which the call
//! history, activity reports and dashboard are built on. Writes happen on a
//! dedicated thread (see [`CallLog`]), never on a media worker.

#![warn(missing_docs)]

mod call_log;

pub use call_log::{CallLog, ParticipantSession};

/// What can go wrong in the admin plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The database could not be opened, migrated, read or written.
    #[error("call log database {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}
