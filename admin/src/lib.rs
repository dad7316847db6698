//! carecall's admin plane: the call log (every participant's join and leave,
//! stored in SQLite in the data directory or in a PostgreSQL several nodes
//! share, see [`sql`], which the call history, activity
//! reports and dashboard are built on; written on a dedicated thread, see
//! [`CallLog`], never on a media worker), admin accounts and their sign-in
//! sessions ([`Accounts`]), the admin pages and API behind them, and
//! Prometheus `/metrics`, rendered from the media plane's statistics at each
//! scrape; and the helpdesk's connectivity check ([`check`]).

#![warn(missing_docs)]

mod accounts;
pub mod activity;
mod api_error;
mod auth;
pub mod backup;
mod call_log;
pub mod check;
mod clock;
mod dashboard;
mod db;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod home_links;
mod homes;
pub mod hooks;
mod hub;
mod images;
mod join_times;
mod limiter;
mod links;
pub mod metrics;
pub mod nodes;
mod pages;
mod password_checks;
mod polls;
pub mod quality;
mod queue;
pub mod queue_metrics;
mod recordings;
pub mod records;
pub mod reports;
mod routes;
pub mod service_hours;
pub mod sql;
mod state;

pub use accounts::{
    AccountRole, Accounts, AdminSession, NewSession, SessionInfo, MIN_PASSWORD_LEN, SESSION_TTL,
};
pub use call_log::{
    Answer, CallDetail, CallLog, CallRecord, Handover, Home, ImageRow, NewImage,
    ParticipantSession, QualitySample, QueueEvent, QueuedCall, RecordingRow, SessionDetail,
    StoredSample, TransferTarget,
};
pub use carecall_signalling::{Download, DownloadLinks};
pub use images::{delete_expired_images, ImageMetrics};
pub use limiter::SignInLimits;
pub use metrics::ServedCertificate;
pub use recordings::{delete_expired, RecordingAccess};
pub use routes::{protected_routes, readiness_routes, routes, Who};
pub use state::{AdminOptions, AdminState, QueueSettings, QUALITY_SAMPLE_EVERY};

/// What can go wrong in the admin plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The database could not be opened, migrated, read or written.
    #[error("database {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A store on either engine could not read or write (see `sql`).
    #[error("database {at}: {source}")]
    Sql {
        /// The SQLite file, or "PostgreSQL".
        at: String,
        /// The engine's error.
        source: crate::sql::SqlError,
    },
    /// An account cannot be created as asked (name, password, duplicate).
    #[error("{0}")]
    BadAccount(String),
    /// The system's random number generator failed.
    #[error("no randomness available from the operating system")]
    Random,
    /// Five random check codes in a row were taken.
    #[error("no unused connectivity-check code found")]
    NoFreeCode,
    /// Database work off the async runtime stopped before it finished.
    #[error("database work was interrupted")]
    Interrupted,
    /// Record hooks cannot run as configured.
    #[error("record hooks: {0}")]
    Hooks(String),
    /// A backup or restore cannot go ahead.
    #[error("{0}")]
    Backup(String),
}

impl AdminError {
    /// A database error, with the file it happened in.
    pub(crate) fn database(path: &std::path::Path, source: rusqlite::Error) -> Self {
        AdminError::Database {
            path: path.display().to_string(),
            source,
        }
    }

    /// A store's error on either engine, with where it happened.
    pub(crate) fn sql(at: &str, source: crate::sql::SqlError) -> Self {
        AdminError::Sql {
            at: at.to_owned(),
            source,
        }
    }

    /// The database could not be reached (PostgreSQL restarting, a cut
    /// network): the same work may succeed once it is back, on a new
    /// connection. Any other error would fail again.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            AdminError::Sql { source, .. } => source.is_connection_lost(),
            _ => false,
        }
    }
}

/// Runs `work` on the value behind `shared` (a database connection) on
/// tokio's blocking threads, the lock taken there: a poisoned lock is
/// recovered, as the connection itself is still sound.
pub(crate) async fn blocking_locked<T: Send + 'static, R: Send + 'static>(
    shared: &std::sync::Arc<std::sync::Mutex<T>>,
    work: impl FnOnce(&mut T) -> Result<R, AdminError> + Send + 'static,
) -> Result<R, AdminError> {
    let shared = shared.clone();
    blocking(move || work(&mut shared.lock().unwrap_or_else(|e| e.into_inner()))).await
}

/// Runs database (or password-hashing) work on tokio's blocking threads, so
/// a request never stalls the runtime; a panic there is an error, not a crash.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or(Err(AdminError::Interrupted))
}
