//! HTTPS: browsers give a page the camera and microphone only in a secure
//! context, so a hub is reached over HTTPS. TLS is rustls (ring); each
//! connection is served by hyper with the same router as plain HTTP. The
//! plain HTTP address then only redirects to HTTPS.

mod certs;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use certs::{CertStore, SelfSigned};

/// One year: browsers then go straight to HTTPS for this host.
const HSTS: &str = "max-age=31536000";

/// Serves `app` over TLS on `listener` until `stop`, within `limits`. With
/// `hsts` (a real certificate), responses tell browsers to use HTTPS only.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    certs: Arc<CertStore>,
    hsts: bool,
    limits: crate::listen::HttpLimits,
    refusals: carecall_sfu::Refusals,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = if hsts {
        app.layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(HSTS),
                );
                r
            },
        ))
    } else {
        app
    };
    crate::listen::serve(listener, app, acceptor, limits, refusals, stop).await
}

/// The plain HTTP side when HTTPS is on: every request is sent to the same
/// path on `https_base` (308, so a POST stays a POST), except `/healthz`.
pub fn redirect(https_base: String) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move |uri: Uri| {
            let base = https_base.clone();
            async move {
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, format!("{base}{path}"))],
                )
                    .into_response()
            }
        })
}
