//! The admin plane's state: what its routes read from the other planes
//! (media, signalling), its own stores and limits, and the options and
//! queue settings it is started with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carecall_sfu::MediaServer;
use carecall_signalling::LinkSigner;

use crate::accounts::Accounts;
use crate::call_log::CallLog;
use crate::join_times::JoinTimes;
use crate::limiter::LoginLimiter;
use crate::metrics::Snapshot;

/// How often each participant's link is sampled for the call history.
pub const QUALITY_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the admin routes read from the other planes, and the admin plane's
/// own state.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) media: MediaServer,
    pub(crate) calls: carecall_signalling::AppState,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) limiter: Arc<LoginLimiter>,
    pub(crate) password_checks: Arc<crate::password_checks::PasswordChecks>,
    pub(crate) refusals: carecall_sfu::Refusals,
    pub(crate) turn_failures: carecall_sfu::turn::TurnFailures,
    pub(crate) certificates: Arc<[Arc<dyn crate::metrics::ServedCertificate>]>,
    pub(crate) proxies: carecall_signalling::TrustedProxies,
    pub(crate) metrics_token: Option<Arc<str>>,
    pub(crate) secure_cookies: bool,
    pub(crate) join_times: Arc<Mutex<JoinTimes>>,
    /// Answer times, observed as calls are answered.
    pub(crate) queue_metrics: crate::queue_metrics::QueueMetrics,
    /// Hub consoles open now, by role.
    pub(crate) consoles: crate::queue_metrics::OpenConsoles,
    pub(crate) call_log: Arc<Mutex<CallLog>>,
    pub(crate) zone: jiff::tz::TimeZone,
    pub(crate) hours: crate::service_hours::LiveHours,
    pub(crate) signer: LinkSigner,
    pub(crate) base_url: Arc<str>,
    pub(crate) checks: crate::check::SharedChecks,
    pub(crate) check_sessions: Arc<crate::check::CheckSessions>,
    pub(crate) check_guard: Arc<crate::check::CheckGuard>,
    pub(crate) polls: Arc<crate::polls::PollLimit>,
    pub(crate) recordings: Option<crate::RecordingAccess>,
    pub(crate) images: Option<crate::RecordingAccess>,
    pub(crate) image_metrics: crate::ImageMetrics,
    pub(crate) turn_running: bool,
    pub(crate) home_links: crate::home_links::HomeLinks,
    pub(crate) queue: Arc<crate::QueueSettings>,
    /// Seals the clinical record's identifiers at rest.
    pub(crate) record_key: crate::records::RecordKey,
    /// Bumped on every change to the queue: each open console re-reads it.
    pub(crate) hub_changes: Arc<tokio::sync::watch::Sender<u64>>,
}

/// How the admin plane is set up.
pub struct AdminOptions {
    /// `/metrics` wants `Authorization: Bearer <token>` when set.
    pub metrics_token: Option<String>,
    /// Mark the session cookie `Secure`: the hub is served over HTTPS.
    pub secure_cookies: bool,
    /// The hub's service hours and time zone: local times everywhere, and
    /// what is in hours, out of hours or closed.
    pub hours: crate::service_hours::LiveHours,
    /// Signs the join links made on the dashboard.
    pub signer: LinkSigner,
    /// The base URL of join links.
    pub base_url: String,
    /// Finished recordings' downloads; `None` when recording is off.
    pub recordings: Option<crate::RecordingAccess>,
    /// Clinical images' links and key (kept as recordings are); `None`:
    /// images are off.
    pub images: Option<crate::RecordingAccess>,
    /// Images counted as they are filed.
    pub image_metrics: crate::ImageMetrics,
    /// The embedded TURN server was started (for `/readyz`).
    pub turn_running: bool,
    /// Signs and reads care homes' permanent links.
    pub home_links: crate::home_links::HomeLinks,
    /// How the call queue behaves.
    pub queue: crate::QueueSettings,
    /// How sign-in tries are limited (a reload may change it).
    pub sign_in: carecall_sfu::Live<crate::SignInLimits>,
    /// Reverse proxies that name the client in `X-Forwarded-For`.
    pub proxies: carecall_signalling::TrustedProxies,
    /// How much of the check page one address may use (a reload may
    /// change it).
    pub check_limits: carecall_sfu::Live<crate::check::CheckLimits>,
    /// Where refusals at the public surfaces are counted (shown in `/metrics`).
    pub refusals: carecall_sfu::Refusals,
    /// Where the embedded TURN server counts failed requests.
    pub turn_failures: carecall_sfu::turn::TurnFailures,
    /// The TLS certificates the hub serves, for their expiry gauge.
    pub certificates: Vec<Arc<dyn crate::metrics::ServedCertificate>>,
    /// Seals the clinical record's identifiers at rest.
    pub record_key: crate::records::RecordKey,
}

