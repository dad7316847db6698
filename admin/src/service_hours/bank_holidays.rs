//! Bank holidays in England and Wales, by the rules that set them, so the
//! hub needs no yearly list: New Year's Day, Good Friday, Easter Monday, the
//! first and last Mondays of May, the last Monday of August, Christmas Day
//! and Boxing Day (moved to the next weekday when they fall at a weekend),
//! and the days moved or added by proclamation in 2020, 2022 and 2023. A
//! hub adds or removes days in its configuration when a new one is
//! proclaimed.

use jiff::civil::{Date, Weekday};
use jiff::ToSpan;

/// Which days are bank holidays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankHolidays {
    /// England and Wales' rules apply.
    pub england_and_wales: bool,
    /// Extra days (a proclaimed holiday the rules do not know).
    pub extra: Vec<Date>,
    /// Days the rules give that are not holidays here.
    pub removed: Vec<Date>,
}

impl BankHolidays {
    /// England and Wales, with no changes.
    pub fn england_and_wales() -> Self {
        BankHolidays {
            england_and_wales: true,
            ..Default::default()
        }
    }

    /// Whether `day` is a bank holiday.
    pub fn contains(&self, day: Date) -> bool {
        if self.extra.contains(&day) {
            return true;
        }
        self.england_and_wales
            && !self.removed.contains(&day)
            && england_and_wales(day.year()).contains(&day)
    }
}

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm).
fn easter(year: i16) -> Date {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, month as i8, day as i8).expect("Easter is a real date")
}

fn date(year: i16, month: i8, day: i8) -> Date {
    Date::new(year, month, day).expect("a real date")
}

/// The first Monday on or after `d`.
fn monday_from(d: Date) -> Date {
    let ahead = (7 - d.weekday().to_monday_zero_offset()) % 7;
    d.checked_add(i64::from(ahead).days()).unwrap_or(d)
}

/// The last Monday of `month`.
fn last_monday(year: i16, month: i8) -> Date {
    let last = date(year, month, 1).last_of_month();
    let back = last.weekday().to_monday_zero_offset();
    last.checked_sub(i64::from(back).days()).unwrap_or(last)
}

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The year's bank holidays in England and Wales.
pub fn england_and_wales(year: i16) -> Vec<Date> {
    let easter = easter(year);
    let new_year = monday_from(date(year, 1, 1));
    let early_may = match year {
        2020 => date(2020, 5, 8),
        _ => monday_from(date(year, 5, 1)),
    };
    let spring = match year {
        2022 => date(2022, 6, 2),
        _ => last_monday(year, 5),
    };
    // Christmas on a Saturday or Sunday: the Monday and Tuesday after.
    let christmas = date(year, 12, 25);
    let (christmas, boxing) = match christmas.weekday() {
        Weekday::Saturday => (date(year, 12, 27), date(year, 12, 28)),
        Weekday::Sunday => (date(year, 12, 27), date(year, 12, 26)),
        Weekday::Friday => (christmas, date(year, 12, 28)),
        _ => (christmas, date(year, 12, 26)),
    };
    let mut days = vec![
        if is_weekend(date(year, 1, 1)) {
            new_year
        } else {
            date(year, 1, 1)
        },
        easter.checked_sub(2.days()).unwrap_or(easter),
        easter.checked_add(1.days()).unwrap_or(easter),
        early_may,
        spring,
        last_monday(year, 8),
        christmas,
        boxing,
    ];
    match year {
        2022 => days.extend([date(2022, 6, 3), date(2022, 9, 19)]),
        2023 => days.push(date(2023, 5, 8)),
        _ => {}
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Vec<Date> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// The dates as published for England and Wales.
    #[test]
    fn the_rules_give_the_published_dates() {
        let published = [
            (
                2022,
                vec![
                    "2022-01-03",
                    "2022-04-15",
                    "2022-04-18",
                    "2022-05-02",
                    "2022-06-02",
                    "2022-08-29",
                    "2022-12-27",
                    "2022-12-26",
                    "2022-06-03",
                    "2022-09-19",
                ],
            ),
            (
                2023,
                vec![
                    "2023-01-02",
                    "2023-04-07",
                    "2023-04-10",
                    "2023-05-01",
                    "2023-05-29",
                    "2023-08-28",
                    "2023-12-25",
                    "2023-12-26",
                    "2023-05-08",
                ],
            ),
            (
                2025,
                vec![
                    "2025-01-01",
                    "2025-04-18",
                    "2025-04-21",
                    "2025-05-05",
                    "2025-05-26",
                    "2025-08-25",
                    "2025-12-25",
                    "2025-12-26",
                ],
            ),
            (
                2026,
                vec![
                    "2026-01-01",
                    "2026-04-03",
                    "2026-04-06",
                    "2026-05-04",
                    "2026-05-25",
                    "2026-08-31",
                    "2026-12-25",
                    "2026-12-28",
                ],
            ),
            (
                2027,
                vec![
                    "2027-01-01",
                    "2027-03-26",
                    "2027-03-29",
                    "2027-05-03",
                    "2027-05-31",
                    "2027-08-30",
                    "2027-12-27",
                    "2027-12-28",
                ],
            ),
        ];
        for (year, dates) in published {
            let mut want = parse(&dates);
            let mut got = england_and_wales(year);
            want.sort();
            got.sort();
            assert_eq!(got, want, "{year}");
        }
    }

    #[test]
    fn a_hub_adds_and_removes_days() {
        let mut h = BankHolidays::england_and_wales();
        let boxing: Date = "2026-12-28".parse().unwrap();
        let extra: Date = "2026-07-06".parse().unwrap();
        assert!(h.contains(boxing) && !h.contains(extra));
        h.removed.push(boxing);
        h.extra.push(extra);
        assert!(!h.contains(boxing) && h.contains(extra));
        assert!(!BankHolidays::default().contains("2026-12-25".parse().unwrap()));
    }
}
