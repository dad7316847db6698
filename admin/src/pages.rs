//! The admin pages: plain HTML with a little script, compiled into the
//! binary (no build step). The pages fetch their data from the admin API.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const LOGIN: &str = include_str!("../client/login.html");
const DASHBOARD: &str = include_str!("../client/dashboard.html");
const DASHBOARD_SCRIPT: &str = include_str!("../client/dashboard.js");
const STYLE: &str = include_str!("../client/admin.css");
const COMMON_SCRIPT: &str = include_str!("../client/common.js");
const HUB: &str = include_str!("../client/hub.html");
const HUB_SCRIPT: &str = include_str!("../client/hub.js");
const RESIDENTS_SCRIPT: &str = include_str!("../client/residents.js");
const HOME: &str = include_str!("../client/home.html");
const HOME_SCRIPT: &str = include_str!("../client/home.js");
const REPORTS: &str = include_str!("../client/reports.html");
const REPORTS_SCRIPT: &str = include_str!("../client/reports.js");

/// `GET /home?t=…`: the care home's "Call the hub" page (the token is
/// checked by the API it calls).
pub(crate) async fn home() -> Html<&'static str> {
    Html(HOME)
}

/// `GET /home/home.js`
pub(crate) async fn home_script() -> Response {
    script(HOME_SCRIPT)
}

/// `GET /admin/login`
pub(crate) async fn login() -> Html<&'static str> {
    Html(LOGIN)
}

/// `GET /admin` (signed in only)
pub(crate) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

/// `GET /admin/admin.css`
pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `GET /admin/common.js` (signed in only): the helpers every admin page
/// imports.
pub(crate) async fn common_script() -> Response {
    script(COMMON_SCRIPT)
}

/// `GET /admin/dashboard.js` (signed in only)
pub(crate) async fn dashboard_script() -> Response {
    script(DASHBOARD_SCRIPT)
}

/// `GET /admin/hub` (signed in only): the hub console.
pub(crate) async fn hub() -> Html<&'static str> {
    Html(HUB)
}

/// `GET /admin/hub.js` (signed in only)
pub(crate) async fn hub_script() -> Response {
    script(HUB_SCRIPT)
}

/// `GET /admin/residents.js` (signed in only): the console's residents panel.
pub(crate) async fn residents_script() -> Response {
    script(RESIDENTS_SCRIPT)
}

/// `GET /admin/reports` (admins only): service levels and activity.
pub(crate) async fn reports() -> Html<&'static str> {
    Html(REPORTS)
}

/// `GET /admin/reports.js` (admins only)
pub(crate) async fn reports_script() -> Response {
    script(REPORTS_SCRIPT)
}

/// A script of the binary's own, as JavaScript.
pub(crate) fn script(body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response()
}