impl AdminState {
    /// Reads media statistics from `media` and who is present from
    /// signalling's `calls` (which also ends calls); signs admins in against
    /// `accounts`; reads and writes the call log through `call_log` (its
    /// own connection to the database).
    pub fn new(
        media: MediaServer,
        calls: carecall_signalling::AppState,
        accounts: Arc<Accounts>,
        call_log: CallLog,
        checks: crate::check::Checks,
        options: AdminOptions,
    ) -> Self {
        AdminState {
            media,
            calls,
            accounts,
            password_checks: Arc::new(crate::password_checks::PasswordChecks::new(
                options.sign_in.get().concurrent_checks,
            )),
            limiter: Arc::new(LoginLimiter::new(options.sign_in)),
            refusals: options.refusals,
            turn_failures: options.turn_failures,
            certificates: options.certificates.into(),
            proxies: options.proxies,
            metrics_token: options.metrics_token.map(Into::into),
            secure_cookies: options.secure_cookies,
            join_times: Arc::default(),
            queue_metrics: Default::default(),
            consoles: Default::default(),
            call_log: Arc::new(Mutex::new(call_log)),
            zone: options.hours.get().zone().clone(),
            hours: options.hours,
            signer: options.signer,
            base_url: options.base_url.into(),
            checks: Arc::new(Mutex::new(checks)),
            check_sessions: Arc::default(),
            check_guard: Arc::new(crate::check::CheckGuard::new(options.check_limits)),
            polls: Arc::new(crate::polls::PollLimit::new(crate::polls::POLLS_PER_MINUTE)),
            recordings: options.recordings,
            images: options.images,
            image_metrics: options.image_metrics,
            turn_running: options.turn_running,
            home_links: options.home_links,
            queue: Arc::new(options.queue),
            hub_changes: Arc::new(tokio::sync::watch::channel(0).0),
            record_key: options.record_key,
        }
    }

    /// Tells every open console the queue changed.
    pub(crate) fn hub_changed(&self) {
        self.hub_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Everyone present and their media statistics, now (media sessions of
    /// no one present, such as connectivity checks, are left out). New join
    /// times are counted on the way.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let members = self.calls.presence().members();
        let mut media = self.media.stats().await;
        media.retain(|s| {
            members
                .iter()
                .any(|(room, id, _)| *id == s.participant && *room == s.room.0)
        });
        let snapshot = Snapshot {
            members,
            media,
            refusals: self.refusals.counts(),
            turn_failures: self.turn_failures.counts(),
            relay: self.media.relay_counts(),
            certificates: self
                .certificates
                .iter()
                .filter_map(|c| {
                    let at = c.expires()?.duration_since(std::time::UNIX_EPOCH).ok()?;
                    Some((c.listener(), at.as_secs()))
                })
                .collect(),
            never_connected: self.calls.never_connected(),
            runtime_tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        };
        self.join_times().observe(&snapshot.media);
        snapshot
    }

    /// Samples every participant's link into the call history every
    /// [`QUALITY_SAMPLE_EVERY`], for as long as the server runs. Spawn it
    /// once.
    pub async fn record_quality(self) {
        let mut tick = tokio::time::interval(QUALITY_SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let samples = crate::call_log::samples(&self.snapshot().await);
            if samples.is_empty() {
                continue;
            }
            let at = std::time::SystemTime::now();
            let stored =
                crate::blocking_locked(&self.call_log, move |log| log.record_quality(at, &samples));
            if let Err(e) = stored.await {
                tracing::error!(error = %e, "quality samples not stored");
            }
        }
    }

    pub(crate) fn join_times(&self) -> std::sync::MutexGuard<'_, JoinTimes> {
        self.join_times.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the hub's queue behaves (from the `[queue]` configuration).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// After this long unanswered, the home is shown the hub's phone number.
    pub no_answer_after: Duration,
    /// The hub's phone number, for homes nobody has answered.
    pub hub_phone: Option<String>,
    /// The queues a call can be passed to besides a named clinician.
    pub named_queues: Vec<String>,
    /// A consultation with a clinician in it shows as "outcome missing" on
    /// the dashboard this long after it ended without one.
    pub outcome_due: Duration,
    /// The reasons an operator may give for declining a call.
    pub decline_reasons: Vec<String>,
    /// What a home may say its call is about (reports count by these).
    pub reason_categories: Vec<String>,
    /// An urgent call should be answered within this.
    pub urgent_target: Duration,
    /// A routine call should be answered within this.
    pub routine_target: Duration,
}

impl QueueSettings {
    /// The answer-time target for a call.
    pub fn target(&self, urgent: bool) -> Duration {
        if urgent {
            self.urgent_target
        } else {
            self.routine_target
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            no_answer_after: Duration::from_secs(300),
            hub_phone: None,
            named_queues: vec!["GP".into(), "frailty".into(), "mental health".into()],
            outcome_due: Duration::from_secs(4 * 3600),
            decline_reasons: vec![
                "Needs 999 or A&E".into(),
                "Not for this service".into(),
                "Already being dealt with".into(),
                "Called by mistake".into(),
            ],
            reason_categories: [
                "Fall",
                "Breathing",
                "Chest pain",
                "Confusion or drowsiness",
                "Infection or fever",
                "Skin or wound",
                "Medicines",
                "End of life care",
                "Other",
            ]
            .map(String::from)
            .to_vec(),
            urgent_target: Duration::from_secs(120),
            routine_target: Duration::from_secs(600),
        }
    }
}
