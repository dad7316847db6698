//! A raw signalling socket, for tests that speak the protocol by hand.

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Server;

/// A signalling WebSocket to a test server.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Joins `server` by socket with a join link (no media: the consultation
/// opens with the first join) and waits for `joined`.
pub async fn join_by_socket(server: &Server, join_url: &str) -> Socket {
    let token = join_url.split("t=").nth(1).expect("a join link");
    join_with(server, token).await.0
}

/// Joins `room` as `role` by socket (no media), named "Test", with a link
/// made for it; returns the socket and the participant id from `joined`.
pub async fn join_as(server: &Server, room: &str, role: &str) -> (Socket, String) {
    let token = super::token_of(&server.link(room, role, "Test", "1h"));
    let (socket, joined) = join_with(server, &token).await;
    let id = joined["participant"].as_str().expect("a participant id");
    (socket, id.to_owned())
}

/// Joins with `token` and waits (up to 10 s) for `joined`; returns the
/// socket and that message.
async fn join_with(server: &Server, token: &str) -> (Socket, Value) {
    use futures_util::StreamExt;
    let first = serde_json::json!({ "type": "join", "v": 1, "token": token });
    let mut socket = open(server, first).await;
    let joined = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(m)) = socket.next().await {
            let m: Value = serde_json::from_str(m.to_text().unwrap_or("")).unwrap_or_default();
            if m["type"] == "joined" {
                return Some(m);
            }
        }
        None
    })
    .await;
    let joined = joined.ok().flatten().expect("joined the call");
    (socket, joined)
}

/// Opens a signalling socket to `server` and sends `first`.
pub async fn open(server: &Server, first: Value) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("signalling socket");
    ws.send(Message::text(first.to_string()))
        .await
        .expect("send");
    ws
}
