//! carecall's signalling: signed join links, the call page, and the WebSocket
//! over which a browser joins a room and exchanges SDP and ICE with the SFU.
//!
//! HTTP-time work (checking a link) happens in handlers; each WebSocket is one
//! [`session`] task. Media is the SFU's business: this crate only turns browser
//! intent into [`carecall_sfu::MediaServer`] commands and relays its signals.

#![warn(missing_docs)]

mod asks;
mod carried;
mod client_addr;
mod consent;
mod downloads;
mod events;
pub mod images;
mod outcomes;
mod pages;
pub mod placement;
mod presence;
pub mod protocol;
mod recording;
mod resume;
mod revocations;
mod session;
pub mod token;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use carecall_sfu::MediaServer;
use tokio::sync::mpsc::UnboundedSender;

pub use carried::{resume_hash, CarriedSession};
pub use client_addr::TrustedProxies;
pub use consent::{Consent, ConsentGiver, ConsentManner};
pub use downloads::{Download, DownloadLinks};
pub use events::{CallEvent, EventTally};
pub use presence::{Ending, Presence};
pub use recording::RecordingPolicy;
pub use revocations::LinkRevocations;
pub use session::{SocketLimits, RESUME_WINDOW};
pub use token::{JoinClaims, LinkSigner, Role, TokenError};

/// The TURN servers offered to browsers and the secret their credentials
/// are made with (shared with the embedded TURN server, or an external
/// coturn's `static-auth-secret`).
#[derive(Clone, Debug)]
pub struct TurnOffer {
    /// `turn:host:port?transport=udp`, `turns:host:443?transport=tcp`, …
    pub urls: Vec<String>,
    /// Signs the credentials.
    pub secret: carecall_sfu::turn::TurnSecret,
    /// How long credentials last (a call, its reconnections, with margin).
    pub ttl: std::time::Duration,
}

impl TurnOffer {
    /// The ICE servers to hand `participant`, valid from `now` (Unix secs).
    pub fn ice_servers(&self, participant: &str, now: u64) -> Vec<protocol::IceServer> {
        self.ice_servers_lasting(participant, now, self.ttl)
    }

    /// The same, lasting `ttl` at most: the public check page's are
    /// short-lived, as anyone may ask for them.
    pub fn ice_servers_lasting(
        &self,
        participant: &str,
        now: u64,
        ttl: std::time::Duration,
    ) -> Vec<protocol::IceServer> {
        let c = self
            .secret
            .issue(participant, now + ttl.min(self.ttl).as_secs());
        vec![protocol::IceServer {
            urls: self.urls.clone(),
            username: c.username,
            credential: c.password,
        }]
    }
}

