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
    use futures_util::StreamExt;
    let token = join_url.split("t=").nth(1).expect("a join link");
    let first = serde_json::json!({ "type": "join", "v": 1, "token": token });
    let mut socket = open(server, first).await;
    let joined = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(m)) = socket.next().await {
            let m: Value = serde_json::from_str(m.to_text().unwrap_or("")).unwrap_or_default();
            if m["type"] == "joined" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(joined, Ok(true), "joined the call");
    socket
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
