//! Delivery: a task that posts due outbox rows to their endpoints, signed,
//! and records each outcome. Rows of different consultations go out side
//! by side; within one consultation strictly one after another (see
//! [`super::outbox::due`]).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::outbox::{self, Pending};
use super::{HookEndpoint, HookOptions};
use crate::call_log::ms;
use crate::AdminError;

/// At most this many deliveries are in flight at once.
const BATCH: u32 = 32;

/// How long an idle deliverer sleeps before looking again (it is also woken
/// when an event is written).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What became of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Worth trying again: the endpoint is down, slow, or answered 5xx,
    /// 408 or 429.
    Retry(String),
    /// The endpoint refused the event for good (any other 4xx).
    Refused(String),
}

/// Starts delivering the outbox in the database at `path` (on the current
/// tokio runtime); `wake` is notified when an event is written.
pub fn start_delivery(
    path: &Path,
    options: HookOptions,
    wake: Arc<Notify>,
) -> Result<(), AdminError> {
    let conn = crate::db::open(path)?;
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("carecall/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AdminError::Hooks(format!("cannot build the HTTP client: {e}")))?;
    let deliverer = Deliverer {
        db: Arc::new(Mutex::new(conn)),
        client,
        options: Arc::new(options),
    };
    tokio::spawn(deliverer.run(wake));
    Ok(())
}

struct Deliverer {
    db: Arc<Mutex<Connection>>,
    client: reqwest::Client,
    options: Arc<HookOptions>,
}

impl Deliverer {
    async fn run(self, wake: Arc<Notify>) {
        loop {
            let now = ms(std::time::SystemTime::now());
            let due = self.with_db(move |c| outbox::due(c, now, BATCH)).await;
            let due = match due {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "hook outbox unreadable");
                    Vec::new()
                }
            };
            if due.is_empty() {
                let next = self.with_db(outbox::next_due_ms).await.ok().flatten();
                let wait = next
                    .map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64))
                    .unwrap_or(IDLE_POLL)
                    .min(IDLE_POLL);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let attempts = due.into_iter().map(|row| {
                let endpoint = self.options.endpoint(&row.endpoint).cloned();
                let client = self.client.clone();
                async move {
                    let outcome = match &endpoint {
                        Some(e) => post(&client, e, &row).await,
                        None => Outcome::Refused("the endpoint is no longer configured".into()),
                    };
                    (row, outcome)
                }
            });
            for (row, outcome) in futures_util::future::join_all(attempts).await {
                self.record(row, outcome).await;
            }
        }
    }

    /// Writes an attempt's outcome: the row goes, waits, or is dead-lettered.
    async fn record(&self, row: Pending, outcome: Outcome) {
        let now = ms(std::time::SystemTime::now());
        let options = self.options.clone();
        let seq = row.seq;
        let log = match &outcome {
            Outcome::Delivered => None,
            Outcome::Retry(why) | Outcome::Refused(why) => Some(why.clone()),
        };
        let given_up = match &outcome {
            Outcome::Delivered => false,
            Outcome::Refused(_) => true,
            Outcome::Retry(_) => {
                now - row.created_at_ms >= options.give_up_after.as_millis() as i64
            }
        };
        let result = self
            .with_db(move |c| match outcome {
                Outcome::Delivered => outbox::delivered(c, seq),
                Outcome::Refused(why) => outbox::dead_letter(c, seq, now, &why),
                Outcome::Retry(why) if given_up => outbox::dead_letter(
                    c,
                    seq,
                    now,
                    &format!("gave up after {} attempts: {why}", row.attempts + 1),
                ),
                Outcome::Retry(why) => {
                    let wait = backoff(row.attempts + 1, options.max_backoff);
                    outbox::retry_later(c, seq, now + wait.as_millis() as i64, &why)
                }
            })
            .await;
        // One line when an event first fails and one when it is given up;
        // the retries in between (a day's worth in a long outage) at debug.
        if let Some(why) = log {
            let attempt = row.attempts + 1;
            let (event, endpoint) = (&row.event_id, &row.endpoint);
            if given_up {
                tracing::warn!(%event, %endpoint, attempt, reason = %why, "hook given up: now a dead letter an admin can retry");
            } else if attempt == 1 {
                tracing::warn!(%event, %endpoint, reason = %why, "hook not delivered; retrying with backoff");
            } else {
                tracing::debug!(%event, %endpoint, attempt, reason = %why, "hook not delivered");
            }
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "hook outbox update failed");
        }
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .unwrap_or(Err(rusqlite::Error::InvalidQuery))
    }
}

/// One signed POST of one event.
async fn post(client: &reqwest::Client, endpoint: &HookEndpoint, row: &Pending) -> Outcome {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A FHIR endpoint gets the FHIR form where there is one; the signature
    // is over what is sent.
    let (body, content_type) = match endpoint
        .fhir
        .then(|| super::fhir::render(&row.body))
        .flatten()
    {
        Some(fhir) => (fhir, "application/fhir+json"),
        None => (row.body.clone(), "application/json"),
    };
    let signature = endpoint.secret.sign(&row.event_id, timestamp, &body);
    let reply = client
        .post(&endpoint.url)
        .header("content-type", content_type)
        .header("webhook-id", &row.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Outcome::Retry("timed out".into()),
        Err(e) => return Outcome::Retry(format!("could not reach it: {e}")),
    };
    let status = reply.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let body = reply.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    let why = format!("HTTP {}: {body}", status.as_u16());
    match status.as_u16() {
        408 | 429 => Outcome::Retry(why),
        400..=499 => Outcome::Refused(why),
        _ => Outcome::Retry(why),
    }
}

/// The wait before attempt `attempt + 1`: 1 s doubling, at most `max`,
/// with jitter (a random point in its upper half) so that many waiting
/// events do not all hit a recovering endpoint at once.
fn backoff(attempt: u32, max: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let full = Duration::from_secs(1)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let mut byte = [0u8; 1];
    let _ = ring::rand::SystemRandom::new().fill(&mut byte);
    full / 2 + full / 2 * u32::from(byte[0]) / 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit_with_jitter() {
        let max = Duration::from_secs(600);
        for attempt in 1..30 {
            let full = Duration::from_secs(1 << (attempt - 1).min(20)).min(max);
            let wait = backoff(attempt, max);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
    }
}
