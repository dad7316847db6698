//! Service hours: when each of the hub's services takes calls, which of
//! those hours are "in hours", and the bank holidays between. Reports, the
//! call history, the hooks and the queue read "in hours", "out of hours"
//! and "closed" from here, so they always agree.
//!
//! An opening is written as it is said: `Mon-Fri 08:00-18:30`,
//! `Sat,Sun,BH 09:00-13:00`, `Daily 22:00-07:00` (overnight: it belongs to
//! the day it starts), `Daily 00:00-24:00`. `BH` is a bank holiday: on one,
//! a service whose openings name `BH` opens only as those say; a service
//! that never names `BH` keeps its usual weekday hours. The hours after
//! midnight belong to the next day, which is not the holiday: a weekday's
//! overnight opening (`Mon-Fri 22:00-07:00`) still runs from midnight after
//! a bank holiday Monday, whatever the `BH` openings said of Monday. The
//! in-hours window is never in hours on a bank holiday unless it names `BH`.

mod bank_holidays;

pub use bank_holidays::{england_and_wales, BankHolidays};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

/// When a moment falls, for the service that would take a call then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A service is open, inside the in-hours window.
    InHours,
    /// A service is open, outside the in-hours window.
    OutOfHours,
    /// No service is open.
    Closed,
}

impl Period {
    /// Its name in exports: `in_hours`, `out_of_hours`, `closed`.
    pub fn name(self) -> &'static str {
        match self {
            Period::InHours => "in_hours",
            Period::OutOfHours => "out_of_hours",
            Period::Closed => "closed",
        }
    }
}

/// A mistake in an opening, said so the person editing the file can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{opening:?}: {problem} (write it like \"Mon-Fri 08:00-18:30\" or \"Sat,Sun,BH 09:00-13:00\")"
)]
pub struct OpeningError {
    opening: String,
    problem: String,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// One opening: the days it starts on and its minutes of the day. `to` at
/// or before `from` runs past midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opening {
    /// Monday is bit 0.
    weekdays: u8,
    bank_holidays: bool,
    from: u16,
    to: u16,
}

fn minute_of(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn day_index(s: &str) -> Option<u8> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| i as u8)
}

impl std::str::FromStr for Opening {
    type Err = OpeningError;

    fn from_str(text: &str) -> Result<Self, OpeningError> {
        let bad = |problem: &str| OpeningError {
            opening: text.to_owned(),
            problem: problem.to_owned(),
        };
        let (days, times) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("days, a space, then times"))?;
        let (mut weekdays, mut bank_holidays) = (0u8, false);
        for part in days.split(',') {
            match part.trim() {
                p if p.eq_ignore_ascii_case("BH") => bank_holidays = true,
                p if p.eq_ignore_ascii_case("Daily") => weekdays = 0x7f,
                p => {
                    let (a, b) = p.split_once('-').unwrap_or((p, p));
                    let (a, b) = day_index(a).zip(day_index(b)).ok_or_else(|| {
                        bad("days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, Daily or BH")
                    })?;
                    let mut d = a;
                    loop {
                        weekdays |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
            }
        }
        let (from, to) = times
            .trim()
            .split_once('-')
            .and_then(|(a, b)| minute_of(a).zip(minute_of(b)))
            .ok_or_else(|| bad("times are HH:MM-HH:MM, 00:00 to 24:00"))?;
        if from == 24 * 60 {
            return Err(bad("an opening cannot start at 24:00"));
        }
        Ok(Opening {
            weekdays,
            bank_holidays,
            from,
            to,
        })
    }
}

/// Whether `text` is an opening carecall can read, and why not.
pub fn check_opening(text: &str) -> Result<(), OpeningError> {
    text.parse::<Opening>().map(|_| ())
}

/// Openings that together make one week's timetable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timetable {
    openings: Vec<Opening>,
    /// On a bank holiday with no `BH` opening, the weekday's openings hold.
    weekdays_on_holidays: bool,
}

impl Timetable {
    fn parse(openings: &[String], weekdays_on_holidays: bool) -> Result<Self, OpeningError> {
        let openings = openings
            .iter()
            .map(|o| o.parse())
            .collect::<Result<Vec<Opening>, _>>()?;
        let names_bh = openings.iter().any(|o| o.bank_holidays);
        Ok(Timetable {
            weekdays_on_holidays: weekdays_on_holidays && !names_bh,
            openings,
        })
    }

    /// Whether `o` starts on `day`.
    fn starts_on(&self, o: &Opening, day: Date, holidays: &BankHolidays) -> bool {
        if holidays.contains(day) && !self.weekdays_on_holidays {
            return o.bank_holidays;
        }
        names_weekday_of(o, day)
    }

