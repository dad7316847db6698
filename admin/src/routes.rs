//! The admin plane's HTTP routes: `/metrics` (optionally behind a bearer
//! token), sign-in, and the admin pages and API. Every route in
//! [`protected_routes`] sits behind the session check by construction: the
//! router is built from that list and the check is one layer over all of it,
//! and the test suite walks the same list without a session.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{middleware, Router};

use crate::auth;
use crate::check;
use crate::dashboard;
use crate::history;
use crate::homes;
use crate::hub;
use crate::links;
use crate::metrics::render;
use crate::pages;
use crate::queue_metrics::QueueReading;
use crate::state::AdminState;

/// Who may use a protected route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Admin accounts only: the dashboard, homes, history, hooks.
    Admin,
    /// Any signed-in account: the hub console and the call queue.
    Staff,
}

/// Every route that needs a signed-in account: method, path and who may use
/// it. A route added here is protected; there is no other way to add an
/// admin route.
pub fn protected_routes() -> Vec<(Method, &'static str, Who)> {
    protected()
        .into_iter()
        .map(|(m, p, w, _)| (m, p, w))
        .collect()
}

fn protected() -> Vec<(Method, &'static str, Who, MethodRouter<AdminState>)> {
    use Who::{Admin, Staff};
    vec![
        (Method::GET, "/admin", Admin, get(pages::dashboard)),
        (
            Method::GET,
            "/admin/dashboard.js",
            Admin,
            get(pages::dashboard_script),
        ),
        (Method::GET, "/admin/reports", Admin, get(pages::reports)),
        (
            Method::GET,
            "/admin/reports.js",
            Admin,
            get(pages::reports_script),
        ),
        (Method::GET, "/admin/hub", Staff, get(pages::hub)),
        (
            Method::GET,
            "/admin/common.js",
            Staff,
            get(pages::common_script),
        ),
        (Method::GET, "/admin/hub.js", Staff, get(pages::hub_script)),
        (
            Method::GET,
            "/admin/residents.js",
            Staff,
            get(pages::residents_script),
        ),
        (Method::GET, "/admin/api/session", Staff, get(auth::whoami)),
        (
            Method::GET,
            "/admin/api/rooms",
            Admin,
            get(dashboard::rooms),
        ),
        (
            Method::POST,
            "/admin/api/rooms/{room}/end",
            Admin,
            post(dashboard::end_call),
        ),
        (
            Method::POST,
            "/admin/api/rooms/{room}/revoke-links",
            Admin,
            post(links::revoke),
        ),
        (
            Method::GET,
            "/admin/api/history",
            Admin,
            get(dashboard::history),
        ),
        (
            Method::GET,
            "/admin/api/calls/{id}",
            Admin,
            get(dashboard::call_detail),
        ),
        (
            Method::GET,
            "/admin/api/checks/{code}",
            Admin,
            get(check::lookup),
        ),
        (
            Method::GET,
            "/admin/api/calls.csv",
            Admin,
            get(history::export),
        ),
        (
            Method::GET,
            "/admin/api/hooks/dead-letters",
            Admin,
            get(crate::hooks::api::dead_letters),
        ),
        (
            Method::POST,
            "/admin/api/hooks/dead-letters/{seq}/retry",
            Admin,
            post(crate::hooks::api::retry),
        ),
        (
            Method::GET,
            "/admin/api/recordings",
            Admin,
            get(crate::recordings::list),
        ),
        (Method::GET, "/admin/api/homes", Admin, get(homes::list)),
        (Method::POST, "/admin/api/homes", Admin, post(homes::add)),
        (
            Method::GET,
            "/admin/api/homes/{id}/helpdesk",
            Admin,
            get(homes::helpdesk),
        ),
        (
            Method::POST,
            "/admin/api/homes/{id}/rename",
            Admin,
            post(homes::rename),
        ),
        (
            Method::POST,
            "/admin/api/homes/{id}/revoke",
            Admin,
            post(homes::revoke),
        ),
        (
            Method::POST,
            "/admin/api/homes/{id}/reissue",
            Admin,
            post(homes::reissue),
        ),
        (
            Method::GET,
            "/admin/api/queue",
            Staff,
            get(crate::queue::queue),
        ),
        (
            Method::POST,
            "/admin/api/queue/{id}/answer",
            Staff,
            post(hub::answer),
        ),
        (
            Method::POST,
            "/admin/api/queue/{id}/decline",
            Staff,
            post(hub::decline),
        ),
        (Method::GET, "/admin/api/hub", Staff, get(hub::snapshot)),
        (Method::GET, "/admin/api/hub/ws", Staff, get(hub::live)),
        (
            Method::POST,
            "/admin/api/hub/calls/{id}/transfer",
            Staff,
            post(hub::transfer),
        ),
        (
            Method::POST,
            "/admin/api/hub/calls/{id}/accept",
            Staff,
            post(hub::accept),
        ),
        (
            Method::POST,
            "/admin/api/hub/calls/{id}/invite",
            Staff,
            post(hub::invite),
        ),
        (
            Method::POST,
            "/admin/api/hub/calls/{id}/residents",
            Staff,
            post(crate::records::api::attach),
        ),
        (
            Method::GET,
            "/admin/api/hub/calls/{id}/residents",
            Staff,
            get(crate::records::api::list),
        ),
        (
            Method::POST,
            "/admin/api/encounters/{id}/outcome",
            Staff,
            post(crate::records::api::outcome),
        ),
        (
            Method::GET,
            "/admin/api/audit",
            Admin,
            get(crate::records::api::trail),
        ),
        (
            Method::GET,
            "/admin/api/outcomes/missing",
            Admin,
            get(crate::records::api::missing),
        ),
        (
            Method::GET,
            "/admin/api/audit.csv",
            Admin,
            get(crate::records::api::trail_csv),
        ),
        (
            Method::GET,
            "/admin/api/reports/summary",
            Admin,
            get(crate::reports::summary),
        ),
        (
            Method::GET,
            "/admin/api/reports/openapi.json",
            Admin,
            get(crate::reports::openapi),
        ),
        (
            Method::GET,
            "/admin/api/reports/calls.csv",
            Admin,
            get(crate::reports::calls_csv),
        ),
        (
            Method::GET,
            "/admin/api/reports/calls.json",
            Admin,
            get(crate::reports::calls_json),
        ),
        (
            Method::GET,
            "/admin/api/reports/encounters.csv",
            Admin,
            get(crate::reports::encounters_csv),
        ),
        (
            Method::GET,
            "/admin/api/reports/encounters.json",
            Admin,
            get(crate::reports::encounters_json),
        ),
        (
            Method::GET,
            "/admin/api/nodes",
            Admin,
            get(crate::nodes::list),
        ),
        (Method::POST, "/admin/api/links", Admin, post(links::create)),
        (Method::POST, "/admin/logout", Staff, post(auth::logout)),
    ]
}

