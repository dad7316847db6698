//! One browser's signalling WebSocket: join, SDP/ICE exchange, presence.
//!
//! The reader loop handles client messages and media signals; a writer task owns
//! the socket's sending half so presence broadcasts never wait on this loop.
//! A fatal protocol error sends an `error` message, then closes the socket; the
//! room and everyone else in it carry on.

use std::ops::ControlFlow;
use std::time::SystemTime;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use carecall_sfu::{MediaSignal, ParticipantId, RoomId, TileSizes};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::events::CallEvent;
use crate::protocol::{
    parse_client_message, ClientMessage, PeerInfo, ProtocolError, ServerMessage, PROTOCOL_VERSION,
};
use crate::token::{unix_now, JoinClaims};
use crate::AppState;

/// WebSocket close codes (4000–4999 are for applications, RFC 6455 §7.4.2).
mod close {
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const BAD_TOKEN: u16 = 4001;
    pub const PROTOCOL: u16 = 4002;
    pub const MEDIA: u16 = 4003;
    pub const ENDED: u16 = 4004;
}

/// How often the server pings the browser. A tablet whose Wi-Fi vanished
/// leaves a half-open TCP connection; pings make the loss visible.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The tallest tile height a browser may report (8K); more is treated as this.
const MAX_VIEW_HEIGHT: u32 = 4320;

/// Silence after which a session is closed: three missed pings.
const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(45);

struct Joined {
    claims: JoinClaims,
    id: ParticipantId,
    media: Option<UnboundedSender<MediaSignal>>,
    /// Tile sizes reported before the offer: the media room does not know
    /// this participant until then, so they are passed on right after it.
    early_views: TileSizes,
}

struct Session {
    state: AppState,
    out: UnboundedSender<ServerMessage>,
    /// Handed to presence at join, so the hub can end this session.
    end: UnboundedSender<String>,
    ping: UnboundedSender<()>,
    close: Option<oneshot::Sender<(u16, String)>>,
    joined: Option<Joined>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs a session until the browser leaves, the socket drops, or a fatal
/// error. Everything it logs is inside a `session` span that names the room
/// and participant once the browser has joined.
pub(crate) async fn run(socket: WebSocket, state: AppState) {
    let span = tracing::info_span!(
        "session",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );
    serve_socket(socket, state).instrument(span).await
}

async fn serve_socket(socket: WebSocket, state: AppState) {
    let (sink, mut stream) = socket.split();
    let (out_tx, out_rx) = unbounded_channel();
    let (close_tx, close_rx) = oneshot::channel();
    let (ping_tx, ping_rx) = unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, out_rx, ping_rx, close_rx));
    let (media_tx, mut media_rx) = unbounded_channel();
    let (end_tx, mut end_rx) = unbounded_channel();
    let mut session = Session {
        state,
        out: out_tx,
        end: end_tx,
        ping: ping_tx,
        close: Some(close_tx),
        joined: None,
    };
    let mut media_tx = Some(media_tx);
    // First ping after one period, not at once: a client refused at once gets
    // its error and close frame without a ping racing them.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let flow = tokio::select! {
            _ = keepalive.tick() => session.keepalive(last_heard),
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = tokio::time::Instant::now();
                    session.handle_text(text.as_str(), &mut media_tx)
                }
                Some(Ok(Message::Binary(_))) => session.fatal(&ProtocolError::Binary),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_heard = tokio::time::Instant::now();
                    ControlFlow::Continue(())
                }
                Some(Ok(Message::Close(_))) | None => ControlFlow::Break(()),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "signalling socket error");
                    ControlFlow::Break(())
                }
            },
            Some(signal) = media_rx.recv() => session.handle_media(signal),
            Some(message) = end_rx.recv() => session.ended(message),
        };
        if flow.is_break() {
            break;
        }
    }
    drop(session); // leaves the room (see `Drop`), which ends the writer
    let _ = writer.await;
}