    /// Whether `o`'s hours after midnight run on the day after `day`: they
    /// fall on that next day, so a bank holiday `day` does not take them
    /// away from the weekday opening.
    fn runs_on_after(&self, o: &Opening, day: Date, holidays: &BankHolidays) -> bool {
        self.starts_on(o, day, holidays) || names_weekday_of(o, day)
    }

    fn open_at(&self, day: Date, minute: u16, holidays: &BankHolidays) -> bool {
        self.openings.iter().any(|o| {
            if o.from < o.to {
                (o.from..o.to).contains(&minute) && self.starts_on(o, day, holidays)
            } else {
                (minute >= o.from && self.starts_on(o, day, holidays))
                    || (minute < o.to
                        && day
                            .yesterday()
                            .is_ok_and(|y| self.runs_on_after(o, y, holidays)))
            }
        })
    }
}

fn names_weekday_of(o: &Opening, day: Date) -> bool {
    o.weekdays & (1 << day.weekday().to_monday_zero_offset()) != 0
}

/// One service the hub runs (a day service, an overnight one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name, as reports show it.
    pub name: String,
    timetable: Timetable,
}

/// What a home calling while every service is closed is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedNotice {
    /// Plain words: the hub is closed, and where to turn.
    pub message: String,
    /// The number to call instead (111).
    pub phone: String,
}

impl Default for ClosedNotice {
    fn default() -> Self {
        ClosedNotice {
            message: "The hub is closed now. If it cannot wait, call NHS 111; \
                      in an emergency, call 999."
                .into(),
            phone: "111".into(),
        }
    }
}

/// The service hours in force: a configuration reload replaces them, and
/// every reader sees the new ones from its next request.
pub type LiveHours = carecall_sfu::Live<ServiceHours>;

/// The hub's service hours, as configured.
#[derive(Debug, Clone)]
pub struct ServiceHours {
    zone: TimeZone,
    services: Vec<Service>,
    in_hours: Timetable,
    holidays: BankHolidays,
    /// What a home is told when every service is closed.
    pub closed: ClosedNotice,
}

impl ServiceHours {
    /// Hours from configuration: each service's name and openings, the
    /// in-hours window, the bank holidays.
    pub fn new(
        zone: TimeZone,
        services: &[(String, Vec<String>)],
        in_hours: &[String],
        holidays: BankHolidays,
    ) -> Result<Self, OpeningError> {
        let services = services
            .iter()
            .map(|(name, openings)| {
                Ok(Service {
                    name: name.clone(),
                    timetable: Timetable::parse(openings, true)?,
                })
            })
            .collect::<Result<_, OpeningError>>()?;
        Ok(ServiceHours {
            zone,
            services,
            in_hours: Timetable::parse(in_hours, false)?,
            holidays,
            closed: ClosedNotice::default(),
        })
    }

    /// One service open around the clock; in hours Monday to Friday 08:00
    /// to 18:30 but for England and Wales' bank holidays.
    pub fn around_the_clock(zone: TimeZone) -> Self {
        ServiceHours::new(
            zone,
            &[("Clinical hub".into(), vec!["Daily 00:00-24:00".into()])],
            &["Mon-Fri 08:00-18:30".into()],
            BankHolidays::england_and_wales(),
        )
        .expect("the default openings parse")
    }

