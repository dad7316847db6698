//! Serving HTTP connections, plain or TLS, with the limits a public server
//! needs: a client must send its request headers (and finish its TLS
//! handshake) within a few seconds, one address may hold only so many
//! connections open, and the whole server only so many. Without these, 500
//! half-sent requests held 500 connections open for good.
//!
//! Connections from a trusted reverse proxy are not held to the per-address
//! limit: every client behind it shares its address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use carecall_sfu::{Live, Refusals, Surface};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How long connections get to finish once the server is stopping.
const GRACE: Duration = Duration::from_secs(5);

/// The limits on HTTP and HTTPS connections.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Seconds to send a request's headers (and to finish a TLS handshake).
    pub header_read: Duration,
    /// Connections one address may hold open.
    pub per_address: usize,
    /// Connections the server holds open at most.
    pub total: usize,
    /// Proxies exempt from `per_address`.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Open connections per address.
#[derive(Clone)]
struct Open {
    by_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limits: Live<HttpLimits>,
}

/// One counted connection; uncounted when dropped.
struct Held {
    open: Open,
    ip: IpAddr,
}

impl Open {
    fn admit(&self, ip: IpAddr, refusals: &Refusals) -> Option<Held> {
        let mut by = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = by.values().sum();
        let mine = by.get(&ip).copied().unwrap_or(0);
        let limits = self.limits.get();
        let reason = if total >= limits.total {
            Some("connections_total")
        } else if mine >= limits.per_address && !limits.trusted_proxies.contains(&ip) {
            Some("connections_per_address")
        } else {
            None
        };
        if let Some(reason) = reason {
            refusals.refuse(Surface::Http, reason, &ip);
            return None;
        }
        *by.entry(ip).or_default() += 1;
        Some(Held {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut by = self
            .open
            .by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = by.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.ip);
            }
        }
    }
}

/// Turns a TCP connection into the stream HTTP is read from (TLS, or the
/// connection itself).
pub trait Accept: Clone + Send + 'static {
    /// The stream served.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The handshake; `None` when it failed.
    fn accept(
        &self,
        tcp: TcpStream,
    ) -> impl std::future::Future<Output = Option<Self::Stream>> + Send;
}

/// Plain HTTP: the connection as it is.
#[derive(Clone)]
pub struct Plain;

impl Accept for Plain {
    type Stream = TcpStream;
    async fn accept(&self, tcp: TcpStream) -> Option<TcpStream> {
        Some(tcp)
    }
}

impl Accept for tokio_rustls::TlsAcceptor {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;
    async fn accept(&self, tcp: TcpStream) -> Option<Self::Stream> {
        match tokio_rustls::TlsAcceptor::accept(self, tcp).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open
/// connections finish for a few seconds. Each request carries its peer as
/// `ConnectInfo<SocketAddr>`. A reload that replaces `limits` applies to
/// connections accepted after it.
pub async fn serve<A: Accept>(
    listener: TcpListener,
    app: Router,
    accept: A,
    limits: Live<HttpLimits>,
    refusals: Refusals,
    mut stop: watch::Receiver<bool>,
) {
    let open = Open {
        by_address: Arc::default(),
        limits,
    };
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        while tasks.try_join_next().is_some() {}
        let Some(held) = open.admit(peer.ip(), &refusals) else {
            continue;
        };
        let header_read = open.limits.get().header_read;
        let (app, accept, refusals, stop) =
            (app.clone(), accept.clone(), refusals.clone(), stop.clone());
        tasks.spawn(async move {
            let _held = held;
            let stream = match tokio::time::timeout(header_read, accept.accept(tcp)).await {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(_) => {
                    refusals.refuse(Surface::Http, "handshake_timeout", &peer.ip());
                    return;
                }
            };
            serve_connection(stream, peer, app, header_read, stop).await;
        });
    }
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
}

/// Returns once the server is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    header_read: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        served = conn.as_mut() => Some(served),
        _ = stopped(&mut stop) => None,
    };
    let served = match finished {
        Some(served) => served,
        None => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(GRACE, conn.as_mut()).await {
                Ok(served) => served,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}
