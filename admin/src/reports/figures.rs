//! The service-level figures over a set of calls: counts, answer times
//! (median and 90th percentile), the share answered within target, and the
//! same broken down by urgency, home, service, hour of day and day of week.
//! Pure arithmetic over [`CallRow`]s, so the definitions are in one place
//! (and in `docs/reports.md`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::rows::{CallOutcome, CallRow, EncounterRow};

/// The middle and the 90th percentile of some durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    /// How many durations.
    pub count: usize,
    /// The middle value; the mean of the two middle ones for an even count.
    pub median: Option<f64>,
    /// Nearest rank: the smallest value at or above 90% of them.
    pub p90: Option<f64>,
}

impl Spread {
    /// The spread of `values` (seconds).
    pub fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        let rank = (n * 9).div_ceil(10).max(1);
        Spread {
            count: n,
            median: Some(median),
            p90: Some(values[rank - 1]),
        }
    }
}

/// The figures for one group of calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Calls that reached an open service (every call but the closed ones).
    pub offered: usize,
    /// Of them, answered by the hub.
    pub answered: usize,
    /// The home gave up waiting.
    pub abandoned: usize,
    /// An operator declined the call.
    pub declined: usize,
    /// Still waiting (or cancelled by the hub withdrawing a link).
    pub other: usize,
    /// Calls made while every service was closed.
    pub closed: usize,
    /// Offered calls that started in hours.
    pub in_hours: usize,
    /// Offered calls that started out of hours.
    pub out_of_hours: usize,
    /// Queued to answered.
    pub answer_seconds: Spread,
    /// Answered to a clinician with the home.
    pub to_clinician_seconds: Spread,
    /// Queued to a clinician with the home.
    pub total_wait_seconds: Spread,
    /// Offered calls answered within their urgency's target.
    pub within_target: usize,
    /// `within_target` over `offered`; none when nothing was offered.
    pub share_within_target: Option<f64>,
}

impl Figures {
    /// The figures of `calls`.
    pub fn of<'a>(calls: impl IntoIterator<Item = &'a CallRow>) -> Figures {
        let mut f = Figures::default();
        let (mut answer, mut to_clinician, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for c in calls {
            if c.outcome == CallOutcome::Closed {
                f.closed += 1;
                continue;
            }
            f.offered += 1;
            match c.outcome {
                CallOutcome::Answered => f.answered += 1,
                CallOutcome::Abandoned => f.abandoned += 1,
                CallOutcome::Declined => f.declined += 1,
                _ => f.other += 1,
            }
            if c.in_hours {
                f.in_hours += 1;
            } else {
                f.out_of_hours += 1;
            }
            answer.extend(c.answer_seconds);
            to_clinician.extend(c.to_clinician_seconds);
            total.extend(c.total_wait_seconds);
            f.within_target += usize::from(c.within_target);
        }
        f.answer_seconds = Spread::of(answer);
        f.to_clinician_seconds = Spread::of(to_clinician);
        f.total_wait_seconds = Spread::of(total);
        f.share_within_target = (f.offered > 0).then(|| f.within_target as f64 / f.offered as f64);
        f
    }
}

/// Figures for each value of a key, in the key's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// The key's value ("urgent", a home's name, "14", "Monday").
    pub key: String,
    /// The home's id, in the breakdown by home: two homes may share a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

fn breakdown<K: Ord + Clone>(
    calls: &[CallRow],
    keys: impl IntoIterator<Item = K>,
    key_of: impl Fn(&CallRow) -> K,
    name: impl Fn(&K) -> String,
) -> Vec<Breakdown> {
    breakdown_with_ids(calls, keys, key_of, |k| (name(k), None))
}

/// By home: grouped by id (ordered by name), each row naming its home.
fn by_home(calls: &[CallRow]) -> Vec<Breakdown> {
    breakdown_with_ids(
        calls,
        [],
        |c| (c.home_name.clone(), c.home_id.clone()),
        |(name, id)| (name.clone(), Some(id.clone())),
    )
}

fn breakdown_with_ids<K: Ord + Clone>(
    calls: &[CallRow],
    keys: impl IntoIterator<Item = K>,
    key_of: impl Fn(&CallRow) -> K,
    name: impl Fn(&K) -> (String, Option<String>),
) -> Vec<Breakdown> {
    let mut groups: BTreeMap<K, Vec<&CallRow>> =
        keys.into_iter().map(|k| (k, Vec::new())).collect();
    for c in calls {
        groups.entry(key_of(c)).or_default().push(c);
    }
    groups
        .into_iter()
        .map(|(k, calls)| {
            let (key, id) = name(&k);
            Breakdown {
                key,
                id,
                figures: Figures::of(calls),
            }
        })
        .collect()
}

