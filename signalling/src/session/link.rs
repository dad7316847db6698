//! One WebSocket carrying a session. A session outlives its sockets: when a
//! tablet's Wi-Fi drops, the browser resumes on a new socket and the session
//! moves to it. The reading half is polled by the session; a writer task owns
//! the sending half so presence broadcasts never wait on the session loop.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::{
    channel, unbounded_channel, Receiver, Sender, UnboundedReceiver, UnboundedSender,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Duration, Instant};

use crate::protocol::ServerMessage;

/// How long a closing socket waits for the browser's own close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A connected browser socket.
pub(crate) struct Link {
    stream: SplitStream<WebSocket>,
    out: Sender<ServerMessage>,
    ping: UnboundedSender<()>,
    close: oneshot::Sender<(u16, String)>,
    writer: JoinHandle<()>,
    /// When the browser last sent anything (a message or a pong).
    pub last_heard: Instant,
}

impl Link {
    /// Starts the writer for `socket`, with room for `queue` messages the
    /// browser has not yet taken.
    pub fn open(socket: WebSocket, queue: usize) -> Link {
        let (sink, stream) = socket.split();
        let (out, messages) = channel(queue.max(1));
        let (ping, pings) = unbounded_channel();
        let (close, close_rx) = oneshot::channel();
        let writer = tokio::spawn(write_loop(sink, messages, pings, close_rx));
        Link {
            stream,
            out,
            ping,
            close,
            writer,
            last_heard: Instant::now(),
        }
    }

    /// Queues a message for the browser; `false` when the queue is full
    /// (the browser is not reading) or the writer has stopped.
    pub fn send(&self, msg: ServerMessage) -> bool {
        self.out.try_send(msg).is_ok()
    }

    /// Has the writer ping the browser.
    pub fn ping(&self) {
        let _ = self.ping.send(());
    }

    /// The next frame from the browser; `None` when the socket is gone.
    pub async fn next(&mut self) -> Option<Result<Message, axum::Error>> {
        let frame = self.stream.next().await;
        if matches!(frame, Some(Ok(_))) {
            self.last_heard = Instant::now();
        }
        frame
    }

    /// Sends what is queued, then a close frame with `reason` if given, and
    /// waits (briefly) for the browser's close frame.
    ///
    /// Reading on until then is what lets the browser see the end: a TCP
    /// connection closed with the browser's last messages unread is reset,
    /// and a reset can throw away `call-ended` and the close frame still on
    /// their way, so the browser would take the end for a dropped link.
    pub async fn finish(mut self, reason: Option<(u16, String)>) {
        if let Some(reason) = reason {
            let _ = self.close.send(reason);
        }
        drop(self.out);
        let _ = self.writer.await;
        let closed = async {
            while let Some(Ok(frame)) = self.stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = timeout(CLOSE_WAIT, closed).await;
    }

    /// Drops a socket that is gone or replaced, without waiting on it: a
    /// half-open TCP connection could hold a writer for minutes.
    pub fn abandon(self) {
        self.writer.abort();
    }
}

/// Sends queued messages and pings until every message sender is dropped,
/// then the close frame, with the reason the session gave, if any.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut messages: Receiver<ServerMessage>,
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
                    let text = serde_json::to_string(&m).unwrap_or_default();
                    if sink.send(Message::Text(text.into())).await.is_err() {
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
