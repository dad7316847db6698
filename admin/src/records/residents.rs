//! Residents attached to a consultation, one encounter each. The clinician
//! identifies them (the home's page asks only for initials); the identifiers
//! are sealed before they reach the database and opened only for hub staff,
//! each time noted in the audit trail.

use crate::sql::{values, Db, SqlResult};
use serde::{Deserialize, Serialize};

use super::audit::{self, Actor};
use super::nhs_number::{NhsNumber, NhsNumberError};
use super::seal::{unreadable, unsealable, RecordKey};

/// Who an encounter is about. Its `Debug` hides everything.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// Ten digits, check digit valid.
    pub nhs_number: String,
    /// Name as the clinician typed it.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resident(..)")
    }
}

/// Why a resident could not be attached as typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentError {
    /// The NHS number is not valid.
    #[error("{0}")]
    NhsNumber(#[from] NhsNumberError),
    /// No name given, or an unreasonably long one.
    #[error("give the resident's name (up to 200 characters)")]
    Name,
    /// Not a date, or not a possible date of birth.
    #[error("give the date of birth as a date in the past (for example 1938-04-21)")]
    BirthDate,
}

impl Resident {
    /// A resident as typed: the NHS number checked and normalised to ten
    /// digits, the name trimmed, the date of birth a real past date.
    pub fn new(
        nhs_number: &str,
        name: &str,
        birth_date: &str,
        today: jiff::civil::Date,
    ) -> Result<Resident, ResidentError> {
        let nhs = NhsNumber::parse(nhs_number)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ResidentError::Name);
        }
        let born: jiff::civil::Date = birth_date
            .trim()
            .parse()
            .map_err(|_| ResidentError::BirthDate)?;
        if born > today || born.year() < 1880 {
            return Err(ResidentError::BirthDate);
        }
        Ok(Resident {
            nhs_number: nhs.as_str().to_owned(),
            name: name.to_owned(),
            birth_date: born.to_string(),
        })
    }
}

/// One resident seen in one consultation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Encounter {
    /// The encounter's number.
    pub id: i64,
    /// The consultation (call) it is part of.
    pub consultation: i64,
    /// The hub call (through the queue) it came from, if any.
    pub hub_call: Option<i64>,
    /// Who it is about.
    pub resident: Resident,
    /// The account that attached the resident.
    pub created_by: String,
    /// When, ms since the Unix epoch.
    pub created_at_ms: i64,
}

const SEALED_AS: &str = "resident";

/// Error of a resident field that does not open.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unopened {
    #[error(transparent)]
    Seal(#[from] super::seal::SealError),
    #[error("resident record unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

/// A sealed resident, opened.
pub(super) fn open_resident(key: &RecordKey, sealed: &[u8]) -> Result<Resident, Unopened> {
    Ok(serde_json::from_slice(&key.open(SEALED_AS, sealed)?)?)
}

/// Attaches `resident` to the consultation open in `room` (from hub call
/// `hub_call`), noted in the audit trail; the encounter's number, or `None`
/// when no consultation is open there (nobody is in the call).
pub(crate) fn attach(
    c: &mut Db,
    key: &RecordKey,
    room: &str,
    hub_call: Option<i64>,
    resident: &Resident,
    who: &Actor,
    now_ms: i64,
) -> SqlResult<Option<i64>> {
    let Some(call) = crate::call_log::open_call(c, room)? else {
        return Ok(None);
    };
    let plain = serde_json::to_vec(resident).unwrap_or_default();
    let sealed = key.seal(SEALED_AS, &plain).map_err(unsealable)?;
    let id: i64 = c.query_row(
        "INSERT INTO encounters (call_id, hub_call, room, resident, created_by, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        values![call, hub_call, room, sealed, who.account, now_ms],
        |r| r.get(0),
    )?;
    let subject = format!("consultation {call}, encounter {id}");
    audit::note(c, who, "resident.attached", &subject, now_ms)?;
    Ok(Some(id))
}

/// The encounters of hub call `hub_call`, identifiers opened; the look is
/// noted in the audit trail.
pub(crate) fn of_hub_call(
    c: &mut Db,
    key: &RecordKey,
    hub_call: i64,
    who: &Actor,
    now_ms: i64,
) -> SqlResult<Vec<Encounter>> {
    let rows = c.query_map(
        "SELECT id, call_id, hub_call, resident, created_by, created_at_ms FROM encounters
         WHERE hub_call = ?1 ORDER BY id",
        values![hub_call],
        |r| {
            let sealed: Vec<u8> = r.get(3)?;
            let resident = open_resident(key, &sealed).map_err(|e| unreadable(3, e))?;
            Ok(Encounter {
                id: r.get(0)?,
                consultation: r.get(1)?,
                hub_call: r.get(2)?,
                resident,
                created_by: r.get(4)?,
                created_at_ms: r.get(5)?,
            })
        },
    )?;
    let found: Vec<Encounter> = rows;
    if !found.is_empty() {
        let ids: Vec<String> = found.iter().map(|e| e.id.to_string()).collect();
        let subject = format!("hub call {hub_call}, encounters {}", ids.join(", "));
        audit::note(c, who, "residents.viewed", &subject, now_ms)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resident_is_checked_as_typed() {
        let today = jiff::civil::date(2026, 12, 4);
        let r = Resident::new("943 476 5919", "  Mabel Brown ", "1938-04-21", today).unwrap();
        assert_eq!(
            (
                r.nhs_number.as_str(),
                r.name.as_str(),
                r.birth_date.as_str()
            ),
            ("9434765919", "Mabel Brown", "1938-04-21")
        );
        assert_eq!(
            Resident::new("9434765918", "Mabel Brown", "1938-04-21", today),
            Err(ResidentError::NhsNumber(NhsNumberError::CheckDigit))
        );
        assert_eq!(
            Resident::new("9434765919", " ", "1938-04-21", today),
            Err(ResidentError::Name)
        );
        for born in ["21/04/1938", "2027-01-01", "1938-02-30", ""] {
            assert_eq!(
                Resident::new("9434765919", "Mabel Brown", born, today),
                Err(ResidentError::BirthDate),
                "{born}"
            );
        }
        assert!(!format!("{r:?}").contains("Mabel"));
    }
}