    /// The hub's time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The services' names, in the configured order.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|s| s.name.as_str())
    }

    fn local(&self, ms: i64) -> Option<(Date, u16)> {
        let t = Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned(self.zone.clone());
        Some((
            t.date(),
            u16::from(t.hour() as u8) * 60 + u16::from(t.minute() as u8),
        ))
    }

    /// The service that takes a call at `ms` (the first open one in the
    /// configured order), if any is open.
    pub fn service_at(&self, ms: i64) -> Option<&str> {
        let (day, minute) = self.local(ms)?;
        self.services
            .iter()
            .find(|s| s.timetable.open_at(day, minute, &self.holidays))
            .map(|s| s.name.as_str())
    }

    /// Where `ms` falls.
    pub fn period(&self, ms: i64) -> Period {
        let Some((day, minute)) = self.local(ms) else {
            return Period::Closed;
        };
        if self.service_at(ms).is_none() {
            Period::Closed
        } else if self.in_hours.open_at(day, minute, &self.holidays) {
            Period::InHours
        } else {
            Period::OutOfHours
        }
    }

    /// Whether `ms` falls out of hours (closed counts as out of hours).
    pub fn out_of_hours(&self, ms: i64) -> bool {
        self.period(ms) != Period::InHours
    }

    /// Whether `day` is a bank holiday here.
    pub fn is_bank_holiday(&self, day: Date) -> bool {
        self.holidays.contains(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(local: &str) -> i64 {
        let zone = TimeZone::get("Europe/London").unwrap();
        local
            .parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(zone)
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn hours(services: &[(&str, &[&str])]) -> ServiceHours {
        let services: Vec<(String, Vec<String>)> = services
            .iter()
            .map(|(n, o)| (n.to_string(), o.iter().map(|s| s.to_string()).collect()))
            .collect();
        ServiceHours::new(
            TimeZone::get("Europe/London").unwrap(),
            &services,
            &["Mon-Fri 08:00-18:30".into()],
            BankHolidays::england_and_wales(),
        )
        .unwrap()
    }

    #[test]
    fn day_and_overnight_services_leave_a_closed_gap() {
        let h = hours(&[
            ("Day", &["Daily 08:00-20:00"]),
            ("Night", &["Daily 22:00-07:00"]),
        ]);
        // Friday 4 December 2026.
        assert_eq!(h.service_at(ms("2026-12-04T08:00")), Some("Day"));
        assert_eq!(h.period(ms("2026-12-04T09:00")), Period::InHours);
        assert_eq!(h.period(ms("2026-12-04T19:00")), Period::OutOfHours);
        assert_eq!(h.period(ms("2026-12-04T20:00")), Period::Closed);
        assert_eq!(h.period(ms("2026-12-04T21:59")), Period::Closed);
        assert_eq!(h.service_at(ms("2026-12-04T22:00")), Some("Night"));
        // Past midnight, into Saturday: still Friday's overnight opening.
        assert_eq!(h.service_at(ms("2026-12-05T06:59")), Some("Night"));
        assert_eq!(h.period(ms("2026-12-05T07:30")), Period::Closed);
        // Saturday is never in hours.
        assert_eq!(h.period(ms("2026-12-05T10:00")), Period::OutOfHours);
    }

    #[test]
    fn bank_holidays_are_out_of_hours_and_follow_bh_openings() {
        let h = hours(&[("Weekdays", &["Mon-Fri 08:00-18:00", "BH 10:00-14:00"])]);
        // Monday 31 August 2026 is the summer bank holiday.
        assert!(h.is_bank_holiday("2026-08-31".parse().unwrap()));
        assert_eq!(h.period(ms("2026-08-31T09:00")), Period::Closed);
        assert_eq!(h.period(ms("2026-08-31T11:00")), Period::OutOfHours);
        assert_eq!(h.period(ms("2026-09-01T11:00")), Period::InHours);
        // A service that never names BH keeps its weekday hours.
        let h = hours(&[("Weekdays", &["Mon-Fri 08:00-18:00"])]);
        assert_eq!(h.period(ms("2026-08-31T09:00")), Period::OutOfHours);
    }

    #[test]
    fn the_night_after_a_bank_holiday_keeps_its_weekday_opening() {
        let h = hours(&[(
            "Overnight",
            &["Mon-Fri 22:00-07:00", "Sat,Sun,BH 00:00-24:00"],
        )]);
        // Easter Monday, 6 April 2026: open all day as the BH opening says,
        assert_eq!(h.service_at(ms("2026-04-06T15:00")), Some("Overnight"));
        assert_eq!(h.service_at(ms("2026-04-06T23:00")), Some("Overnight"));
        // and Tuesday's small hours are Monday night's weekday opening.
        assert_eq!(h.service_at(ms("2026-04-07T03:00")), Some("Overnight"));
        assert_eq!(h.service_at(ms("2026-04-07T08:00")), None);
        // A BH opening's own small hours run into the next day too.
        let h = hours(&[("Holidays", &["BH 20:00-02:00"])]);
        assert_eq!(h.service_at(ms("2026-04-07T01:00")), Some("Holidays"));
        assert_eq!(h.service_at(ms("2026-04-08T01:00")), None);
    }

    #[test]
    fn the_default_is_open_around_the_clock() {
        let h = ServiceHours::around_the_clock(TimeZone::get("Europe/London").unwrap());
        assert_eq!(h.period(ms("2026-12-06T03:00")), Period::OutOfHours);
        assert_eq!(h.period(ms("2026-12-07T08:00")), Period::InHours);
        assert_eq!(h.period(ms("2026-12-07T18:30")), Period::OutOfHours);
        assert_eq!(h.period(ms("2026-12-25T12:00")), Period::OutOfHours);
    }

    #[test]
    fn openings_are_read_as_written_or_refused_with_the_reason() {
        let o: Opening = "Sat,Sun,BH 09:00-13:00".parse().unwrap();
        assert_eq!(
            (o.weekdays, o.bank_holidays, o.from, o.to),
            (0b110_0000, true, 540, 780)
        );
        let o: Opening = "Fri-Mon 22:00-07:00".parse().unwrap();
        assert_eq!(o.weekdays, 0b111_0001);
        for bad in [
            "Mon-Fri",
            "Mon-Fri 8-18",
            "Funday 08:00-10:00",
            "Mon 25:00-26:00",
            "Mon 24:00-01:00",
        ] {
            let e = bad.parse::<Opening>().unwrap_err().to_string();
            assert!(e.contains("write it like"), "{bad}: {e}");
        }
    }
}
