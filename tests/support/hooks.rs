//! A record-hook receiver for tests: it checks every delivery's signature
//! the way `docs/hooks.md` tells receivers to, and keeps what it saw.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::Value;

/// The secret shared by the hub and the receiver (`carecall hook-secret`).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQWxhZGRpbg==";

/// How old a `webhook-timestamp` a receiver accepts: replays are refused.
pub const TOLERANCE_SECS: u64 = 300;

/// Checks a delivery the way `docs/hooks.md` tells receivers to.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &str,
    now: u64,
) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|e| e.to_string())?;
    let ts: u64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    if now.abs_diff(ts) > TOLERANCE_SECS {
        return Err(format!("timestamp {ts} is {} s from now", now.abs_diff(ts)));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let expected = ring::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = b64.encode(expected.as_ref());
    // Several space-separated signatures may come (during a key rotation).
    signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
        .then_some(())
        .ok_or_else(|| "no signature matches".to_owned())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One delivery the receiver saw.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub accepted: bool,
    /// What the signature check said.
    pub verified: Result<(), String>,
}

/// A loopback port held for a receiver that is down: bound but not
/// listening, so a delivery to it is refused as by a stopped receiver, and
/// no other socket takes the port meanwhile (a port let go and bound again
/// 30 s later was once taken by an outgoing connection).
pub struct HeldPort {
    socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl HeldPort {
    pub fn on_loopback() -> HeldPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind a loopback port");
        let addr = socket.local_addr().expect("bound address");
        HeldPort { socket, addr }
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub seen: Arc<Mutex<Vec<Delivery>>>,
    /// Answer 500 to everything while set.
    pub failing: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts answering on `addr` (which must be free).
    pub async fn listen(&self, addr: SocketAddr) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("receiver port");
        self.serve(listener);
    }

    /// Starts answering on a port held while the receiver was down.
    pub fn listen_held(&self, held: HeldPort) {
        self.serve(held.socket.listen(64).expect("listen on the held port"));
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    /// The accepted events' bodies, parsed, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .map(|d| serde_json::from_str(&d.body).expect("JSON body"))
            .collect()
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|d| d.accepted).cloned().collect()
    }
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let failing = r.failing.load(Ordering::SeqCst);
    let verified = verify(SECRET, &id, &timestamp, &signature, &body, unix_now());
    let status = match (&verified, failing) {
        (Err(_), _) => StatusCode::UNAUTHORIZED,
        (Ok(()), true) => StatusCode::INTERNAL_SERVER_ERROR,
        (Ok(()), false) => StatusCode::NO_CONTENT,
    };
    r.seen.lock().unwrap().push(Delivery {
        id,
        timestamp,
        signature,
        body,
        accepted: status.is_success(),
        verified,
    });
    status
}

/// A hook receiver that keeps every event body (signatures are `hooks.rs`'s):
/// standard events at `/hooks`, the FHIR endpoint's at `/fhir`.
#[derive(Clone, Default)]
pub struct EventSink {
    pub standard: Arc<Mutex<Vec<Value>>>,
    /// Content type and body.
    pub fhir: Arc<Mutex<Vec<(String, Value)>>>,
}

impl EventSink {
    /// Listens on loopback and writes a configuration file naming both
    /// endpoints (with [`SECRET`]); the file's directory (kept while the
    /// test runs) and path.
    pub async fn start(&self) -> (tempfile::TempDir, std::path::PathBuf) {
        let receiver = self.listen().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("carecall.toml");
        let endpoints = format!(
            "[[hooks.endpoints]]\nurl = \"http://{receiver}/hooks\"\nsecret = \"{SECRET}\"\n\n\
             [[hooks.endpoints]]\nurl = \"http://{receiver}/fhir\"\nsecret = \"{SECRET}\"\nformat = \"fhir\"\n"
        );
        std::fs::write(&config, endpoints).unwrap();
        (dir, config)
    }

    async fn listen(&self) -> SocketAddr {
        let standard = self.standard.clone();
        let fhir = self.fhir.clone();
        let app = axum::Router::new()
            .route(
                "/hooks",
                axum::routing::post(move |body: String| async move {
                    if let Ok(v) = serde_json::from_str(&body) {
                        standard.lock().unwrap().push(v);
                    }
                    axum::http::StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/fhir",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap, body: String| async move {
                        let kind = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        if let Ok(v) = serde_json::from_str(&body) {
                            fhir.lock().unwrap().push((kind, v));
                        }
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    pub fn fhir_resources(&self, resource: &str) -> Vec<(String, Value)> {
        let got = self.fhir.lock().unwrap();
        got.iter()
            .filter(|(_, v)| v["resourceType"] == resource)
            .cloned()
            .collect()
    }

    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        let events = self.standard.lock().unwrap();
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
}
