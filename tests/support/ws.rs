//! A raw signalling socket, for tests that speak the protocol by hand.

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Server;

/// A signalling WebSocket to a test server.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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
