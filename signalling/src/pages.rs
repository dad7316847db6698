//! The pages and files the browser loads: the call page (only for a valid link),
//! a plain error page for a bad one, and the client's static files, embedded in
//! the binary at build time so there is no build step and nothing to deploy.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::token::{unix_now, TokenError};
use crate::AppState;

const CALL_PAGE: &str = include_str!("../client/index.html");
const APP_JS: &str = include_str!("../client/app.js");
const CALL_JS: &str = include_str!("../client/call.js");
const TABLET_JS: &str = include_str!("../client/tablet.js");
const PHOTO_JS: &str = include_str!("../client/photo.js");
const CONSENT_JS: &str = include_str!("../client/consent.js");
const STYLE_CSS: &str = include_str!("../client/style.css");

/// The query of a join link: `/join?t=TOKEN`.
#[derive(Deserialize)]
pub(crate) struct JoinQuery {
    t: Option<String>,
}

/// `GET /join?t=…`: the call page for a valid link, a clear error page otherwise.
pub(crate) async fn join_page(
    State(state): State<AppState>,
    Query(q): Query<JoinQuery>,
) -> Response {
    let Some(token) = q.t else {
        return error_page(&TokenError::Malformed);
    };
    match state.inner.signer.verify(&token, unix_now()) {
        Ok(_) => ([(header::CACHE_CONTROL, "no-store")], Html(CALL_PAGE)).into_response(),
        Err(e) => error_page(&e),
    }
}

fn error_page(e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        TokenError::BadSignature => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>carecall: link problem</title><link rel=\"stylesheet\" href=\"/client/style.css\"></head>\
         <body><main class=\"notice\" data-error=\"{code}\"><h1>This call link cannot be used</h1>\
         <p>{message}.</p><p>If you need help now, phone the hub.</p>\
         <p><a href=\"/check\">Check this tablet and network</a></p></main></body></html>",
        code = e.code(),
        message = capitalise(&e.to_string()),
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `GET /`: says what this server is, nothing more.
pub(crate) async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>carecall</title>\
         <link rel=\"stylesheet\" href=\"/client/style.css\"></head><body><main class=\"notice\">\
         <h1>carecall</h1><p>Open the call link the hub sent you to join a video call.</p>\
         </main></body></html>",
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /client/app.js`
pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /client/call.js`
pub(crate) async fn call_js() -> Response {
    asset("text/javascript; charset=utf-8", CALL_JS)
}

/// `GET /client/consent.js`
pub(crate) async fn consent_js() -> Response {
    asset("text/javascript; charset=utf-8", CONSENT_JS)
}

/// `GET /client/tablet.js`
pub(crate) async fn tablet_js() -> Response {
    asset("text/javascript; charset=utf-8", TABLET_JS)
}

/// `GET /client/photo.js`
pub(crate) async fn photo_js() -> Response {
    asset("text/javascript; charset=utf-8", PHOTO_JS)
}

/// `GET /client/style.css`
pub(crate) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
