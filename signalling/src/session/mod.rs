//! One browser's signalling session: join, SDP/ICE exchange, presence, and
//! resuming on a new socket after the old one dropped.
//!
//! A session is one task. It reads its current [`Link`] (the socket), relays
//! media signals and presence to it, and outlives it: when the socket drops
//! without a close frame (Wi-Fi gone, a network change), the session parks
//! for [`RESUME_WINDOW`], keeping its participant in the room, and a new
//! socket that sends the `resume` token from `joined` takes it over. What
//! was sent while parked waits in the session's channels and follows the
//! `resumed` message. A close frame, `leave`, or the window passing ends the
//! session and the participant leaves.
//!
//! A fatal protocol error sends an `error` message, then closes the socket;
//! the room and everyone else in it carry on.

mod link;
mod pace;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, WebSocket};
use carecall_sfu::{MediaSignal, ParticipantId, RoomId, Surface, TileSizes};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use tracing::Instrument;

use crate::events::CallEvent;
use crate::presence::Ending;
use crate::protocol::{
    parse_client_message, ClientMessage, PeerInfo, ProtocolError, ServerMessage, PROTOCOL_VERSION,
};
use crate::token::{unix_now, JoinClaims};
use crate::AppState;
pub(crate) use link::Link;

/// WebSocket close codes (4000–4999 are for applications, RFC 6455 §7.4.2).
mod close {
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const BAD_TOKEN: u16 = 4001;
    pub const PROTOCOL: u16 = 4002;
    pub const MEDIA: u16 = 4003;
    pub const ENDED: u16 = 4004;
    pub const NO_SESSION: u16 = 4005;
    /// The hub is restarting: resume once it is back.
    pub const RESTARTING: u16 = 4006;
    /// The room is on another node: join there.
    pub const ELSEWHERE: u16 = 4007;
    /// From the browser: it is resuming on a new socket; not a leave.
    pub const RESUMING: u16 = 4000;
}

/// How often the server pings the browser. A tablet whose Wi-Fi vanished
/// leaves a half-open TCP connection; pings make the loss visible.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The tallest tile height a browser may report (8K); more is treated as this.
const MAX_VIEW_HEIGHT: u32 = 4320;

/// Silence after which a session is closed: three missed pings.
const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// How long a session whose socket dropped waits for its browser to resume.
/// Past this the browser's ICE has given up too (consent expires at 30 s) and
/// the page offers to join again.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);

/// How much one signalling socket may send and leave unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    /// Messages per second a socket may send, on average.
    pub messages_per_sec: u32,
    /// Messages it may send at once (a join's offer and ICE candidates).
    pub message_burst: u32,
    /// ICE candidates a participant may trickle per offer (a browser
    /// gathers a handful per network interface).
    pub candidates_per_offer: usize,
    /// Messages waiting for a browser that does not read before its socket
    /// is dropped (it may resume on a new one).
    pub send_queue: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            messages_per_sec: 20,
            message_burst: 200,
            candidates_per_offer: 64,
            send_queue: 512,
        }
    }
}

struct Joined {
    claims: JoinClaims,
    /// ICE candidates trickled since the last offer.
    candidates: usize,
    id: ParticipantId,
    /// The secret a new socket presents to take this session over.
    resume: String,
    media: Option<UnboundedSender<MediaSignal>>,
    /// Whether its media has connected at least once.
    connected: bool,
    /// Ended by a restart: it stays in the call for the next process.
    carried: bool,
    /// Carried over a restart while recording: records again once its
    /// media is connected.
    record_when_connected: bool,
    /// Tile sizes reported before the offer: the media room does not know
    /// this participant until then, so they are passed on right after it.
    early_views: TileSizes,
    /// Participants on other nodes of a room spanning nodes, as the browser
    /// was told of them (listed again when a socket resumes).
    remote: Vec<PeerInfo>,
    /// Recordings of the call on other nodes: who started each and when.
    far_recordings: Vec<(ParticipantId, u64)>,
}

