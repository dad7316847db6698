//! Rooms placed across the hub's nodes through the shared database
//! (docs/scaling.md): the signalling's [`RoomPlacer`] over the call log.

use std::sync::Mutex;
use std::time::SystemTime;

use carecall_admin::nodes::NodeState;
use carecall_admin::CallLog;
use carecall_signalling::placement::{Adoption, Hosted, RoomPlacer};

/// Places rooms through its own connection to the shared database.
pub struct DatabasePlacer {
    log: Mutex<CallLog>,
    /// This node has a relay: a join for a room hosted on a node that has
    /// one too stays here, the room spanning both.
    spans: bool,
}

impl DatabasePlacer {
    /// Places rooms as `log`'s node; with `spans`, joins stay on this node
    /// and their rooms span to the node hosting them, where it can.
    pub fn new(log: CallLog, spans: bool) -> DatabasePlacer {
        DatabasePlacer {
            log: Mutex::new(log),
            spans,
        }
    }
}

impl DatabasePlacer {
    fn log(&self) -> std::sync::MutexGuard<'_, CallLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RoomPlacer for DatabasePlacer {
    fn place(&self, room: &str) -> Result<Hosted, String> {
        let log = self.log();
        let placed = log
            .place_room(room, SystemTime::now())
            .map_err(|e| e.to_string())?;
        if placed.node == log.node_id() {
            return Ok(Hosted::Here);
        }
        let relay = placed.relay.filter(|_| self.spans);
        match relay.and_then(|(addr, name)| Some((addr.parse().ok()?, name))) {
            Some((relay, name)) => Ok(Hosted::Spanned { relay, name }),
            None => Ok(Hosted::Elsewhere(placed.url)),
        }
    }

    fn adopt(&self, resume_hash: &str) -> Result<Adoption, String> {
        self.log()
            .adopt_sessions(resume_hash, SystemTime::now())
            .map_err(|e| e.to_string())
    }

    fn overflow(&self) -> Option<String> {
        if !self.spans {
            return None;
        }
        let nodes = match self.log().nodes(SystemTime::now()) {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::warn!(%error, "the hub's nodes unreadable");
                return None;
            }
        };
        nodes
            .into_iter()
            .filter(|n| n.state == NodeState::Live && !n.this && n.relay.is_some())
            .min_by_key(|n| (n.participants, n.rooms))
            .map(|n| n.url)
    }

    fn nodes(&self) -> Vec<String> {
        match self.log().nodes(SystemTime::now()) {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.state == NodeState::Live)
                .map(|n| n.url)
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "the hub's nodes unreadable");
                Vec::new()
            }
        }
    }
}
