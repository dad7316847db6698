//! Record hooks: events about consultations, POSTed as signed JSON to the
//! hub's integration engine, which turns them into patient-record entries.
//! carecall never writes to the record itself.
//!
//! Durable by construction: an event is written to the SQLite outbox in the
//! same transaction as the call-log change that caused it ([`outbox`]); a
//! delivery task posts it, signed the Standard Webhooks way ([`sign`]), and
//! retries with backoff until the endpoint takes it or the retry period
//! ends, when it becomes a dead letter an admin can retry. Receivers
//! de-duplicate on `webhook-id`: a crash between a delivery and its record
//! means that event is sent again. Events and their JSON: `docs/hooks.md`.

pub(crate) mod api;
mod deliver;
mod events;
mod fhir;
mod outbox;
mod receivers;
mod sign;

use std::time::Duration;

pub use deliver::start_delivery;
pub use events::HookTargets;
pub(crate) use events::{rfc3339, sessions_by_role};
pub use fhir::bundle_problems;
pub use outbox::DeadLetter;
pub(crate) use outbox::{dead_letters, retry_dead_letter, waiting};
pub use receivers::{HookUrls, LiveReceivers};
pub use sign::{HookSecret, SecretError};

/// One receiver of events.
#[derive(Debug, Clone)]
pub struct HookEndpoint {
    /// Where events are POSTed.
    pub url: String,
    /// Signs them for this receiver.
    pub secret: HookSecret,
    /// Send `consultation.ended` and `recording.ready` as FHIR R4 resources
    /// (`application/fhir+json`; see `docs/hooks.md`).
    pub fhir: bool,
}

/// The receivers and how hard to try them.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// Receivers; each gets every event.
    pub endpoints: Vec<HookEndpoint>,
    /// How long an event is retried before it becomes a dead letter.
    pub give_up_after: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Opens event bodies sealed at rest (see [`HookTargets::seal`]).
    pub seal: Option<crate::records::RecordKey>,
}

impl HookOptions {
    fn endpoint(&self, url: &str) -> Option<&HookEndpoint> {
        self.endpoints.iter().find(|e| e.url == url)
    }

    /// The endpoints' URLs, for writing events.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
    }
}
