//! HTTPS: browsers give a page the camera and microphone only in a secure
//! context, so a hub is reached over HTTPS. TLS is rustls (ring); each
//! connection is served by hyper with the same router as plain HTTP. The
//! plain HTTP address then only redirects to HTTPS.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::certs::CertStore;

/// A self-signed development certificate, and what to tell people about it.
pub struct SelfSigned {
    /// base64 SHA-256 of its key, for Chromium's `--ignore-certificate-errors-spki-list`.
    pub spki: String,
    /// Where its PEM was written, to add to a trust store.
    pub pem: std::path::PathBuf,
}

/// One year: browsers then go straight to HTTPS for this host.
const HSTS: &str = "max-age=31536000";

/// Serves `app` over TLS on `listener` until `stop`, within `limits`. With
/// `hsts` (a real certificate), responses tell browsers to use HTTPS only.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    certs: Arc<CertStore>,
    hsts: bool,
    limits: carecall_sfu::Live<crate::listen::HttpLimits>,
    refusals: carecall_sfu::Refusals,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let config = match certs.server_config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "HTTPS not served");
            return;
        }
    };
    let acceptor = TlsAcceptor::from(config);
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
