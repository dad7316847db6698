//! A per-address request limit for the anonymous APIs a page polls: the
//! home's call status, form, plans and calls (its permanent link) and the
//! check's upload count. Each request takes the database or the media
//! workers for a moment, so one address sending thousands a second must not
//! slow the home whose call is being answered.

use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::ClientIp;
use crate::state::AdminState;

/// Requests a minute from one address: ten homes behind one care group's
/// address, each polling its call every 2 s, use a quarter of it.
pub const POLLS_PER_MINUTE: u32 = 1200;

/// The limiter behind [`limit`].
pub(crate) struct PollLimit {
    per_address: DefaultKeyedRateLimiter<String>,
}

impl PollLimit {
    pub(crate) fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        PollLimit {
            per_address: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// Counts one request from `client`; false when over the limit.
    fn allow(&self, client: &str) -> bool {
        // Quiet addresses are forgotten, so many addresses cannot grow the
        // limiter's memory for good.
        if self.per_address.len() > 10_000 {
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&client.to_owned()).is_ok()
    }
}

/// Middleware: refuses a request over its address's limit with 429 (counted
/// as `requests_per_address` under the home-call or check surface).
pub(crate) async fn limit(
    State(state): State<AdminState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    if state.polls.allow(&ip) {
        return next.run(request).await;
    }
    let surface = if request.uri().path().starts_with("/check/") {
        carecall_sfu::Surface::Check
    } else {
        carecall_sfu::Surface::HomeCall
    };
    state.refusals.refuse(surface, "requests_per_address", &ip);
    crate::api_error::ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests from this network just now: try again in a minute",
    )
    .retry_after(std::time::Duration::from_secs(60))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_allowance() {
        let polls = PollLimit::new(3);
        for _ in 0..3 {
            assert!(polls.allow("192.0.2.1"));
        }
        assert!(!polls.allow("192.0.2.1"), "the fourth in a minute");
        assert!(polls.allow("192.0.2.2"), "another address is not held up");
    }
}
