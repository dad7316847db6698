//! The admin plane's HTTP routes. For now `/metrics`, optionally behind a
//! bearer token so a hub can expose it to its Prometheus and nobody else.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use carecall_sfu::MediaServer;
use std::sync::Arc;

use crate::metrics::{render, Snapshot};

/// What the admin routes read from the other planes.
#[derive(Clone)]
pub struct AdminState {
    media: MediaServer,
    presence: Arc<dyn Fn() -> Vec<MemberOf> + Send + Sync>,
    metrics_token: Option<Arc<str>>,
}

type MemberOf = (
    String,
    carecall_sfu::ParticipantId,
    carecall_signalling::Role,
);

impl AdminState {
    /// Reads media statistics from `media` and who is present through
    /// `presence` (signalling's [`carecall_signalling::Presence::members`]). With `metrics_token`,
    /// `/metrics` wants `Authorization: Bearer <token>`.
    pub fn new(
        media: MediaServer,
        presence: impl Fn() -> Vec<MemberOf> + Send + Sync + 'static,
        metrics_token: Option<String>,
    ) -> Self {
        AdminState {
            media,
            presence: Arc::new(presence),
            metrics_token: metrics_token.map(Into::into),
        }
    }
}

/// The admin routes, to merge into the server's router.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required for /metrics\n",
            )
                .into_response();
        }
    }
    let snapshot = Snapshot {
        members: (state.presence)(),
        media: state.media.stats().await,
    };
    match render(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in
/// constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(bearer_matches(&h, "s3cret"));
        assert!(!bearer_matches(&h, "s3cre"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3creT"),
        );
        assert!(!bearer_matches(&h, "s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!bearer_matches(&h, "s3cret"));
    }
}
