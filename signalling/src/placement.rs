//! Rooms hosted across a hub's nodes (docs/scaling.md). Where a room is
//! lives in the shared database, which this crate does not know: the
//! binary gives the signalling state a [`RoomPlacer`] over it. Without one
//! (a hub of one node) every room is here.

/// Where a room is hosted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosted {
    /// On this node.
    Here,
    /// On another node, whose base URL browsers reach it at.
    Elsewhere(String),
    /// On another node, and this node spans the room to it: the
    /// participant stays here, its media relayed to and from the room's
    /// node, each packet crossing once (docs/scaling.md).
    Spanned {
        /// The room's node's relay (QUIC over UDP).
        relay: std::net::SocketAddr,
        /// The name its certificate bears.
        name: String,
    },
}

/// What a node can do with a resume it holds no session for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// No node's session: it ended, or never was.
    Unknown,
    /// Its node, or the node its call moved to, is live: resume there.
    Elsewhere(String),
    /// Its node is gone and its call now lives here: these sessions of
    /// that call (this one among them) wait for their browsers.
    Adopted {
        /// The call's sessions the gone node kept.
        sessions: Vec<crate::CarriedSession>,
        /// The call's consent to record, if one was recorded.
        consent: Option<crate::Consent>,
    },
}

/// Finds, or chooses, the node that hosts a room.
pub trait RoomPlacer: Send + Sync {
    /// Where `room` is hosted, placing it if it is nowhere yet (or its node
    /// is gone). May wait on the database: called where waiting is allowed.
    /// An error is logged and the room is hosted here, so a database
    /// hiccup never refuses a call.
    fn place(&self, room: &str) -> Result<Hosted, String>;

    /// The session with resume token hash `resume_hash`, kept by another
    /// node: where to resume it, or, its node gone, its call taken over by
    /// this node.
    fn adopt(&self, resume_hash: &str) -> Result<Adoption, String>;

    /// The hub's live nodes' base URLs: where a browser tries to resume
    /// when its node goes.
    fn nodes(&self) -> Vec<String>;

    /// Where joins go while this node is full (see
    /// `AppState::with_capacity`): the least-loaded other live node that
    /// can span a room back to this one. `None`: nowhere, take it here.
    fn overflow(&self) -> Option<String> {
        None
    }
}
