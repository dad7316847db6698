//! Signing admins in and out, and the check in front of every admin route.
//!
//! The session lives in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when
//! the hub is served over HTTPS). Every request other than GET or HEAD must
//! also carry the session's CSRF token in `x-csrf-token`, which a page of
//! another site cannot read. Failed sign-ins are limited per client address
//! and per account name ([`crate::limiter`]).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;

use carecall_sfu::Surface;

use crate::accounts::{AdminSession, SESSION_TTL};
use crate::api_error::ApiError;
use crate::blocking;
use crate::state::AdminState;

/// The session cookie's name.
pub const COOKIE: &str = "carecall_admin";

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Compares two secrets without stopping at the first difference.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A refusal from the session check in front of the admin routes.
fn error(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

/// Lets a request through only with a live session (and, unless it only
/// reads, the session's CSRF token). Pages without a session redirect to the
/// sign-in page; the API answers 401.
pub(crate) async fn require_session(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match cookie_token(request.headers()) {
        Some(token) => {
            let accounts = state.accounts.clone();
            match blocking(move || accounts.session(&token)).await {
                Ok(session) => session,
                Err(e) => {
                    tracing::error!(error = %e, "admin session lookup failed");
                    return error(StatusCode::SERVICE_UNAVAILABLE, "sessions unavailable");
                }
            }
        }
        None => None,
    };
    let reads_only = matches!(*request.method(), Method::GET | Method::HEAD);
    let Some(session) = session else {
        let is_page = reads_only && !request.uri().path().starts_with("/admin/api/");
        return match is_page {
            true => Redirect::to("/admin/login").into_response(),
            false => error(StatusCode::UNAUTHORIZED, "sign in first"),
        };
    };
    if !reads_only {
        let given = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(given, &session.csrf) {
            return error(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// Behind [`require_session`]: lets only admin accounts through. Other
/// accounts asking for an admin page are sent to the hub console.
pub(crate) async fn require_admin(request: Request, next: Next) -> Response {
    let admin = request
        .extensions()
        .get::<AdminSession>()
        .is_some_and(|s| s.role.is_admin());
    if admin {
        return next.run(request).await;
    }
    let is_page = matches!(*request.method(), Method::GET | Method::HEAD)
        && !request.uri().path().starts_with("/admin/api/");
    match is_page {
        true => Redirect::to("/admin/hub").into_response(),
        false => error(StatusCode::FORBIDDEN, "this needs an admin account"),
    }
}

/// The client's address: the connection's, or the one a trusted reverse
/// proxy names ("unknown" without a connection, e.g. in tests that call the
/// router directly).
pub(crate) struct ClientIp(pub(crate) String);

impl axum::extract::FromRequestParts<AdminState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state
            .proxies
            .client_of(parts)
            .map_or_else(|| "unknown".into(), |ip| ip.to_string());
        Ok(ClientIp(ip))
    }
}

/// What the sign-in form posts.
#[derive(Deserialize)]
pub(crate) struct Credentials {
    name: String,
    password: String,
}

/// `POST /admin/login`: a session cookie for the right name and password.
pub(crate) async fn login(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    Json(creds): Json<Credentials>,
) -> Result<Response, ApiError> {
    // Counted before the (costly) check, so a burst is cut at the limit.
    if let Err(refused) = state.limiter.begin(&ip, &creds.name, Instant::now()) {
        state.refusals.refuse(Surface::SignIn, refused.reason, &ip);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again later",
        )
        .retry_after(refused.wait));
    }
    let accounts = state.accounts.clone();
    let name = creds.name.clone();
    let checked = state
        .password_checks
        .run(move || {
            if !accounts.verify(&name, &creds.password)? {
                return Ok(None);
            }
            accounts.create_session(&name).map(Some)
        })
        .await;
    let new = match checked {
        Ok(Ok(Some(new))) => new,
        Ok(Ok(None)) => {
            tracing::warn!(%ip, name = ?creds.name, "admin sign-in failed");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong name or password",
            ));
        }
        Ok(Err(e)) => {
            state.limiter.not_checked(&ip, &creds.name);
            return Err(ApiError::unavailable(
                "admin sign-in",
                e,
                "sign-in unavailable",
            ));
        }
        Err(_busy) => {
            state.limiter.not_checked(&ip, &creds.name);
            state.refusals.refuse(Surface::SignIn, "checks_busy", &ip);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "many sign-ins at once; try again in a moment",
            )
            .retry_after(std::time::Duration::from_secs(1)));
        }
    };
    state.limiter.succeeded(&ip, &creds.name);
    tracing::info!(%ip, name = %new.session.name, "admin signed in");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        new.token,
        SESSION_TTL.as_secs(),
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let body = Json(Whoami::of(&new.session));
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// `POST /admin/logout`: ends the session and clears the cookie.
pub(crate) async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        let accounts = state.accounts.clone();
        blocking(move || accounts.end_session(&token))
            .await
            .map_err(|e| ApiError::unavailable("admin sign-out", e, "sign-out failed"))?;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(header::SET_COOKIE, clear)],
        Json(json!({ "signed_out": true })),
    )
        .into_response())
}

/// Who is signed in, and the CSRF token for the page's own requests.
#[derive(Serialize)]
pub(crate) struct Whoami {
    name: String,
    role: crate::accounts::AccountRole,
    csrf: String,
}

impl Whoami {
    fn of(session: &AdminSession) -> Whoami {
        Whoami {
            name: session.name.clone(),
            role: session.role,
            csrf: session.csrf.clone(),
        }
    }
}

/// `GET /admin/api/session`: who is signed in, and the CSRF token for the
/// page's own requests.
pub(crate) async fn whoami(Extension(session): Extension<AdminSession>) -> Json<Whoami> {
    Json(Whoami::of(&session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            axum::http::HeaderValue::from_static("theme=dark; carecall_admin=abc123; x=y"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc123"));
        let mut other = HeaderMap::new();
        other.insert(
            header::COOKIE,
            axum::http::HeaderValue::from_static("carecall_admins=no"),
        );
        assert_eq!(cookie_token(&other), None);
    }
}