/// `/readyz` alone: for the plain HTTP address when it otherwise only
/// redirects to HTTPS, so health checks need no certificate.
pub fn readiness_routes(state: AdminState) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The admin routes, to merge into the server's router.
pub fn routes(state: AdminState) -> Router {
    let (mut admin, mut staff) = (Router::new(), Router::new());
    for (_, path, who, handler) in protected() {
        match who {
            Who::Admin => admin = admin.route(path, handler),
            Who::Staff => staff = staff.route(path, handler),
        }
    }
    // What anonymous pages poll: limited per address.
    let polled = Router::new()
        .route("/home/api/calls", post(crate::queue::call))
        .route("/home/api/calls/{id}", get(crate::queue::call_status))
        .route("/home/api/calls/{id}/cancel", post(crate::queue::cancel))
        .route("/home/api/plans", get(crate::queue::plans))
        .route("/home/api/form", get(crate::queue::form))
        .route("/check/api/uplink", get(crate::check::uplink))
        .route("/check/api/downlink", post(crate::check::downlink))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::polls::limit,
        ));
    let guarded = admin
        .route_layer(middleware::from_fn(auth::require_admin))
        .merge(staff)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_session,
        ));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/admin/login", get(pages::login).post(auth::login))
        .route("/admin/admin.css", get(pages::style))
        .route(
            "/recordings/{id}/download",
            get(crate::recordings::download),
        )
        .route("/images/{id}/download", get(crate::images::download))
        .route("/home", get(pages::home))
        .route("/home/home.js", get(pages::home_script))
        .merge(polled)
        .route("/check", get(check::page))
        .route("/check/check.js", get(check::script))
        .route("/check/api/session", post(check::session))
        .route(
            "/check/api/offer",
            post(check::offer).layer(DefaultBodyLimit::max(check::MAX_OFFER_BYTES)),
        )
        .route("/check/api/download", get(check::download))
        .route(
            "/check/api/upload",
            post(check::upload).layer(DefaultBodyLimit::max(check::MAX_TRANSFER_BYTES)),
        )
        .route(
            "/check/api/result",
            post(check::result).layer(DefaultBodyLimit::max(check::MAX_RESULT_BYTES)),
        )
        .merge(guarded)
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
    let snapshot = state.snapshot().await;
    let stored = crate::blocking_locked(&state.call_log, |log| log.store_counts())
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "hook outbox or recordings unreadable");
            Default::default()
        });
    let (settings, hours) = (state.queue.clone(), state.hours.get());
    let queue = crate::blocking_locked(&state.call_log, move |log| {
        log.read(|c| QueueReading::read(c, crate::clock::now_ms(), &settings, &hours))
    })
    .await;
    let accounts = state.accounts.clone();
    let signed_in = crate::blocking(move || accounts.signed_in_by_role()).await;
    let queue = match (queue, signed_in) {
        (Ok(q), Ok(s)) => q.with(s, state.queue_metrics.clone(), state.consoles.clone()),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "queue unreadable for metrics");
            QueueReading::default()
        }
    };
    let rendered = render(
        &snapshot,
        &state.join_times(),
        stored,
        &queue,
        &state.image_metrics,
    );
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

/// `GET /readyz`: 200 when the hub can take calls (the database takes a
/// write, every media worker runs and has its sockets), 503 otherwise, with
/// what failed. For a container health check or a load balancer; `/healthz`
/// only says the process answers.
async fn readyz(State(state): State<AdminState>) -> Response {
    let database = match crate::blocking_locked(&state.call_log, |log| log.check_writable()).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::error!(error = %e, "readiness: database not writable");
            format!("not writable: {e}")
        }
    };
    let media = if !state.media.is_alive() {
        "a media worker has stopped".to_owned()
    } else if state.media.local_addrs().is_empty() {
        "no media socket bound".to_owned()
    } else {
        "ok".to_owned()
    };
    let ready = database == "ok" && media == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "database": database,
        "media": media,
        "turn": if state.turn_running { "running" } else { "off" },
    });
    (status, axum::Json(body)).into_response()
}

/// Whether the request carries `Authorization: Bearer <token>`.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| auth::same_secret(given, token))
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

    #[test]
    fn every_protected_route_is_listed_once() {
        let routes = protected_routes();
        let mut paths: Vec<_> = routes.iter().map(|(m, p, _)| (m.as_str(), *p)).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), routes.len());
        assert!(routes.iter().all(|(_, p, _)| p.starts_with("/admin")));
    }
}
