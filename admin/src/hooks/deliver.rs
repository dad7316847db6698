//! Delivery: a task that posts due outbox rows to their endpoints, signed,
//! and records each outcome. Rows of different consultations go out side
//! by side; within one consultation strictly one after another (see
//! [`super::outbox::claim_due`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::sql::{Database, Db, SqlError, SqlResult};
use tokio::sync::Notify;

use super::outbox::{self, Pending};
use super::{HookEndpoint, LiveReceivers};
use crate::clock::ms;
use crate::AdminError;

/// At most this many deliveries are in flight at once.
const BATCH: u32 = 32;

/// Added to a claim's lease (see [`outbox::claim_due`]) beyond the posts'
/// own timeouts.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

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

/// Starts delivering the outbox in `database` (on the current
/// tokio runtime) to `receivers` (as a reload changes them); `wake` is
/// notified when an event is written.
pub fn start_delivery(
    database: &Database,
    node: &str,
    receivers: LiveReceivers,
    wake: Arc<Notify>,
) -> Result<(), AdminError> {
    let clock = Arc::new(|| ms(SystemTime::now()));
    let deliverer = Deliverer::new(database, node, receivers, clock)?;
    tokio::spawn(deliverer.run(wake));
    Ok(())
}

/// The time in ms since the epoch. Passed in, so that a test can make
/// a day go by.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Deliverer {
    db: Arc<Mutex<Db>>,
    /// Whose claims on outbox rows this deliverer's are (see
    /// [`outbox::claim_due`]): the node's, the same across its restarts.
    node: Arc<str>,
    client: reqwest::Client,
    receivers: LiveReceivers,
    clock: Clock,
}

impl Deliverer {
    fn new(
        database: &Database,
        node: &str,
        receivers: LiveReceivers,
        clock: Clock,
    ) -> Result<Self, AdminError> {
        let mut conn = database.open()?;
        // Rows this node claimed before it stopped are not being posted.
        let released = outbox::release_claims(&mut conn, node)
            .map_err(|e| AdminError::sql(&database.to_string(), e))?;
        if released > 0 {
            tracing::info!(
                released,
                "hook deliveries claimed before a restart are due again"
            );
        }
        let client = reqwest::Client::builder()
            .timeout(receivers.now().timeout)
            .user_agent(concat!("carecall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdminError::Hooks(format!("cannot build the HTTP client: {e}")))?;
        Ok(Deliverer {
            db: Arc::new(Mutex::new(conn)),
            node: node.into(),
            client,
            receivers,
            clock,
        })
    }

    async fn run(self, wake: Arc<Notify>) {
        loop {
            if self.deliver_due().await > 0 {
                continue;
            }
            let now = (self.clock)();
            let next = self.with_db(outbox::next_due_ms).await.ok().flatten();
            let wait = next
                .map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64))
                .unwrap_or(IDLE_POLL)
                .min(IDLE_POLL);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Attempts every row due now (at most [`BATCH`]) and records each
    /// outcome; how many were attempted.
    async fn deliver_due(&self) -> usize {
        let now = (self.clock)();
        let seal = self.receivers.now().seal.clone();
        // Long enough to post every claimed row (at once, each within the
        // receivers' timeout) and write the outcomes.
        let lease = 2 * self.receivers.now().timeout + LEASE_MARGIN;
        let lease_ms = lease.as_millis() as i64;
        let node = self.node.clone();
        let due = match self
            .with_db(move |c| outbox::claim_due(c, &node, seal.as_ref(), now, BATCH, lease_ms))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "hook outbox unreadable");
                Vec::new()
            }
        };
        let attempted = due.len();
        let attempts = due.into_iter().map(|row| {
            let endpoint = self.receivers.endpoint(&row.endpoint);
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
        attempted
    }

    /// Writes an attempt's outcome: the row goes, waits, or is dead-lettered.
    async fn record(&self, row: Pending, outcome: Outcome) {
        let now = (self.clock)();
        let options = self.receivers.now();
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
        f: impl FnOnce(&mut Db) -> SqlResult<T> + Send + 'static,
    ) -> SqlResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .unwrap_or(Err(SqlError::Interrupted))
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
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicI64, Ordering};

    use axum::http::{HeaderMap, StatusCode};

    use super::*;
    use crate::hooks::{HookOptions, HookSecret};

    const HOUR_MS: i64 = 3_600_000;
    /// A fixed start, so each test's clock says exactly what it means.
    const T0: i64 = 1_800_000_000_000;

    /// A receiver on loopback that answers each event (by `webhook-id`)
    /// with the statuses scripted for it in turn, then 200; it logs every
    /// attempt.
    #[derive(Clone, Default)]
    struct Receiver {
        script: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
        attempts: Arc<Mutex<Vec<(String, u16)>>>,
    }

    impl Receiver {
        fn answer(&self, event: &str, statuses: &[u16]) {
            let mut script = self.script.lock().unwrap();
            script.insert(event.into(), statuses.iter().copied().collect());
        }

        fn attempts(&self) -> Vec<(String, u16)> {
            self.attempts.lock().unwrap().clone()
        }