struct Session {
    state: AppState,
    /// Everything for the browser goes through here, so messages sent while
    /// no socket is attached wait for the next one. Presence holds a clone.
    outbox: UnboundedSender<ServerMessage>,
    /// Handed to presence at join, so the hub can end this session.
    end: UnboundedSender<Ending>,
    /// Handed to the resume book at join: a new socket arrives through it.
    attach: UnboundedSender<Link>,
    /// The socket, while one is attached.
    link: Option<Link>,
    /// Set while parked: when to give up waiting for a resume.
    parked_until: Option<Instant>,
    /// The close frame to end the socket with, once queued messages are out.
    closing: Option<(u16, String)>,
    joined: Option<Joined>,
    /// How fast the socket may send; a new socket starts a new bucket.
    pace: pace::Pace,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs a session until the browser leaves, its socket drops for longer than
/// [`RESUME_WINDOW`], or a fatal error. Everything it logs is inside a
/// `session` span that names the room and participant once it has joined.
pub(crate) async fn run(socket: WebSocket, state: AppState) {
    let span = tracing::info_span!(
        "session",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );
    let queue = state.inner.limits.get().send_queue;
    serve(Link::open(socket, queue), state)
        .instrument(span)
        .await
}

async fn serve(link: Link, state: AppState) {
    let (mut session, mailboxes) = Session::new(state, Some(link), Instant::now());
    let Mailboxes {
        outbox: mut outbox_rx,
        media: mut media_rx,
        mut media_tx,
        end: mut end_rx,
        attach: mut attach_rx,
    } = mailboxes;
    // First ping after one period, not at once: a client refused at once gets
    // its error and close frame without a ping racing them.
    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        let linked = session.link.is_some();
        let parked_until = session.parked_until.unwrap_or_else(Instant::now);
        let flow = tokio::select! {
            _ = keepalive.tick(), if linked => session.keepalive(),
            frame = next_frame(&mut session.link) => {
                session.on_frame(frame, Instant::now(), &mut media_tx)
            }
            // Only with a socket to send to: otherwise they wait for one.
            Some(msg) = outbox_rx.recv(), if linked => session.forward(msg),
            Some(signal) = media_rx.recv(), if linked => session.handle_media(signal),
            Some(message) = end_rx.recv() => session.ended(message),
            Some(link) = attach_rx.recv() => session.attached(link),
            _ = tokio::time::sleep_until(parked_until), if !linked => {
                tracing::info!("the browser did not come back in time");
                ControlFlow::Break(())
            }
        };
        if flow.is_break() {
            break;
        }
    }
    // Messages queued before the end (an error, `call-ended`) go out before
    // the close frame.
    if let Some(link) = session.link.take() {
        while let Ok(msg) = outbox_rx.try_recv() {
            link.send(msg);
        }
        let closing = session.closing.take();
        drop(session); // leaves the room (see `Drop`)
        link.finish(closing).await;
    }
}

/// The next frame from the socket, or never while there is none.
async fn next_frame(link: &mut Option<Link>) -> Option<Result<Message, axum::Error>> {
    match link {
        Some(link) => link.next().await,
        None => std::future::pending().await,
    }
}

/// The receiving ends of a session's channels. Kept out of [`Session`] so
/// the loop in [`serve`] can wait on them while a handler borrows the session.
struct Mailboxes {
    outbox: UnboundedReceiver<ServerMessage>,
    media: UnboundedReceiver<MediaSignal>,
    /// Handed to the media plane with the first offer.
    media_tx: Option<UnboundedSender<MediaSignal>>,
    end: UnboundedReceiver<Ending>,
    attach: UnboundedReceiver<Link>,
}

impl Session {
    /// A session that has not joined, paced from `now`.
    fn new(state: AppState, link: Option<Link>, now: Instant) -> (Session, Mailboxes) {
        let (outbox, outbox_rx) = unbounded_channel();
        let (media_tx, media_rx) = unbounded_channel();
        let (end, end_rx) = unbounded_channel();
        let (attach, attach_rx) = unbounded_channel();
        let session = Session {
            pace: pace::Pace::new(&state.inner.limits.get(), now),
            state,
            outbox,
            end,
            attach,
            link,
            parked_until: None,
            closing: None,
            joined: None,
        };
        let mailboxes = Mailboxes {
            outbox: outbox_rx,
            media: media_rx,
            media_tx: Some(media_tx),
            end: end_rx,
            attach: attach_rx,
        };
        (session, mailboxes)
    }

