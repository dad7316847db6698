//! A stop that keeps calls: on SIGTERM (or Ctrl-C) every browser is told the
//! hub is restarting and its session is left in the database for the next
//! process, which takes it back when the browser resumes (same participant,
//! same consultation, a fresh media session). Then HTTP stops.

use std::sync::Arc;
use std::time::Duration;

use carecall_signalling::AppState;
use tokio::sync::{watch, Notify};

/// How long recordings get to finish their files.
const FINISH_RECORDINGS: Duration = Duration::from_secs(10);

/// How long sessions get to send "restarting" and close their sockets.
const TELL_BROWSERS: Duration = Duration::from_secs(3);

/// How long the call-log writer gets to mark the sessions it holds.
const PARK_SESSIONS: Duration = Duration::from_secs(5);

/// How long after a stop the next process takes its sessions back. The
/// browsers wait two minutes; a restart takes seconds.
pub const CARRY_OVER_FOR: Duration = Duration::from_secs(120);

/// Waits for SIGTERM or Ctrl-C, then hands every call to the next process
/// and stops HTTP through `stop`. `parked` is notified once the call-log
/// writer has marked the sessions.
pub async fn on_stop(calls: AppState, parked: Arc<Notify>, stop: watch::Sender<bool>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "no SIGTERM handler: only Ctrl-C stops the hub");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    let started = tokio::time::Instant::now();
    // Recordings first: each file is sealed and reported before the
    // sessions are handed over, so the call log has it all.
    let cut = calls.stop_joins_and_recordings();
    while calls.recording() && started.elapsed() < FINISH_RECORDINGS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !cut.is_empty() {
        tracing::info!(
            recordings = cut.len(),
            "recordings sealed for the restart; each continues in a new part"
        );
    }
    let told = calls.restart(cut);
    tracing::info!(
        sessions = told,
        "stopping: every browser is told the hub is restarting"
    );
    while !calls.presence().is_all_empty() && started.elapsed() < TELL_BROWSERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if tokio::time::timeout(PARK_SESSIONS, parked.notified())
        .await
        .is_err()
    {
        tracing::error!("the call log did not mark the sessions in time: browsers will join again");
    }
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        "calls handed to the next process; stopping HTTP"
    );
    let _ = stop.send(true);
}
