//! The outcome of an encounter, recorded by the clinician at its end in a
//! short form: where the resident's care goes next, whether a conveyance or
//! admission was avoided, prescribing, RESTORE2 and NEWS2, ReSPECT, and the
//! care plan the home is given. The coded answers stay readable for reports;
//! the free text (referrals, the clinical note, the care plan) is sealed.

use serde::{Deserialize, Serialize};

/// Where the resident's care goes after the consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// Managed in the home.
    ManagedInHome,
    /// The GP follows up.
    GpFollowUp,
    /// Referred to a community or urgent community response team.
    CommunityReferral,
    /// Conveyed by ambulance.
    AmbulanceConveyance,
    /// Something else (said in the note).
    Other,
}

impl Disposition {
    /// Its code, as stored and sent in events.
    pub fn code(self) -> &'static str {
        match self {
            Disposition::ManagedInHome => "managed-in-home",
            Disposition::GpFollowUp => "gp-follow-up",
            Disposition::CommunityReferral => "community-referral",
            Disposition::AmbulanceConveyance => "ambulance-conveyance",
            Disposition::Other => "other",
        }
    }
}

/// The resident's ReSPECT form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Respect {
    /// None, and none made.
    None,
    /// Already in place.
    InPlace,
    /// Made in this consultation.
    Created,
    /// Changed in this consultation.
    Updated,
}

/// One action in the care plan: what the home does, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanAction {
    /// What to do ("Check temperature").
    pub what: String,
    /// When ("every 4 hours", "by 18:00").
    #[serde(default)]
    pub when: String,
}

/// The care plan the home is given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarePlan {
    /// The plan in the clinician's words.
    #[serde(default)]
    pub text: String,
    /// Actions with times.
    #[serde(default)]
    pub actions: Vec<PlanAction>,
}

/// What the clinician records at the end of an encounter.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Where care goes next.
    pub disposition: Disposition,
    /// A conveyance or admission was avoided.
    pub conveyance_avoided: bool,
    /// Medicines were prescribed.
    pub medicines_prescribed: bool,
    /// The home used RESTORE2.
    pub restore2_used: bool,
    /// The NEWS2 score, when taken (0 to 20).
    #[serde(default)]
    pub news2: Option<u8>,
    /// The ReSPECT form.
    pub respect: Respect,
    /// A treatment plan was made.
    pub treatment_plan: bool,
    /// Onward referrals, free text.
    #[serde(default)]
    pub referrals: String,
    /// The clinical note.
    #[serde(default)]
    pub note: String,
    /// The care plan for the home.
    #[serde(default)]
    pub care_plan: CarePlan,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("disposition", &self.disposition)
            .finish_non_exhaustive()
    }
}

/// Why an outcome was refused as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    /// NEWS2 runs from 0 to 20.
    #[error("a NEWS2 score is between 0 and 20")]
    News2,
    /// A text field is longer than anyone types in a consultation.
    #[error("{0} is too long (at most {1} characters)")]
    TooLong(&'static str, usize),
    /// More actions than a plan needs.
    #[error("a care plan has at most {0} actions")]
    TooManyActions(usize),
    /// An action without words.
    #[error("each care plan action says what to do")]
    EmptyAction,
}

const MAX_TEXT: usize = 10_000;
const MAX_ACTIONS: usize = 20;
const MAX_ACTION: usize = 500;

impl Outcome {
    /// Checks the sent outcome's ranges and sizes.
    pub fn check(&self) -> Result<(), OutcomeError> {
        if self.news2.is_some_and(|n| n > 20) {
            return Err(OutcomeError::News2);
        }
        for (name, text) in [
            ("the note", &self.note),
            ("the referrals", &self.referrals),
            ("the care plan", &self.care_plan.text),
        ] {
            if text.chars().count() > MAX_TEXT {
                return Err(OutcomeError::TooLong(name, MAX_TEXT));
            }
        }
        if self.care_plan.actions.len() > MAX_ACTIONS {
            return Err(OutcomeError::TooManyActions(MAX_ACTIONS));
        }
        for a in &self.care_plan.actions {
            if a.what.trim().is_empty() {
                return Err(OutcomeError::EmptyAction);
            }
            if a.what.chars().count() > MAX_ACTION || a.when.chars().count() > MAX_ACTION {
                return Err(OutcomeError::TooLong("a care plan action", MAX_ACTION));
            }
        }
        Ok(())
    }
}

/// The sealed part of an outcome: its free text.
#[derive(Serialize, Deserialize)]
pub(crate) struct Written {
    pub(crate) referrals: String,
    pub(crate) note: String,
    pub(crate) care_plan: CarePlan,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(json: serde_json::Value) -> Result<Outcome, String> {
        let o: Outcome = serde_json::from_value(json).map_err(|e| e.to_string())?;
        o.check().map_err(|e| e.to_string())?;
        Ok(o)
    }

    #[test]
    fn the_short_form_is_read_and_checked() {
        let form = serde_json::json!({
            "disposition": "managed-in-home", "conveyance_avoided": true,
            "medicines_prescribed": true, "restore2_used": true, "news2": 3,
            "respect": "in-place", "treatment_plan": true,
            "note": "Chest clear.", "care_plan": {"text": "Fluids.", "actions": [{"what": "Check temperature", "when": "every 4 hours"}]}
        });
        let o = sent(form.clone()).unwrap();
        assert_eq!(o.disposition.code(), "managed-in-home");
        assert_eq!(o.care_plan.actions[0].when, "every 4 hours");
        assert!(!format!("{o:?}").contains("Chest"), "Debug hides the note");

        let mut bad = form.clone();
        bad["news2"] = serde_json::json!(21);
        assert_eq!(sent(bad).unwrap_err(), "a NEWS2 score is between 0 and 20");
        let mut bad = form.clone();
        bad["disposition"] = serde_json::json!("home");
        assert!(sent(bad).unwrap_err().contains("unknown variant"));
        let mut bad = form;
        bad["care_plan"]["actions"][0]["what"] = serde_json::json!(" ");
        assert_eq!(
            sent(bad).unwrap_err(),
            "each care plan action says what to do"
        );
    }
}
