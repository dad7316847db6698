//! What an admin API handler answers when it cannot do what was asked: a
//! status and a reason the client may be shown, as `{"error": why}`.
//! Handlers return `Result<_, ApiError>` and use `?`; the database's own
//! errors are logged here and never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::AdminError;

/// An API error: `status` with a reason safe to show.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    why: String,
    /// Seconds to send as `Retry-After`, for a refusal that lifts.
    retry_after: Option<u64>,
}

impl ApiError {
    /// `status`, telling the client `why`.
    pub(crate) fn new(status: StatusCode, why: impl Into<String>) -> Self {
        ApiError {
            status,
            why: why.into(),
            retry_after: None,
        }
    }

    /// Tells the client when to try again (whole seconds, at least 1).
    pub(crate) fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 400: the request itself is wrong, and `why` says how.
    pub(crate) fn bad_request(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, why)
    }

    /// 404.
    pub(crate) fn not_found(why: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, why)
    }

    /// 403: signed in, but not allowed this.
    pub(crate) fn forbidden(why: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, why)
    }

    /// 409: the state moved on (someone else answered first).
    pub(crate) fn conflict(why: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, why)
    }

    /// 503 telling the client `shown`, after logging `e` with `what` could
    /// not be read or written: the database is busy or failed, and a retry
    /// may work.
    pub(crate) fn unavailable(what: &str, e: AdminError, shown: &str) -> Self {
        tracing::error!(error = %e, "{what} unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, shown)
    }

    /// 500 telling the client `shown`, after logging `e` with `what`.
    pub(crate) fn internal(what: &str, e: impl std::fmt::Display, shown: &str) -> Self {
        tracing::error!(error = %e, "{what} failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, shown)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.why }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_is_its_status_and_a_json_reason() {
        let r = ApiError::conflict("already answered by op.one").into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert!(r.headers().get("retry-after").is_none());
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({ "error": "already answered by op.one" })
        );
        let wait = std::time::Duration::from_millis(1500);
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .retry_after(wait)
            .into_response();
        assert_eq!(r.headers()["retry-after"], "2");
    }
}