    fn send(&self, msg: ServerMessage) {
        let _ = self.outbox.send(msg);
    }

    /// Passes a message to the socket. A browser that has left a full
    /// queue unread loses the socket (and may resume on a new one).
    fn forward(&mut self, msg: ServerMessage) -> ControlFlow<()> {
        let Some(link) = &self.link else {
            return ControlFlow::Continue(());
        };
        // This node's recording stopped, and one on another node runs on.
        let far = self.joined.as_ref().map_or(&[][..], |j| &j.far_recordings);
        let msg = crate::recording::as_told(msg, far);
        if link.send(msg) {
            return ControlFlow::Continue(());
        }
        let who = self.who();
        self.state
            .inner
            .refusals
            .refuse(Surface::Socket, "send_queue_full", &who);
        self.dropped()
    }

    /// Who this session is, for a refusal's log line.
    fn who(&self) -> String {
        match &self.joined {
            Some(j) => format!("{} in {:?}", j.id, j.claims.room),
            None => "a socket not joined".into(),
        }
    }

    /// Sends an error and closes the socket.
    fn close_with(&mut self, code: u16, error: &str, message: String) -> ControlFlow<()> {
        tracing::info!(code = error, message = ?message, "closing signalling session");
        self.send(ServerMessage::Error {
            code: error.to_owned(),
            message: message.clone(),
        });
        self.close_frame(code, message)
    }

    /// The hub ended the call, or is restarting: tell the browser, then
    /// close.
    fn ended(&mut self, why: Ending) -> ControlFlow<()> {
        match why {
            Ending::Ended(message) => {
                tracing::info!("call ended by the hub");
                self.send(ServerMessage::CallEnded {
                    message: message.clone(),
                });
                self.close_frame(close::ENDED, message)
            }
            Ending::Restarting => {
                if let Some(j) = &mut self.joined {
                    j.carried = true;
                }
                let message = "The hub is restarting: reconnecting…".to_owned();
                self.send(ServerMessage::Restarting {
                    message: message.clone(),
                });
                self.close_frame(close::RESTARTING, message)
            }
        }
    }

    /// Ends the session; the socket closes with `code` once queued messages
    /// are sent.
    fn close_frame(&mut self, code: u16, message: String) -> ControlFlow<()> {
        // Close reasons are limited to 123 bytes; cut on a character boundary
        // (the reason may quote what the client sent).
        let mut reason = message;
        let mut cut = reason.len().min(120);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        self.closing.get_or_insert((code, reason));
        ControlFlow::Break(())
    }

    /// Has the writer ping the browser; closes a session silent for too long,
    /// or one that never joined.
    fn keepalive(&mut self) -> ControlFlow<()> {
        let Some(link) = &self.link else {
            return ControlFlow::Continue(());
        };
        let silent = link.last_heard.elapsed();
        if silent > IDLE_LIMIT {
            return self.close_with(close::POLICY, "idle", "no message or pong for 45 s".into());
        }
        if self.joined.is_none() && silent > KEEPALIVE {
            return self.close_with(
                close::POLICY,
                "not-joined",
                "send join with the link's token first".into(),
            );
        }
        link.ping();
        ControlFlow::Continue(())
    }

    fn fatal(&mut self, e: &ProtocolError) -> ControlFlow<()> {
        let code = match e {
            ProtocolError::TooLarge(_) => close::TOO_BIG,
            _ => close::PROTOCOL,
        };
        self.close_with(code, e.code(), e.to_string())
    }

