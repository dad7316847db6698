//! carecall's admin plane: the call log (every participant's join and leave,
//! stored in SQLite in the data directory, which the call history, activity
//! reports and dashboard are built on; written on a dedicated thread, see
//! [`CallLog`], never on a media worker) and Prometheus `/metrics`, rendered
//! from the media plane's statistics at each scrape.

#![warn(missing_docs)]

mod call_log;
pub mod metrics;
mod routes;

pub use call_log::{CallLog, ParticipantSession};
pub use routes::{routes, AdminState};

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