        /// Starts it; its URL.
        async fn start(&self) -> String {
            let me = self.clone();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap| {
                    let me = me.clone();
                    async move {
                        let id = headers["webhook-id"].to_str().unwrap_or("").to_string();
                        let status = me
                            .script
                            .lock()
                            .unwrap()
                            .get_mut(&id)
                            .and_then(VecDeque::pop_front)
                            .unwrap_or(200);
                        me.attempts.lock().unwrap().push((id, status));
                        StatusCode::from_u16(status).unwrap()
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}/hook")
        }
    }

    /// What each test runs on: a receiver on loopback, and a deliverer to
    /// it over a fresh database (in the directory held here) on a clock the
    /// test moves.
    struct Bench {
        _dir: tempfile::TempDir,
        receiver: Receiver,
        d: Deliverer,
        now: Arc<AtomicI64>,
    }

    async fn bench() -> Bench {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let now = Arc::new(AtomicI64::new(T0));
        let clock = now.clone();
        let options = HookOptions {
            endpoints: vec![HookEndpoint {
                url,
                secret: HookSecret::parse(&HookSecret::generate()).unwrap(),
                fhir: false,
            }],
            give_up_after: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(600),
            timeout: Duration::from_secs(2),
            // Bodies sealed at rest, as the server writes them.
            seal: Some(crate::records::RecordKey::derive(
                b"test recording secret, long enough",
            )),
        };
        let path = dir.path().join("carecall.db");
        let clock: Clock = Arc::new(move || clock.load(Ordering::SeqCst));
        let d = Deliverer::new(
            &Database::Sqlite(path.clone()),
            "test-node",
            LiveReceivers::new(options),
            clock,
        )
        .unwrap();
        Bench {
            _dir: dir,
            receiver,
            d,
            now,
        }
    }

    fn enqueue(d: &Deliverer, event: &str, consultation: i64, at: i64) {
        let mut conn = d.db.lock().unwrap();
        let options = d.receivers.now();
        let endpoints = options.urls();
        let seal = options.seal.as_ref();
        outbox::enqueue(
            &mut conn,
            seal,
            &endpoints,
            event,
            consultation,
            "test",
            "{}",
            at,
        )
        .unwrap();
    }

    fn dead(d: &Deliverer) -> Vec<outbox::DeadLetter> {
        outbox::dead_letters(&mut d.db.lock().unwrap()).unwrap()
    }

    fn waiting(d: &Deliverer) -> u64 {
        outbox::waiting(&mut d.db.lock().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_is_a_dead_letter_at_once() {
        let Bench { receiver, d, .. } = &bench().await;
        receiver.answer("e1", &[400]);
        enqueue(d, "e1", 7, T0);
        assert_eq!(d.deliver_due().await, 1);
        let dead = dead(d);
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!((dead[0].event_id.as_str(), dead[0].attempts), ("e1", 1));
        assert!(dead[0].reason.starts_with("HTTP 400"), "{}", dead[0].reason);
        assert_eq!(waiting(d), 0, "not retried");
        assert_eq!(d.deliver_due().await, 0);
        assert_eq!(receiver.attempts().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_event_is_retried_until_the_period_ends_then_given_up() {
        let Bench {
            receiver, d, now, ..
        } = &bench().await;
        receiver.answer("e1", &[503; 100]);
        enqueue(d, "e1", 7, T0);
        // An hour of failures: retried with backoff, never given up.
        let mut attempts = 0;
        while now.load(Ordering::SeqCst) < T0 + HOUR_MS {
            attempts += d.deliver_due().await;
            now.fetch_add(1000, Ordering::SeqCst);
        }
        assert!(
            (12..=24).contains(&attempts),
            "{attempts} attempts in an hour"
        );
        assert!(dead(d).is_empty());
        assert_eq!(waiting(d), 1);
        // A day after it was written, the next failure gives up.
        now.store(T0 + 24 * HOUR_MS, Ordering::SeqCst);
        assert_eq!(d.deliver_due().await, 1);
        let dead = dead(d);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts as usize, attempts + 1);
        assert!(
            dead[0].reason.contains("gave up after"),
            "{}",
            dead[0].reason
        );
        assert_eq!(waiting(d), 0);
    }

    #[tokio::test]
    async fn a_retried_dead_letter_goes_before_the_rest_of_its_consultation() {
        let Bench {
            receiver, d, now, ..
        } = &bench().await;
        // The first event is refused; the endpoint then fails the second
        // until the admin has put the first back.
        receiver.answer("a1", &[422]);
        receiver.answer("a2", &[503]);
        for event in ["a1", "a2", "a3"] {
            enqueue(d, event, 7, T0);
        }
        assert_eq!(
            d.deliver_due().await,
            1,
            "a1 alone: the oldest of its consultation"
        );
        assert_eq!(d.deliver_due().await, 1, "then a2");
        let dead = dead(d);
        assert_eq!(dead.len(), 1);
        assert_eq!(waiting(d), 2, "a2 waits for its retry; a3 waits behind it");
        let put_back = outbox::retry_dead_letter(&mut d.db.lock().unwrap(), dead[0].seq, T0);
        assert!(put_back.unwrap());
        now.fetch_add(HOUR_MS, Ordering::SeqCst);
        while d.deliver_due().await > 0 {}
        let delivered: Vec<String> = receiver
            .attempts()
            .into_iter()
            .filter(|(_, status)| *status == 200)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(delivered, ["a1", "a2", "a3"], "{:?}", receiver.attempts());
        assert_eq!(waiting(d), 0);
    }

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
