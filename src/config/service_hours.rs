//! `[service_hours]`: when the hub's services take calls, which hours are
//! "in hours", the bank holidays, and what a home is told when every
//! service is closed (see `docs/reports.md`).

use anyhow::Context;
use carecall_admin::service_hours::{check_opening, BankHolidays, ClosedNotice, ServiceHours};
use serde::Deserialize;

/// `[service_hours]` in the TOML file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceHoursSection {
    /// The services and their openings; a call goes to the first one open.
    pub services: Vec<ServiceSection>,
    /// The in-hours window (the NHS core hours by default).
    pub in_hours: Vec<String>,
    /// `england-and-wales` (by rule) or `none`.
    pub bank_holidays: String,
    /// Days added to the bank holidays (`2027-06-07`).
    pub extra_bank_holidays: Vec<String>,
    /// Days taken out of them.
    pub not_bank_holidays: Vec<String>,
    /// What a home calling while every service is closed reads.
    pub closed_message: String,
    /// The number it is given to call instead.
    pub closed_phone: String,
}

/// `[[service_hours.services]]`: one service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// Its name in reports.
    pub name: String,
    /// Its openings, `Mon-Fri 08:00-18:30` and the like.
    pub open: Vec<String>,
}

impl Default for ServiceHoursSection {
    fn default() -> Self {
        ServiceHoursSection {
            services: vec![ServiceSection {
                name: "Clinical hub".into(),
                open: vec!["Daily 00:00-24:00".into()],
            }],
            in_hours: vec!["Mon-Fri 08:00-18:30".into()],
            bank_holidays: "england-and-wales".into(),
            extra_bank_holidays: Vec::new(),
            not_bank_holidays: Vec::new(),
            closed_message: ClosedNotice::default().message,
            closed_phone: ClosedNotice::default().phone,
        }
    }
}

impl ServiceHoursSection {
    /// The hours the hub runs by, in `zone`.
    pub fn hours(&self, zone: jiff::tz::TimeZone) -> anyhow::Result<ServiceHours> {
        let england_and_wales = match self.bank_holidays.as_str() {
            "england-and-wales" => true,
            "none" => false,
            other => anyhow::bail!(
                "service_hours.bank_holidays: {other:?} is neither \"england-and-wales\" nor \"none\""
            ),
        };
        let dates = |key: &str, list: &[String]| {
            list.iter()
                .map(|d| {
                    d.parse::<jiff::civil::Date>().with_context(|| {
                        format!("service_hours.{key}: {d:?} is not a date like 2027-06-07")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let holidays = BankHolidays {
            england_and_wales,
            extra: dates("extra_bank_holidays", &self.extra_bank_holidays)?,
            removed: dates("not_bank_holidays", &self.not_bank_holidays)?,
        };
        // No service would leave the hub closed for good: every home told
        // to phone 111, always. Say so rather than start like that.
        if self.services.is_empty() {
            anyhow::bail!(
                "service_hours.services is empty: no home could ever call the hub; \
                 list at least one service (leave service_hours out for one open all day)"
            );
        }
        let services: Vec<(String, Vec<String>)> = self
            .services
            .iter()
            .map(|s| (s.name.clone(), s.open.clone()))
            .collect();
        let mut hours = ServiceHours::new(zone, &services, &self.in_hours, holidays)
            .context("service_hours")?;
        hours.closed = ClosedNotice {
            message: self.closed_message.clone(),
            phone: self.closed_phone.clone(),
        };
        Ok(hours)
    }

    /// What is wrong, for `config check`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push((
                "service_hours.services".into(),
                "name at least one service (\"Daily 00:00-24:00\" for around the clock)".into(),
            ));
        }
        let openings = self
            .services
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.open
                    .iter()
                    .map(move |o| (format!("service_hours.services[{i}]"), o))
            })
            .chain(
                self.in_hours
                    .iter()
                    .map(|o| ("service_hours.in_hours".to_owned(), o)),
            );
        for (key, opening) in openings {
            if let Err(e) = check_opening(opening) {
                problems.push((key, e.to_string()));
            }
        }
        for (key, list) in [
            ("extra_bank_holidays", &self.extra_bank_holidays),
            ("not_bank_holidays", &self.not_bank_holidays),
        ] {
            for day in list
                .iter()
                .filter(|d| d.parse::<jiff::civil::Date>().is_err())
            {
                problems.push((
                    format!("service_hours.{key}"),
                    format!("{day:?} is not a date like 2027-06-07"),
                ));
            }
        }
        if !matches!(self.bank_holidays.as_str(), "england-and-wales" | "none") {
            problems.push((
                "service_hours.bank_holidays".into(),
                format!(
                    "{:?} is neither \"england-and-wales\" nor \"none\"",
                    self.bank_holidays
                ),
            ));
        }
        problems
    }
}