/// What the clinicians recorded at the end of encounters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutcomeCounts {
    /// Residents seen.
    pub encounters: usize,
    /// Of them, with an outcome recorded.
    pub recorded: usize,
    /// A conveyance or admission avoided.
    pub conveyance_avoided: usize,
    /// Managed in the home.
    pub managed_in_home: usize,
    /// The GP follows up.
    pub gp_follow_up: usize,
    /// Referred to a community team.
    pub community_referral: usize,
    /// Conveyed by ambulance.
    pub ambulance_conveyance: usize,
    /// Medicines prescribed.
    pub medicines_prescribed: usize,
    /// RESTORE2 used.
    pub restore2_used: usize,
    /// A ReSPECT form in place, made or changed.
    pub respect_used: usize,
}

impl OutcomeCounts {
    /// The counts over `encounters`.
    pub fn of<'a>(encounters: impl IntoIterator<Item = &'a EncounterRow>) -> OutcomeCounts {
        let mut o = OutcomeCounts::default();
        for e in encounters {
            o.encounters += 1;
            let Some(d) = e.disposition.as_deref() else {
                continue;
            };
            o.recorded += 1;
            match d {
                "managed-in-home" => o.managed_in_home += 1,
                "gp-follow-up" => o.gp_follow_up += 1,
                "community-referral" => o.community_referral += 1,
                "ambulance-conveyance" => o.ambulance_conveyance += 1,
                _ => {}
            }
            o.conveyance_avoided += usize::from(e.conveyance_avoided == Some(true));
            o.medicines_prescribed += usize::from(e.medicines_prescribed == Some(true));
            o.restore2_used += usize::from(e.restore2_used == Some(true));
            o.respect_used += usize::from(e.respect.as_deref().is_some_and(|r| r != "none"));
        }
        o
    }
}

/// Everything the reports page shows for one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// All calls together.
    pub totals: Figures,
    /// By urgency: routine, then urgent.
    pub by_urgency: Vec<Breakdown>,
    /// By home, by name.
    pub by_home: Vec<Breakdown>,
    /// By service, by name; closed calls under "(closed)".
    pub by_service: Vec<Breakdown>,
    /// By what the call was about, by name; "(not given)" when not chosen.
    pub by_category: Vec<Breakdown>,
    /// By local hour of queueing, 0 to 23.
    pub by_hour: Vec<Breakdown>,
    /// By local day of the week, Monday first.
    pub by_weekday: Vec<Breakdown>,
    /// Declined calls by reason, most first.
    pub declined_reasons: Vec<(String, usize)>,
    /// The encounters' outcomes.
    pub outcomes: OutcomeCounts,
}

/// Day names, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Report {
    /// The report over `calls` and `encounters`.
    pub fn of(calls: &[CallRow], encounters: &[EncounterRow]) -> Report {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for c in calls.iter().filter(|c| c.outcome == CallOutcome::Declined) {
            *reasons
                .entry(c.declined_reason.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
        let mut declined_reasons: Vec<(String, usize)> = reasons
            .into_iter()
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        declined_reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Report {
            totals: Figures::of(calls),
            by_urgency: breakdown(
                calls,
                [false, true],
                |c| c.urgent,
                |u| if *u { "urgent" } else { "routine" }.to_owned(),
            ),
            by_home: by_home(calls),
            by_service: breakdown(
                calls,
                [],
                |c| c.service.clone().unwrap_or_else(|| "(closed)".into()),
                String::clone,
            ),
            by_category: breakdown(
                calls,
                [],
                |c| {
                    if c.reason_category.is_empty() {
                        "(not given)".to_owned()
                    } else {
                        c.reason_category.clone()
                    }
                },
                String::clone,
            ),
            by_hour: breakdown(calls, 0..24u8, |c| c.local_hour, u8::to_string),
            by_weekday: breakdown(
                calls,
                0..7u8,
                |c| c.local_weekday,
                |d| WEEKDAYS[usize::from(*d)].to_owned(),
            ),
            declined_reasons,
            outcomes: OutcomeCounts::of(encounters),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_and_p90_the_nearest_rank() {
        assert_eq!(Spread::of(vec![]), Spread::default());
        let s = Spread::of(vec![30.0, 10.0, 20.0]);
        assert_eq!((s.median, s.p90), (Some(20.0), Some(30.0)));
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.p90), (Some(2.5), Some(4.0)));
        // Ten values: the 9th is the 90th percentile.
        let s = Spread::of((1..=10).map(f64::from).collect());
        assert_eq!((s.median, s.p90), (Some(5.5), Some(9.0)));
        let s = Spread::of((1..=11).map(f64::from).collect());
        assert_eq!((s.median, s.p90), (Some(6.0), Some(10.0)));
    }
}
