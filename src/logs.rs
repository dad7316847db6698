//! Logs to standard error, as text or JSON, filtered by a level a reload
//! can change (`log_level`; `RUST_LOG`, when set, wins at start).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogFormat;

/// Changes the running filter.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Starts logging in `format` at `level` (an `EnvFilter` directive such as
/// `info,str0m=warn`), unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_LEVEL));
    let (filter, handle) = reload::Layer::new(filter);
    let _ = FILTER.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    let text = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(text).init(),
        LogFormat::Json => registry
            .with(
                text.json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
}

/// Puts `level` in force (a reload); why not, if it cannot be.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log_level: {e}"))?;
    let handle = FILTER.get().ok_or("logging was not started")?;
    handle.reload(filter).map_err(|e| format!("log_level: {e}"))
}