/// Sends queued messages and pings until the session ends (every message sender
/// dropped), then the close frame, with the reason the session gave, if any.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut messages: UnboundedReceiver<ServerMessage>,
    mut pings: UnboundedReceiver<()>,
    mut close: oneshot::Receiver<(u16, String)>,
) {
    loop {
        tokio::select! {
            biased;
            Some(()) = pings.recv() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = messages.recv() => match msg {
                Some(m) => {
                    if send_json(&mut sink, &m).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
        }
    }
    let frame = close.try_recv().ok().map(|(code, reason)| CloseFrame {
        code,
        reason: reason.into(),
    });
    let _ = sink.send(Message::Close(frame)).await;
}

async fn send_json(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    msg: &ServerMessage,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    sink.send(Message::Text(text.into())).await
}

impl Session {
    fn send(&self, msg: ServerMessage) {
        let _ = self.out.send(msg);
    }

    /// Sends an error and closes the socket.
    fn close_with(&mut self, code: u16, error: &str, message: String) -> ControlFlow<()> {
        tracing::info!(code = error, %message, "closing signalling session");
        self.send(ServerMessage::Error {
            code: error.to_owned(),
            message: message.clone(),
        });
        self.close_frame(code, message)
    }

    /// The hub ended the call: tell the browser, then close.
    fn ended(&mut self, message: String) -> ControlFlow<()> {
        tracing::info!("call ended by the hub");
        self.send(ServerMessage::CallEnded {
            message: message.clone(),
        });
        self.close_frame(close::ENDED, message)
    }

    /// Has the writer close the socket with `code` once queued messages are
    /// sent.
    fn close_frame(&mut self, code: u16, message: String) -> ControlFlow<()> {
        if let Some(close) = self.close.take() {
            // Close reasons are limited to 123 bytes; cut on a character boundary
            // (the reason may quote what the client sent).
            let mut reason = message;
            let mut cut = reason.len().min(120);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            let _ = close.send((code, reason));
        }
        ControlFlow::Break(())
    }

    /// Has the writer ping the browser; closes a session silent for too long,
    /// or one that never joined.
    fn keepalive(&mut self, last_heard: tokio::time::Instant) -> ControlFlow<()> {
        if last_heard.elapsed() > IDLE_LIMIT {
            return self.close_with(close::POLICY, "idle", "no message or pong for 45 s".into());
        }
        if self.joined.is_none() && last_heard.elapsed() > KEEPALIVE {
            return self.close_with(
                close::POLICY,
                "not-joined",
                "send join with the link's token first".into(),
            );
        }
        let _ = self.ping.send(());
        ControlFlow::Continue(())
    }

    fn fatal(&mut self, e: &ProtocolError) -> ControlFlow<()> {
        let code = match e {
            ProtocolError::TooLarge(_) => close::TOO_BIG,
            _ => close::PROTOCOL,
        };
        self.close_with(code, e.code(), e.to_string())
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
            (Some(_), ClientMessage::Join { .. }) => {
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
                media
                    .connect(room.clone(), j.id, sdp, signals)
                    .and_then(|()| {
                        j.early_views.take().try_for_each(|(origin, h)| {
                            media.set_view(room.clone(), j.id, origin, h)
                        })
                    })
            }
            ClientMessage::Answer { sdp } => media.answer(room, j.id, sdp),
            ClientMessage::Candidate { candidate } if candidate.is_empty() => Ok(()),
            ClientMessage::Candidate { candidate } => media.remote_candidate(room, j.id, candidate),
            ClientMessage::Mute { audio, video } => {
                self.state
                    .inner
                    .presence
                    .set_mute(&j.claims.room, j.id, audio, video);
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
                        message: format!("no participant is called {participant:?}"),
                    });
                    Ok(())
                }
            },
            ClientMessage::Leave {} => return ControlFlow::Break(()),
            ClientMessage::Join { .. } => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
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

    fn join(&mut self, v: u32, token: &str) -> ControlFlow<()> {
        if v != PROTOCOL_VERSION {
            return self.close_with(
                close::PROTOCOL,
                "unsupported-version",
                format!("this server speaks protocol version {PROTOCOL_VERSION}; reload the page"),
            );
        }
        let claims = match self.state.inner.signer.verify(token, unix_now()) {
            Ok(c) => c,
            Err(e) => return self.close_with(close::BAD_TOKEN, e.code(), e.to_string()),
        };
        let id = self.state.new_participant();
        let inner = &self.state.inner;
        let info = PeerInfo {
            participant: id.to_string(),
            name: claims.name.clone(),
            role: claims.role,
            audio: true,
            video: true,
        };
        let participants =
            inner
                .presence
                .join(&claims.room, id, info, self.out.clone(), self.end.clone());
        let span = tracing::Span::current();
        span.record("room", claims.room.as_str());
        span.record("participant", tracing::field::display(id));
        tracing::info!(role = %claims.role, "joined");
        let ice_servers = inner
            .turn
            .as_ref()
            .map(|t| t.ice_servers(&id.to_string(), unix_now()))
            .unwrap_or_default();
        self.send(ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            participant: id.to_string(),
            room: claims.room.clone(),
            participants,
            ice_servers,
        });
        self.state.emit(CallEvent::Joined {
            room: claims.room.clone(),
            participant: id.to_string(),
            role: claims.role,
            at: SystemTime::now(),
        });
        self.joined = Some(Joined {
            claims,
            id,
            media: None,
            early_views: TileSizes::default(),
        });
        ControlFlow::Continue(())
    }

    fn handle_media(&mut self, signal: MediaSignal) -> ControlFlow<()> {
        match signal {
            MediaSignal::Answer(sdp) => self.send(ServerMessage::Answer { sdp }),
            MediaSignal::Offer(sdp) => self.send(ServerMessage::Offer { sdp }),
            MediaSignal::Connected => self.send(ServerMessage::MediaConnected),
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

    /// Leaves presence and the media room and records the leave. Runs from
    /// `Drop`, so a session that ends any way (even by a panic) leaves no ghost.
    fn finish(&mut self) {
        let Some(j) = self.joined.take() else {
            return;
        };
        let inner = &self.state.inner;
        inner.presence.leave(&j.claims.room, j.id);
        if j.media.is_some() {
            let _ = inner.media.leave(RoomId(j.claims.room.clone()), j.id);
        }
        tracing::info!("left");
        self.state.emit(CallEvent::Left {
            room: j.claims.room,
            participant: j.id.to_string(),
            at: SystemTime::now(),
        });
    }
}