    fn on_frame(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
        now: Instant,
        media_tx: &mut Option<UnboundedSender<MediaSignal>>,
    ) -> ControlFlow<()> {
        let counted = matches!(frame, Some(Ok(Message::Text(_) | Message::Binary(_))));
        if counted && !self.pace.allow(now) {
            let who = self.who();
            let inner = &self.state.inner;
            inner.refusals.refuse(Surface::Socket, "too_fast", &who);
            let limits = *inner.limits.get();
            return self.close_with(
                close::POLICY,
                "too-fast",
                format!(
                    "more than {} messages at once or {} a second",
                    limits.message_burst, limits.messages_per_sec
                ),
            );
        }
        match frame {
            Some(Ok(Message::Text(text))) => self.handle_text(text.as_str(), media_tx),
            Some(Ok(Message::Binary(_))) => self.fatal(&ProtocolError::Binary),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => ControlFlow::Continue(()),
            // The browser gave up on this socket and is resuming on another.
            Some(Ok(Message::Close(Some(frame)))) if frame.code == close::RESUMING => {
                self.dropped()
            }
            // Any other close frame is a browser leaving (a closed tab, a reload).
            Some(Ok(Message::Close(_))) => ControlFlow::Break(()),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "signalling socket error");
                self.dropped()
            }
            None => self.dropped(),
        }
    }

    /// The socket went without a close frame: a joined session waits for its
    /// browser to resume; any other ends.
    fn dropped(&mut self) -> ControlFlow<()> {
        if self.joined.is_none() {
            return ControlFlow::Break(());
        }
        if let Some(link) = self.link.take() {
            link.abandon();
        }
        self.parked_until = Some(Instant::now() + RESUME_WINDOW);
        tracing::info!(
            wait_secs = RESUME_WINDOW.as_secs(),
            "signalling socket lost; waiting for the browser to resume"
        );
        ControlFlow::Continue(())
    }

    /// Everyone else in the call, as a resumed socket lists them: those on
    /// this node, and those on other nodes of a room spanning nodes.
    fn in_the_call(&self, j: &Joined) -> Vec<PeerInfo> {
        let mut participants = self.state.inner.presence.others(&j.claims.room, j.id);
        participants.extend(j.remote.iter().cloned());
        participants
    }

    /// A new socket resumed this session: it replaces any old one (which may
    /// be half-open and not yet noticed), and learns who is in the call now.
    fn attached(&mut self, link: Link) -> ControlFlow<()> {
        let Some(j) = &self.joined else {
            return ControlFlow::Break(());
        };
        // The link must still be good: a resume is a way back in too.
        let refused = self.refusal(&j.claims);
        if refused.is_none() {
            link.send(ServerMessage::Resumed {
                participant: j.id.to_string(),
                participants: self.in_the_call(j),
                media: None,
                ice_servers: Vec::new(),
            });
        }
        if let Some(old) = self.link.replace(link) {
            old.abandon();
        }
        if let Some(e) = refused {
            return self.close_with(close::BAD_TOKEN, e.code(), e.to_string());
        }
        let parked_for = self.parked_until.take().map(|until| {
            RESUME_WINDOW.saturating_sub(until.saturating_duration_since(Instant::now()))
        });
        tracing::info!(
            parked_ms = parked_for.map(|d| d.as_millis() as u64),
            "resumed"
        );
        ControlFlow::Continue(())
    }

    fn handle_text(
        &mut self,
        text: &str,
        media_tx: &mut Option<UnboundedSender<MediaSignal>>,
    ) -> ControlFlow<()> {
        let msg = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => return self.fatal(&e),
        };
        let joined = match (&mut self.joined, msg) {
            (None, ClientMessage::Join { v, token }) => return self.join(v, &token),
            (None, ClientMessage::Resume { v, resume }) => return self.resume(v, &resume),
            (Some(_), ClientMessage::Join { .. } | ClientMessage::Resume { .. }) => {
                return self.close_with(
                    close::POLICY,
                    "already-joined",
                    "this connection has already joined a call".into(),
                )
            }
            (None, _) => {
                return self.close_with(
                    close::POLICY,
                    "not-joined",
                    "send join with the link's token first".into(),
                )
            }
            (Some(j), msg) => (j, msg),
        };
        let (j, msg) = joined;
        let room = RoomId(j.claims.room.clone());
        let media = &self.state.inner.media;
        let result = match msg {
            ClientMessage::Offer { sdp } => {
                j.candidates = 0;
                let signals = match &j.media {
                    Some(tx) => tx.clone(),
                    None => {
                        let Some(tx) = media_tx.take() else {
                            return ControlFlow::Break(());
                        };
                        j.media = Some(tx.clone());
                        tx
                    }
                };
                // An observer's link lets it watch, never be seen or heard.
                let watch_only = match j.claims.role {
                    crate::Role::Observer => media.receive_only(room.clone(), j.id),
                    _ => Ok(()),
                };
                watch_only
                    .and_then(|()| media.connect(room.clone(), j.id, sdp, signals))
                    .and_then(|()| {
                        j.early_views.take().try_for_each(|(origin, h)| {
                            media.set_view(room.clone(), j.id, origin, h)
                        })
                    })
            }
            ClientMessage::Answer { sdp } => media.answer(room, j.id, sdp),
            ClientMessage::Candidate { candidate } if candidate.is_empty() => Ok(()),
            ClientMessage::Candidate { .. }
                if j.candidates >= self.state.inner.limits.get().candidates_per_offer =>
            {
                let who = self.who();
                let inner = &self.state.inner;
                inner
                    .refusals
                    .refuse(Surface::Socket, "too_many_candidates", &who);
                let limit = inner.limits.get().candidates_per_offer;
                return self.close_with(
                    close::POLICY,
                    "too-many-candidates",
                    format!("more than {limit} ICE candidates for one offer"),
                );
            }
            ClientMessage::Candidate { candidate } => {
                j.candidates += 1;
                media.remote_candidate(room, j.id, candidate)
            }
            ClientMessage::Mute { audio, video } => {
                let updated =
                    self.state
                        .inner
                        .presence
                        .set_mute(&j.claims.room, j.id, audio, video);
                if let Some(info) = updated {
                    announce(&self.state, &j.claims.room, j.id, &info);
                }
                Ok(())
            }
            ClientMessage::View {
                participant,
                height,
            } => match participant.parse() {
                Ok(origin) if j.media.is_none() => {
                    j.early_views.set(origin, height.min(MAX_VIEW_HEIGHT));
                    Ok(())
                }
                Ok(origin) => media.set_view(room, j.id, origin, height.min(MAX_VIEW_HEIGHT)),
                Err(()) => {
                    self.send(ServerMessage::Error {
                        code: "bad-participant".into(),
                        message: format!(
                            "no participant is called {:?}",
                            crate::protocol::clip(&participant)
                        ),
                    });
                    Ok(())
                }
            },
            ClientMessage::Record { on } => {
                crate::recording::request(
                    &self.state,
                    &j.claims.room,
                    j.id,
                    j.claims.role,
                    on,
                    &self.outbox,
                );
                Ok(())
            }
            ClientMessage::Consent { given, by, how } => {
                crate::consent::record(&self.state, &j.claims, j.id, given, by, how, &self.outbox);
                Ok(())
            }
            ClientMessage::Ask { participant, what } => {
                crate::asks::ask(
                    &self.state,
                    &j.claims,
                    j.id,
                    &participant,
                    what,
                    &self.outbox,
                );
                Ok(())
            }
            ClientMessage::Leave {} => return ControlFlow::Break(()),
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e @ carecall_sfu::SfuError::SdpTooLarge { .. }) => {
                let who = self.who();
                self.state
                    .inner
                    .refusals
                    .refuse(Surface::Socket, "sdp_too_large", &who);
                self.close_with(close::POLICY, "sdp-too-large", e.to_string())
            }
            Err(e) => {
                tracing::error!(error = %e, "media plane unavailable");
                self.close_with(
                    close::MEDIA,
                    "media-unavailable",
                    "the media server is not running".into(),
                )
            }
        }
    }

    /// Checks the protocol version a browser sent.
    fn version_ok(&mut self, v: u32) -> Result<(), ControlFlow<()>> {
        if v == PROTOCOL_VERSION {
            return Ok(());
        }
        Err(self.close_with(
            close::PROTOCOL,
            "unsupported-version",
            format!("this server speaks protocol version {PROTOCOL_VERSION}; reload the page"),
        ))
    }

    fn join(&mut self, v: u32, token: &str) -> ControlFlow<()> {
        if let Err(flow) = self.version_ok(v) {
            return flow;
        }
        if self.state.stopping() {
            return self.close_with(
                close::RESTARTING,
                "restarting",
                "The hub is restarting: join again in a minute.".into(),
            );
        }
        let claims = match self.state.inner.signer.verify(token, unix_now()) {
            Ok(c) if self.state.inner.revocations.is_revoked(&c) => {
                let e = crate::TokenError::Revoked;
                return self.close_with(close::BAD_TOKEN, e.code(), e.to_string());
            }
            Ok(c) => c,
            Err(e) => return self.close_with(close::BAD_TOKEN, e.code(), e.to_string()),
        };
        let span_to = match self.state.hosted(&claims.room) {
            crate::placement::Hosted::Here => None,
            crate::placement::Hosted::Elsewhere(url) => {
                tracing::info!(room = %claims.room, node = %url, "room hosted on another node");
                self.send(ServerMessage::Elsewhere { url });
                return self.close_frame(close::ELSEWHERE, "hosted on another node".into());
            }
            crate::placement::Hosted::Spanned { relay, name } => Some((relay, name)),
        };
        let id = self.state.new_participant();
        let resume = self.state.inner.resumes.register(self.attach.clone());
        self.state.emit(CallEvent::Resumable {
            room: claims.room.clone(),
            participant: id.to_string(),
            resume_hash: crate::resume_hash(&resume),
            claims: claims.clone(),
        });
        self.state.emit(CallEvent::Joined {
            room: claims.room.clone(),
            participant: id.to_string(),
            role: claims.role,
            at: SystemTime::now(),
        });
        let (room, role, token) = (claims.room.clone(), claims.role, resume.clone());
        self.enter(claims, id, resume, false, |participants, ice_servers| {
            ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                participant: id.to_string(),
                room,
                role,
                participants,
                ice_servers,
                resume: token,
            }
        });
        // After `enter` has described the participant to the media room:
        // a room spanned before anyone is in it would close at once.
        if let (Some((relay, name)), Some(j)) = (span_to, &self.joined) {
            self.state.span(&j.claims.room, relay, name);
        }
        tracing::info!(role = %role, "joined");
        ControlFlow::Continue(())
    }

    /// Why a link no longer lets its holder in (expired, withdrawn), if so:
    /// checked at a resume too, which is a way back in.
    fn refusal(&self, claims: &JoinClaims) -> Option<crate::TokenError> {
        if claims.exp <= unix_now() {
            Some(crate::TokenError::Expired)
        } else if self.state.inner.revocations.is_revoked(claims) {
            Some(crate::TokenError::Revoked)
        } else {
            None
        }
    }

    /// Puts this session in the call as `id`: in presence, its browser told
    /// `first(those present, its TURN servers)` before anyone else's join,
    /// then the call's recording and consent state.
    fn enter(
        &mut self,
        claims: JoinClaims,
        id: ParticipantId,
        resume: String,
        record_when_connected: bool,
        first: impl FnOnce(Vec<PeerInfo>, Vec<crate::protocol::IceServer>) -> ServerMessage,
    ) {
        let inner = &self.state.inner;
        let span = tracing::Span::current();
        span.record("room", claims.room.as_str());
        span.record("participant", tracing::field::display(id));
        let info = PeerInfo {
            participant: id.to_string(),
            name: claims.name.clone(),
            role: claims.role,
            audio: true,
            video: true,
        };
        let ice_servers = inner
            .turn
            .as_ref()
            .map(|t| t.ice_servers(&id.to_string(), unix_now()))
            .unwrap_or_default();
        let (outbox, end) = (self.outbox.clone(), self.end.clone());
        announce(&self.state, &claims.room, id, &info);
        inner
            .presence
            .join(&claims.room, id, info, outbox, end, |p| {
                first(p, ice_servers)
            });
        if let Some(urls) = self.state.nodes() {
            self.send(ServerMessage::Nodes { urls });
        }
        if let Some(recording) = inner.recordings.status(&claims.room) {
            self.send(recording);
        }
        self.send(inner.consents.status(&claims.room));
        self.joined = Some(Joined {
            candidates: 0,
            claims,
            id,
            resume,
            media: None,
            connected: false,
            carried: false,
            record_when_connected,
            early_views: TileSizes::default(),
            remote: Vec::new(),
            far_recordings: Vec::new(),
        });
    }

    /// Hands this socket to the session that `resume` names; this task then
    /// ends without touching the call.
    fn resume(&mut self, v: u32, resume: &str) -> ControlFlow<()> {
        if let Err(flow) = self.version_ok(v) {
            return flow;
        }
        let Some(link) = self.link.take() else {
            return ControlFlow::Break(());
        };
        match self.state.inner.resumes.hand_over(resume, link) {
            Ok(()) => ControlFlow::Break(()),
            Err(link) => {
                self.link = Some(link);
                match self.state.inner.carried.take(resume) {
                    Some(carried) => self.resume_carried(carried, resume),
                    None if !self.state.stopping() => self.resume_elsewhere(resume),
                    // Handed to the next process already: try again there.
                    None => self.close_with(
                        close::RESTARTING,
                        "restarting",
                        "The hub is restarting: reconnecting…".into(),
                    ),
                }
            }
        }
    }

    /// A resume of no session here: another node's, sent there, or taken
    /// over from a node that is gone; else ended.
    fn resume_elsewhere(&mut self, resume: &str) -> ControlFlow<()> {
        match self.state.adopt(resume) {
            Ok(carried) => self.resume_carried(carried, resume),
            Err(crate::placement::Adoption::Elsewhere(url)) => {
                tracing::info!(node = %url, "resume for another node's session");
                self.send(ServerMessage::Elsewhere { url });
                self.close_frame(close::ELSEWHERE, "hosted on another node".into())
            }
            Err(_) => self.resume_expired(),
        }
    }

    fn resume_expired(&mut self) -> ControlFlow<()> {
        self.close_with(
            close::NO_SESSION,
            "resume-expired",
            "this call session has ended; join again".into(),
        )
    }

    /// Takes back a session the previous process left at a restart: the
    /// same participant in the same call, on a fresh media session.
    fn resume_carried(&mut self, carried: crate::CarriedSession, resume: &str) -> ControlFlow<()> {
        let (claims, id, recording) = (carried.claims, carried.participant, carried.recording);
        if let Some(e) = self.refusal(&claims) {
            // Never to come back: it leaves the call history as it stopped.
            self.state.emit(CallEvent::Left {
                room: claims.room.clone(),
                participant: id.to_string(),
                at: carried.parked_at,
            });
            return self.close_with(close::BAD_TOKEN, e.code(), e.to_string());
        }
        self.state
            .inner
            .resumes
            .register_as(resume.to_owned(), self.attach.clone());
        let parked_ms = carried
            .parked_at
            .elapsed()
            .map_or(0, |d| d.as_millis() as u64);
        self.state.emit(CallEvent::Resumed {
            room: claims.room.clone(),
            participant: id.to_string(),
            at: SystemTime::now(),
        });
        let role = claims.role;
        let record_when_connected = recording && role == crate::Role::Clinician;
        self.enter(
            claims,
            id,
            resume.to_owned(),
            record_when_connected,
            |participants, ice_servers| ServerMessage::Resumed {
                participant: id.to_string(),
                participants,
                media: Some("new"),
                ice_servers,
            },
        );
        tracing::info!(role = %role, parked_ms, "resumed after a restart");
        ControlFlow::Continue(())
    }

    fn handle_media(&mut self, signal: MediaSignal) -> ControlFlow<()> {
        match signal {
            MediaSignal::Answer(sdp) => self.send(ServerMessage::Answer { sdp }),
            MediaSignal::Offer(sdp) => self.send(ServerMessage::Offer { sdp }),
            MediaSignal::Connected => {
                if let Some(j) = &mut self.joined {
                    j.connected = true;
                    if std::mem::take(&mut j.record_when_connected) {
                        tracing::info!("recording again after the restart");
                        crate::recording::request(
                            &self.state,
                            &j.claims.room,
                            j.id,
                            j.claims.role,
                            true,
                            &self.outbox,
                        );
                    }
                }
                self.send(ServerMessage::MediaConnected)
            }
            MediaSignal::Track { mid, participant } => self.send(ServerMessage::Track {
                mid,
                participant: participant.to_string(),
            }),
            MediaSignal::VideoPaused {
                participant,
                paused,
            } => self.send(ServerMessage::VideoPaused {
                participant: participant.to_string(),
                paused,
            }),
            MediaSignal::PublishLayers { highest } => self.send(ServerMessage::PublishLayers {
                highest: highest.into(),
            }),
            MediaSignal::RemotePeer { participant, info } => self.remote_peer(participant, &info),
            MediaSignal::RemoteLeft { participant } => {
                let Some(j) = &mut self.joined else {
                    return ControlFlow::Continue(());
                };
                let id = participant.to_string();
                if let Some(i) = j.remote.iter().position(|p| p.participant == id) {
                    j.remote.swap_remove(i);
                    self.send(ServerMessage::ParticipantLeft {
                        participant: participant.to_string(),
                    });
                }
            }
            MediaSignal::RemoteRecording { by, since } => {
                let Some(j) = &mut self.joined else {
                    return ControlFlow::Continue(());
                };
                j.far_recordings.retain(|(who, _)| *who != by);
                if let Some(since) = since {
                    j.far_recordings.push((by, since));
                }
                let books = &self.state.inner.recordings;
                let status =
                    crate::recording::merged_status(books, &j.claims.room, &j.far_recordings, by);
                self.send(status);
            }
            MediaSignal::RemoteConsent { info } => {
                let Some(j) = &self.joined else {
                    return ControlFlow::Continue(());
                };
                let Ok(consent) = serde_json::from_str::<crate::Consent>(&info) else {
                    tracing::warn!("a far node's consent to record unreadable");
                    return ControlFlow::Continue(());
                };
                let consents = &self.state.inner.consents;
                if consents.adopt(&j.claims.room, consent) {
                    self.send(consents.status(&j.claims.room));
                }
            }
            MediaSignal::IceDisconnected => tracing::info!("ICE path lost"),
            MediaSignal::Error(message) => self.send(ServerMessage::Error {
                code: "media-error".into(),
                message,
            }),
            MediaSignal::Closed(reason) => {
                return self.close_with(close::MEDIA, "media-closed", reason);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Someone on another node of this call, described by their node's
    /// signalling: the browser is told as of someone here.
    fn remote_peer(&mut self, participant: ParticipantId, info: &str) {
        let Some(j) = &mut self.joined else {
            return;
        };
        let info = match serde_json::from_str::<PeerInfo>(info) {
            Ok(p) if p.participant == participant.to_string() => p,
            _ => {
                tracing::warn!(%participant, "a far node's description of a participant unreadable");
                return;
            }
        };
        let known = match j
            .remote
            .iter_mut()
            .find(|p| p.participant == info.participant)
        {
            Some(p) => {
                *p = info.clone();
                true
            }
            None => {
                j.remote.push(info.clone());
                false
            }
        };
        self.send(match known {
            true => ServerMessage::ParticipantUpdated(info),
            false => ServerMessage::ParticipantJoined(info),
        });
    }

    /// Leaves presence and the media room and records the leave. Runs from
    /// `Drop`, so a session that ends any way (even by a panic) leaves no ghost.
    fn finish(&mut self) {
        let Some(j) = self.joined.take() else {
            return;
        };
        let inner = &self.state.inner;
        inner.resumes.forget(&j.resume);
        if j.carried {
            // Still in the call: the next process takes it back.
            inner.presence.leave_quietly(&j.claims.room, j.id);
            tracing::info!("handed to the next process");
            return;
        }
        inner.presence.leave(&j.claims.room, j.id);
        if inner.presence.is_empty(&j.claims.room) {
            inner.consents.forget(&j.claims.room);
        }
        // Also before its media started: it was announced (see `announce`).
        let _ = inner.media.leave(RoomId(j.claims.room.clone()), j.id);
        if !j.connected {
            inner.outcomes.never_connected(j.claims.role);
        }
        tracing::info!(connected = j.connected, "left");
        self.state.emit(CallEvent::Left {
            room: j.claims.room,
            participant: j.id.to_string(),
            at: SystemTime::now(),
        });
    }
}

/// Describes a participant to the media room, which passes it to the other
/// nodes the call spans (their browsers show it as someone in the call).
fn announce(state: &AppState, room: &str, id: ParticipantId, info: &PeerInfo) {
    if let Ok(text) = serde_json::to_string(info) {
        let _ = state
            .inner
            .media
            .announce(RoomId(room.to_owned()), id, text);
    }
}
