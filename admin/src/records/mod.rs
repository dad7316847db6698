//! The clinical record of a consultation: who it was about (residents,
//! attached by a clinician, their identifiers sealed at rest with
//! [`RecordKey`]) and the audit trail of who looked at or changed it
//! (`docs/records.md`).

pub(crate) mod api;
mod audit;
mod completion;
mod nhs_number;
mod outcome;
mod residents;
mod seal;

pub use audit::AuditEntry;
pub use completion::{HomePlan, MissingOutcome, PLAN_SHOWN_FOR_MS};
pub use nhs_number::{NhsNumber, NhsNumberError};
pub use outcome::{CarePlan, Disposition, Outcome, OutcomeError, PlanAction, Respect};
pub use residents::{Encounter, Resident, ResidentError};
pub(crate) use seal::{unreadable, unsealable};
pub use seal::{RecordKey, SealError};
