//! A hub of several nodes on one database (docs/scaling.md): each node's
//! heartbeat, and the list the dashboard and `/metrics` show.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::SystemTime;

use axum::extract::State;
use axum::Json;

use crate::api_error::ApiError;
pub use crate::call_log::nodes::{
    NodeLoad, NodeState, NodeStatus, HEARTBEAT_EVERY, IDS_PER_START, LOST_AFTER,
};
pub use crate::call_log::placement::{Placement, PLACEMENT_HELD_FOR};
use crate::call_log::CallLog;
use crate::state::AdminState;

/// This node's heartbeat, written on its own thread (the database may be
/// slow; nothing else waits on it). Stopping it marks the node stopped.
pub struct Heartbeat {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Writes `log`'s node's heartbeat with `load()` every
    /// [`HEARTBEAT_EVERY`] until stopped. A failed write is logged and
    /// tried again at the next beat: the node is shown lost meanwhile.
    pub fn start(
        log: CallLog,
        load: impl Fn() -> NodeLoad + Send + 'static,
    ) -> std::io::Result<Heartbeat> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("node-heartbeat".into())
            .spawn(move || beat(&log, &load, &stopped))?;
        Ok(Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Marks the node stopped and waits for that to be written.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn beat(log: &CallLog, load: &dyn Fn() -> NodeLoad, stopped: &Receiver<()>) {
    loop {
        if let Err(error) = log.node_beat(load(), SystemTime::now()) {
            tracing::warn!(%error, "node heartbeat not written");
        }
        match stopped.recv_timeout(HEARTBEAT_EVERY) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(error) = log.node_stopped(SystemTime::now()) {
        tracing::warn!(%error, "node not marked stopped");
    }
}

/// `GET /admin/api/nodes`: the hub's nodes, live, stopped or lost.
pub(crate) async fn list(
    State(state): State<AdminState>,
) -> Result<Json<Vec<NodeStatus>>, ApiError> {
    crate::blocking_locked(&state.call_log, |log| log.nodes(SystemTime::now()))
        .await
        .map(Json)
        .map_err(|e| ApiError::unavailable("nodes", e, "the list of nodes is unavailable"))
}