/// How long a room that could not span the node hosting it keeps trying
/// (as long as a lost relay link is made again).
const SPAN_TRIES_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    signer: LinkSigner,
    turn: Option<TurnOffer>,
    presence: Presence,
    resumes: resume::ResumeBook,
    media: MediaServer,
    events: Option<UnboundedSender<CallEvent>>,
    /// How many of `events` the writer has caught up with.
    tally: EventTally,
    next_participant: AtomicU64,
    recording: Option<RecordingPolicy>,
    recordings: recording::RecordingBook,
    consents: consent::ConsentBook,
    limits: carecall_sfu::Live<SocketLimits>,
    images: Option<images::ImagePolicy>,
    images_book: images::ImageBook,
    refusals: carecall_sfu::Refusals,
    revocations: LinkRevocations,
    outcomes: outcomes::JoinOutcomes,
    carried: carried::CarriedOver,
    /// Where rooms are hosted, on a hub of several nodes.
    placer: Option<Arc<dyn placement::RoomPlacer>>,
    /// Participants this node hosts before it sends further joins to
    /// another node (see [`AppState::with_capacity`]).
    capacity: Option<usize>,
    /// Held while a call is taken over from a node that is gone.
    adopting: std::sync::Mutex<()>,
    /// Set once the hub is stopping: no new joins.
    stopping: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// State for a server that signs links with `signer` and runs calls on `media`.
    /// Call events go to `events`, if given.
    pub fn new(
        signer: LinkSigner,
        media: MediaServer,
        events: Option<UnboundedSender<CallEvent>>,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                signer,
                turn: None,
                presence: Presence::default(),
                resumes: resume::ResumeBook::default(),
                media,
                events,
                tally: EventTally::default(),
                next_participant: AtomicU64::new(1),
                recording: None,
                recordings: recording::RecordingBook::default(),
                consents: consent::ConsentBook::default(),
                limits: carecall_sfu::Live::default(),
                images: None,
                images_book: images::ImageBook::default(),
                refusals: carecall_sfu::Refusals::default(),
                revocations: LinkRevocations::default(),
                outcomes: outcomes::JoinOutcomes::default(),
                carried: carried::CarriedOver::default(),
                placer: None,
                capacity: None,
                adopting: std::sync::Mutex::new(()),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Counts call events in `tally`, which their writer marks written.
    pub fn with_event_tally(self, tally: EventTally) -> Self {
        let inner =
            Arc::into_inner(self.inner).expect("with_event_tally before the state is shared");
        AppState {
            inner: Arc::new(Inner { tally, ..inner }),
        }
    }

    /// Waits (at most 5 s) until the call log holds every call event sent
    /// so far; false if its writer is behind by more than that.
    pub async fn call_log_caught_up(&self) -> bool {
        self.inner
            .tally
            .caught_up(std::time::Duration::from_secs(5))
            .await
    }

    /// Hands every participant TURN credentials for `turn`'s servers.
    pub fn with_turn(self, turn: TurnOffer) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_turn before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                turn: Some(turn),
                ..inner
            }),
        }
    }

    /// Limits each signalling socket by `limits`, counting refusals in
    /// `refusals` (default: [`SocketLimits::default`], counted apart). A
    /// reload that replaces `limits` applies to sockets opened after it.
    pub fn with_limits(
        self,
        limits: carecall_sfu::Live<SocketLimits>,
        refusals: carecall_sfu::Refusals,
    ) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_limits before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                limits,
                refusals,
                ..inner
            }),
        }
    }

    /// Lets hub staff ask for clinical images, kept as `policy` says.
    pub fn with_images(self, policy: images::ImagePolicy) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_images before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                images: Some(policy),
                ..inner
            }),
        }
    }

    /// Sends each join to the node that hosts its room, as `placer` says.
    pub fn with_placer(self, placer: Arc<dyn placement::RoomPlacer>) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_placer before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                placer: Some(placer),
                ..inner
            }),
        }
    }

    /// Hosts at most `max` participants here: a join beyond, even to a
    /// room hosted here, goes to another node that spans the room back
    /// (the placer's `overflow`), if the hub has one; else it is taken here.
    pub fn with_capacity(self, max: usize) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_capacity before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                capacity: Some(max),
                ..inner
            }),
        }
    }

    /// Where `room` is hosted: here, unless a placer says another node.
    /// Waits on the placer (the database) off the runtime's other tasks.
    pub(crate) fn hosted(&self, room: &str) -> placement::Hosted {
        let Some(placer) = &self.inner.placer else {
            return placement::Hosted::Here;
        };
        let hosted = match tokio::task::block_in_place(|| placer.place(room)) {
            Ok(hosted) => hosted,
            Err(error) => {
                tracing::warn!(%error, room, "room placement unreadable: hosting the room here");
                placement::Hosted::Here
            }
        };
        // Counted only on a node with a limit, and for a room hosted here.
        let full = |max: usize| self.inner.presence.total() >= max;
        if hosted != placement::Hosted::Here || !self.inner.capacity.is_some_and(full) {
            return hosted;
        }
        match tokio::task::block_in_place(|| placer.overflow()) {
            Some(url) => {
                tracing::info!(room, node = %url, "this node is full: the join goes to another node");
                placement::Hosted::Elsewhere(url)
            }
            None => hosted,
        }
    }

    /// Spans `room` to the node whose relay is at `relay`, in the
    /// background: the join goes on meanwhile, and the far side's
    /// participants appear once the link is up.
    ///
    /// A span that fails (the far node not answering yet, a network
    /// blip) is tried again at doubling waits up to 10 s, for
    /// [`SPAN_TRIES_FOR`], while anyone is in the room here.
    pub(crate) fn span(&self, room: &str, relay: std::net::SocketAddr, name: String) {
        let state = self.clone();
        let room = carecall_sfu::RoomId(room.to_owned());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut wait = std::time::Duration::from_secs(1);
            loop {
                let Err(error) = state.inner.media.span(room.clone(), relay, &name).await else {
                    tracing::info!(%room, %relay, node = name, "room spans another node");
                    return;
                };
                if started.elapsed() >= SPAN_TRIES_FOR {
                    tracing::warn!(%room, %relay, node = name, %error, "room could not span another node: its participants here are apart from those there");
                    return;
                }
                tracing::warn!(%room, %relay, node = name, %error, "room could not span another node yet: trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
                if state.inner.presence.is_empty(&room.0) {
                    return; // everyone here left meanwhile
                }
            }
        });
    }

    /// Lets clinicians record calls, written as `policy` says.
    pub fn with_recording(self, policy: RecordingPolicy) -> Self {
        let inner = Arc::into_inner(self.inner).expect("with_recording before the state is shared");
        AppState {
            inner: Arc::new(Inner {
                recording: Some(policy),
                ..inner
            }),
        }
    }

    /// Numbers participants from `first` on: above every id the call
    /// history holds, so a new participant never takes the id of one
    /// carried over a restart.
    pub fn with_first_participant(self, first: u64) -> Self {
        self.inner
            .next_participant
            .store(first.max(1), std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Holds `sessions` left by the previous process for their browsers to
    /// resume, until [`AppState::give_up_carried`]: the tests' way of
    /// ending the wait that [`AppState::hold_for_resume`] ends by timer.
    #[cfg(test)]
    pub(crate) fn carry_over(&self, sessions: Vec<CarriedSession>) {
        self.inner.carried.hold(sessions);
    }

    /// Holds `sessions` for their browsers for [`RESUME_WINDOW`]; those
    /// still held then leave the call history as of when they were left.
    /// Needs the runtime (its timer).
    pub fn hold_for_resume(&self, sessions: Vec<CarriedSession>) {
        let hashes: Vec<String> = sessions.iter().map(|s| s.resume_hash.clone()).collect();
        self.inner.carried.hold(sessions);
        let state = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RESUME_WINDOW).await;
            let gone = state.inner.carried.give_up_these(&hashes);
            if !gone.is_empty() {
                tracing::info!(gone = gone.len(), "participants not back in time have left");
            }
            state.gone(&gone);
        });
    }

    /// Ends the carried-over sessions no browser resumed: each leaves the
    /// call history when the previous process stopped. Returns how many.
    #[cfg(test)]
    pub(crate) fn give_up_carried(&self) -> usize {
        let gone = self.inner.carried.give_up();
        self.gone(&gone);
        gone.len()
    }

    /// Each of `gone` leaves the call history when its node stopped.
    fn gone(&self, gone: &[CarriedSession]) {
        for s in gone {
            tracing::info!(room = %s.claims.room, participant = %s.participant, "not resumed after the restart");
            self.emit(CallEvent::Left {
                room: s.claims.room.clone(),
                participant: s.participant.to_string(),
                at: s.parked_at,
            });
        }
    }

    /// The session `resume` names, kept by another node: where its browser
    /// resumes, or (its node gone) its call taken over here, the call's
    /// sessions held for [`RESUME_WINDOW`] for their browsers.
    /// One at a time: a call's browsers resume here at once, and the first
    /// takes the call over for all; the others find their sessions held.
    pub(crate) fn adopt(&self, resume: &str) -> Result<CarriedSession, placement::Adoption> {
        let Some(placer) = &self.inner.placer else {
            return Err(placement::Adoption::Unknown);
        };
        let hash = resume_hash(resume);
        // The wait for the lock is a wait too: off the runtime's workers.
        // Held until the sessions taken over are held here, so the call's
        // other browsers, next in line, find theirs.
        tokio::task::block_in_place(|| {
            let _one_at_a_time = self
                .inner
                .adopting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(held) = self.inner.carried.take(resume) {
                return Ok(held);
            }
            match placer.adopt(&hash) {
                Ok(placement::Adoption::Adopted { sessions, consent }) => {
                    tracing::info!(
                        sessions = sessions.len(),
                        "taking over a call from a node that is gone"
                    );
                    if let (Some(consent), Some(first)) = (consent, sessions.first()) {
                        self.restore_consents(vec![(first.claims.room.clone(), consent)]);
                    }
                    self.hold_for_resume(sessions);
                    self.inner
                        .carried
                        .take(resume)
                        .ok_or(placement::Adoption::Unknown)
                }
                Ok(other) => Err(other),
                Err(error) => {
                    tracing::warn!(%error, "sessions of other nodes unreadable");
                    Err(placement::Adoption::Unknown)
                }
            }
        })
    }

    /// The hub's live nodes, if it has several.
    pub(crate) fn nodes(&self) -> Option<Vec<String>> {
        let placer = self.inner.placer.as_ref()?;
        Some(tokio::task::block_in_place(|| placer.nodes()))
    }

    /// The first step of a stop: no more joins, and every recording is
    /// stopped (each file sealed and reported cut by the restart). Returns
    /// (room, the clinician who started it) of each.
    pub fn stop_joins_and_recordings(&self) -> Vec<(String, String)> {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.recordings.cut_all(&self.inner.media)
    }

    /// Whether a recording is still running or being finished.
    pub fn recording(&self) -> bool {
        self.inner.recordings.any()
    }

    /// The second step: tells every browser the hub is restarting (each
    /// session closes without leaving its call) and marks the sessions for
    /// the next process, with the recordings `cut`. Returns how many.
    pub fn restart(&self, cut: Vec<(String, String)>) -> usize {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let told = self.inner.presence.restarting();
        self.emit(CallEvent::Stopping {
            at: std::time::SystemTime::now(),
            recording: cut,
        });
        told
    }

    /// Puts back each room's consent to record from before a restart.
    pub fn restore_consents(&self, consents: Vec<(String, crate::Consent)>) {
        for (room, consent) in consents {
            self.inner.consents.restore(room, consent);
        }
    }

    fn stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A participant id no one has had in this run: for joins, and for the
    /// admin plane's connectivity checks, which meet the SFU too.
    pub fn new_participant(&self) -> carecall_sfu::ParticipantId {
        carecall_sfu::ParticipantId(
            self.inner
                .next_participant
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Withdrawn join links, checked at join and on resume.
    pub fn revocations(&self) -> &LinkRevocations {
        &self.inner.revocations
    }

    /// Where refusals at the public surfaces are counted.
    pub fn refusals(&self) -> &carecall_sfu::Refusals {
        &self.inner.refusals
    }

    /// Joins whose media never connected before they left, by role, since
    /// start.
    pub fn never_connected(&self) -> Vec<(Role, u64)> {
        self.inner.outcomes.never_connected_counts()
    }

    /// The TURN servers offered to browsers, if any.
    pub fn turn(&self) -> Option<&TurnOffer> {
        self.inner.turn.as_ref()
    }

    /// Who is in which room.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    fn emit(&self, event: CallEvent) {
        if let Some(tx) = &self.inner.events {
            self.inner.tally.sent();
            if tx.send(event).is_err() {
                self.inner.tally.written(); // no writer: nothing to wait for
            }
        }
    }
}

/// The signalling routes. Kept apart from any listener so tests can call it
/// with `oneshot` and the binary can merge it with the admin routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/join", get(pages::join_page))
        .route("/client/app.js", get(pages::app_js))
        .route("/client/call.js", get(pages::call_js))
        .route("/client/tablet.js", get(pages::tablet_js))
        .route("/client/photo.js", get(pages::photo_js))
        .route("/client/consent.js", get(pages::consent_js))
        .route("/client/style.css", get(pages::style_css))
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .merge(images::routes())
        .with_state(state)
}

/// Initial read buffer of a signalling WebSocket.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// `GET /ws`: upgrades to the signalling WebSocket. Frames are capped well above
/// the protocol's 64 KiB so an oversized message is answered with a clear error
/// rather than a dropped connection.
async fn ws_upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        // Signalling messages are a few KiB (an SDP offer the largest): a
        // read buffer of 128 KiB per participant, the default, would mostly
        // sit empty (16 KiB held 33 KiB each in 10 rooms of 3). It still
        // grows for a larger message.
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| session::run(socket, state))
}
