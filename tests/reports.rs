//! Service levels over a simulated week: the server's wall clock is set by
//! the test (libfaketime), and a week of calls from three homes is placed,
//! answered, passed to a clinician, abandoned, declined or refused as
//! closed through the real queue API, with overnight service hours and the
//! August bank holiday in the week. Every figure of the reports API is
//! checked against values the test works out itself from its own script,
//! and the CSV export is read as a spreadsheet would. The reports page
//! draws the same week in Chromium.

use jiff::civil::{date, Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{json, Value};

use std::time::Duration;

use futures_util::SinkExt;

use crate::support::admin::{sign_in, sign_in_with_the_form, signed_in};
use crate::support::axe::assert_accessible;
use crate::support::browser::Driver;
use crate::support::clock::Clock;
use crate::support::metrics::{scrape, value};
use crate::support::queue::{add_home, call_api, get_as, post_as};
use crate::support::{ws, Server, ServerOptions};

const CONFIG: &str = r#"
timezone = "Europe/London"
[queue]
urgent_target_secs = 120
routine_target_secs = 600
decline_reasons = ["Needs 999 or A&E", "Not for this service"]
[service_hours]
in_hours = ["Mon-Fri 08:00-18:30"]
closed_phone = "111"
[[service_hours.services]]
name = "Day"
open = ["Daily 08:00-20:00"]
[[service_hours.services]]
name = "Overnight"
open = ["Daily 22:00-07:00"]
"#;

const PASSWORD: &str = "a long hub staff password";
const HOMES: [&str; 3] = ["Rose Court", "Oak House", "Elm Lodge"];
const FORMULA: &str = "=HYPERLINK(\"http://example.invalid\",\"fell\")";

/// What happens to one call, with its waits in seconds.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// An operator answers after `wait`.
    Answered { wait: i64 },
    /// An operator answers, passes it to the clinician after `pass`, who
    /// takes it after `take`.
    ToClinician { wait: i64, pass: i64, take: i64 },
    /// The clinician answers it and records an outcome when `outcome` is
    /// set.
    ByClinician { wait: i64, outcome: Option<usize> },
    /// The home gives up after `wait`.
    Abandoned { wait: i64 },
    /// An operator declines it after `wait`.
    Declined { wait: i64, reason: &'static str },
    /// Placed while every service is closed.
    Closed,
}

#[derive(Debug, Clone)]
struct Scripted {
    at: DateTime,
    home: usize,
    urgent: bool,
    category: &'static str,
    reason: String,
    fate: Fate,
}

/// What the week's calls are about ("" is not said).
const CATEGORIES: [&str; 4] = ["Fall", "Breathing", "", "Chest pain"];

/// Outcomes recorded for three encounters.
fn outcomes() -> [Value; 3] {
    let o = |disposition: &str, avoided: bool, medicines: bool, restore2: bool, respect: &str| {
        json!({ "disposition": disposition, "conveyance_avoided": avoided,
                "medicines_prescribed": medicines, "restore2_used": restore2, "respect": respect,
                "treatment_plan": false, "note": "Seen.", "care_plan": { "text": "Observe.", "actions": [] } })
    };
    [
        o("managed-in-home", true, true, true, "in-place"),
        o("community-referral", true, false, false, "none"),
        o("ambulance-conveyance", false, false, true, "created"),
    ]
}

const SLOTS: [(i8, i8); 9] = [
    (3, 10),
    (7, 30),
    (9, 15),
    (11, 50),
    (13, 40),
    (17, 5),
    (19, 5),
    (21, 0),
    (23, 30),
];

/// The week's calls: up to nine a day from Saturday 29 August 2026 (Monday
/// 31 is a bank holiday); 07:30 and 21:00 fall between the services.
fn week() -> Vec<Scripted> {
    let mut calls = Vec::new();
    let mut outcome = 0;
    for day in 0..7i64 {
        let d = date(2026, 8, 29).checked_add(day.days()).unwrap();
        for (slot, (h, m)) in SLOTS.into_iter().enumerate() {
            // Busier on some days than others.
            if (day + slot as i64 * 3) % 5 == 4 {
                continue;
            }
            let k = calls.len() as i64;
            let fate = if matches!((h, m), (7, 30) | (21, 0)) {
                Fate::Closed
            } else {
                match k % 6 {
                    0 => Fate::Answered {
                        wait: 15 + (k * 53) % 400,
                    },
                    1 => Fate::ToClinician {
                        wait: 30 + (k * 17) % 200,
                        pass: 60 + (k * 7) % 120,
                        take: 20 + (k * 11) % 90,
                    },
                    2 => Fate::ByClinician {
                        wait: 40 + (k * 29) % 900,
                        outcome: (day % 2 == 0 && outcome < 3).then(|| {
                            outcome += 1;
                            outcome - 1
                        }),
                    },
                    3 => Fate::Abandoned {
                        wait: 100 + (k * 13) % 300,
                    },
                    4 => Fate::Declined {
                        wait: 50 + k % 60,
                        reason: if k % 4 == 0 {
                            "Needs 999 or A&E"
                        } else {
                            "Not for this service"
                        },
                    },
                    _ => Fate::Answered { wait: 590 + k * 3 },
                }
            };
            let reason = match k % 5 {
                0 => FORMULA.to_owned(),
                1 => "chest pain, breathless".to_owned(),
                _ => "fall".to_owned(),
            };
            calls.push(Scripted {
                at: d.at(h, m, 0, 0),
                home: ((k * 7 / 3) % 3) as usize,
                category: CATEGORIES[(k as usize * 5 / 2) % CATEGORIES.len()],
                urgent: k % 4 == 1 || k % 7 == 0,
                reason,
                fate,
            });
        }
    }
    calls
}

/// The week before: three calls, for the comparison.
fn week_before() -> Vec<Scripted> {
    let call = |d: Date, h: i8, urgent: bool, fate: Fate| Scripted {
        at: d.at(h, 0, 0, 0),
        home: 0,
        urgent,
        category: "Fall",
        reason: "fall".into(),
        fate,
    };
    vec![
        call(date(2026, 8, 22), 10, false, Fate::Answered { wait: 100 }),
        call(date(2026, 8, 25), 12, false, Fate::Abandoned { wait: 40 }),
        call(date(2026, 8, 28), 15, true, Fate::Answered { wait: 300 }),
    ]
}

fn london() -> TimeZone {
    TimeZone::get("Europe/London").unwrap()
}

fn instant(at: DateTime) -> Timestamp {
    at.to_zoned(london()).unwrap().timestamp()
}

// ---- The figures, worked out from the script alone. ----

/// The service open at a local time, by this week's timetable.
fn service(at: DateTime) -> Option<&'static str> {
    let minute = i32::from(at.hour()) * 60 + i32::from(at.minute());
    if (8 * 60..20 * 60).contains(&minute) {
        Some("Day")
    } else if !(7 * 60..22 * 60).contains(&minute) {
        Some("Overnight")
    } else {
        None
    }
}

fn in_hours(at: DateTime) -> bool {
    let minute = i32::from(at.hour()) * 60 + i32::from(at.minute());
    let weekday = at.weekday().to_monday_zero_offset() < 5;
    weekday && at.date() != date(2026, 8, 31) && (8 * 60..18 * 60 + 30).contains(&minute)
}

fn spread(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return json!({ "count": 0, "median": null, "p90": null });
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    // Nearest rank: the ceil(0.9 n)-th smallest.
    let rank = ((n as f64) * 0.9).ceil() as usize;
    json!({ "count": n, "median": median, "p90": v[rank - 1] })
}

fn figures(calls: &[&Scripted]) -> Value {
    let (mut offered, mut answered, mut abandoned, mut declined, mut closed) = (0, 0, 0, 0, 0);
    let (mut inside, mut outside, mut within) = (0, 0, 0);
    let (mut answer, mut to_clinician, mut total) = (vec![], vec![], vec![]);
    for c in calls {
        if matches!(c.fate, Fate::Closed) {
            closed += 1;
            continue;
        }
        offered += 1;
        if in_hours(c.at) {
            inside += 1;
        } else {
            outside += 1;
        }
        let target = if c.urgent { 120 } else { 600 };
        let answered_after = match c.fate {
            Fate::Answered { wait } => Some(wait),
            Fate::ToClinician { wait, pass, take } => {
                to_clinician.push((pass + take) as f64);
                total.push((wait + pass + take) as f64);
                Some(wait)
            }
            Fate::ByClinician { wait, .. } => {
                to_clinician.push(0.0);
                total.push(wait as f64);
                Some(wait)
            }
            Fate::Abandoned { .. } => {
                abandoned += 1;
                None
            }
            Fate::Declined { .. } => {
                declined += 1;
                None
            }
            Fate::Closed => unreachable!(),
        };
        if let Some(w) = answered_after {
            answered += 1;
            answer.push(w as f64);
            within += usize::from(w <= target);
        }
    }
    json!({
        "offered": offered, "answered": answered, "abandoned": abandoned, "declined": declined,
        "other": 0, "closed": closed, "in_hours": inside, "out_of_hours": outside,
        "answer_seconds": spread(answer), "to_clinician_seconds": spread(to_clinician),
        "total_wait_seconds": spread(total), "within_target": within,
        "share_within_target": if offered > 0 { json!(within as f64 / offered as f64) } else { json!(null) },
    })
}

fn grouped(calls: &[Scripted], keys: &[String], key: impl Fn(&Scripted) -> String) -> Value {
    let groups: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut f = figures(&calls.iter().filter(|c| key(c) == *k).collect::<Vec<_>>());
            f["key"] = json!(k);
            f
        })
        .collect();
    json!(groups)
}

fn category_key(category: &str) -> String {
    if category.is_empty() {
        "(not given)".into()
    } else {
        category.into()
    }
}

fn expected_report(calls: &[Scripted]) -> Value {
    let all: Vec<&Scripted> = calls.iter().collect();
    let mut homes: Vec<String> = HOMES.iter().map(|h| h.to_string()).collect();
    homes.sort();
    homes.retain(|h| calls.iter().any(|c| HOMES[c.home] == h));
    let mut services: Vec<String> = vec!["(closed)".into(), "Day".into(), "Overnight".into()];
    services.retain(|s| {
        calls
            .iter()
            .any(|c| service(c.at).unwrap_or("(closed)") == s)
    });
    let mut categories: Vec<String> = CATEGORIES.iter().map(|c| category_key(c)).collect();
    categories.sort();
    categories.retain(|k| calls.iter().any(|c| category_key(c.category) == *k));
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for c in calls {
        if let Fate::Declined { reason, .. } = c.fate {
            match reasons.iter_mut().find(|(r, _)| r == reason) {
                Some(e) => e.1 += 1,
                None => reasons.push((reason.to_owned(), 1)),
            }
        }
    }
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    json!({
        "totals": figures(&all),
        "by_urgency": grouped(calls, &["routine".into(), "urgent".into()], |c| {
            if c.urgent { "urgent" } else { "routine" }.into()
        }),
        "by_home": grouped(calls, &homes, |c| HOMES[c.home].to_owned()),
        "by_service": grouped(calls, &services, |c| service(c.at).unwrap_or("(closed)").to_owned()),
        "by_category": grouped(calls, &categories, |c| category_key(c.category)),
        "by_hour": grouped(calls, &(0..24).map(|h| h.to_string()).collect::<Vec<_>>(), |c| c.at.hour().to_string()),
        "by_weekday": grouped(calls, &days.map(String::from), |c| {
            days[c.at.weekday().to_monday_zero_offset() as usize].to_owned()
        }),
        "declined_reasons": reasons,
    })
}

fn expected_outcomes(recorded: usize) -> Value {
    let o = &outcomes()[..recorded];
    let count = |f: &dyn Fn(&Value) -> bool| o.iter().filter(|v| f(v)).count();
    let disposition = |d: &str| count(&|v: &Value| v["disposition"] == d);
    json!({
        "encounters": recorded, "recorded": recorded,
        "conveyance_avoided": count(&|v: &Value| v["conveyance_avoided"] == true),
        "managed_in_home": disposition("managed-in-home"),
        "gp_follow_up": disposition("gp-follow-up"),
        "community_referral": disposition("community-referral"),
        "ambulance_conveyance": disposition("ambulance-conveyance"),
        "medicines_prescribed": count(&|v: &Value| v["medicines_prescribed"] == true),
        "restore2_used": count(&|v: &Value| v["restore2_used"] == true),
        "respect_used": count(&|v: &Value| v["respect"] != "none"),
    })
}

/// Whether two JSON values are equal, numbers to within 1e-9: the client's
/// JSON parser does not always read a float back to its last bit.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[track_caller]
fn assert_same(actual: &Value, expected: &Value, what: &str) {
    assert!(
        same(actual, expected),
        "{what}\n  server: {actual}\nexpected: {expected}"
    );
}

// ---- Driving the hub. ----

/// Signed-in accounts, signed in again before their 12 h sessions end on
/// the server's clock.
struct Staff {
    admin: (String, String),
    op: (String, String),
    dr: (String, String),
    signed_in_at: Timestamp,
}

impl Staff {
    async fn new(server: &Server, now: Timestamp) -> Staff {
        for (name, role) in [
            ("hub.admin", "admin"),
            ("op.one", "operator"),
            ("dr.one", "clinician"),
        ] {
            let added = server.add_account(name, PASSWORD, role);
            assert!(added.status.success(), "{added:?}");
        }
        let mut staff = Staff {
            admin: Default::default(),
            op: Default::default(),
            dr: Default::default(),
            signed_in_at: now,
        };
        staff.sign_in(server, now).await;
        staff
    }

    async fn sign_in(&mut self, server: &Server, now: Timestamp) {
        self.admin = signed_in(&sign_in(server, "hub.admin", PASSWORD).await);
        self.op = signed_in(&sign_in(server, "op.one", PASSWORD).await);
        self.dr = signed_in(&sign_in(server, "dr.one", PASSWORD).await);
        self.signed_in_at = now;
    }

    async fn fresh(&mut self, server: &Server, now: Timestamp) {
        if now.duration_since(self.signed_in_at).as_secs() > 10 * 3600 {
            self.sign_in(server, now).await;
        }
    }
}

async fn ok(what: &str, reply: (u16, Value)) -> Value {
    assert!((200..300).contains(&reply.0), "{what}: {reply:?}");
    reply.1
}

/// Waits until the consultation of hub call `call` has ended (its last
/// participant's leave recorded).
async fn wait_for_end(server: &Server, admin: &(String, String), call: i64) {
    for _ in 0..100 {
        let (_, calls) = get_as(
            server,
            admin,
            "/admin/api/reports/calls.json?from=2026-08-22&to=2026-09-05",
        )
        .await;
        let ended = calls["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["call_id"] == call && !c["consultation_seconds"].is_null());
        if ended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the consultation of call {call} never ended");
}

/// Plays `c` through the hub, moving the clock as it goes.
async fn play(server: &Server, clock: &Clock, staff: &mut Staff, tokens: &[String], c: &Scripted) {
    let start = instant(c.at);
    clock.set(start);
    staff.fresh(server, start).await;
    let body = json!({ "token": tokens[c.home], "urgent": c.urgent, "reason": c.reason, "category": c.category });
    let placed = ok(
        "call",
        call_api(
            server,
            "POST",
            "/home/api/calls",
            &[],
            Some(&body.to_string()),
        )
        .await,
    )
    .await;
    let call = placed["call"].as_i64().unwrap();
    let after = |s: i64| start.checked_add(s.seconds()).unwrap();
    let answer = format!("/admin/api/queue/{call}/answer");
    match c.fate {
        Fate::Closed => {
            assert_eq!(placed["state"], "closed", "{placed}");
            assert_eq!(placed["closed"]["phone"], "111", "{placed}");
            assert!(
                placed["closed"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("111"),
                "{placed}"
            );
        }
        Fate::Answered { wait } => {
            clock.set(after(wait));
            ok(
                "answer",
                post_as(server, &staff.op, &answer, json!({})).await,
            )
            .await;
        }
        Fate::ToClinician { wait, pass, take } => {
            clock.set(after(wait));
            ok(
                "answer",
                post_as(server, &staff.op, &answer, json!({})).await,
            )
            .await;
            clock.set(after(wait + pass));
            let path = format!("/admin/api/hub/calls/{call}/transfer");
            ok(
                "pass",
                post_as(server, &staff.op, &path, json!({ "clinician": "dr.one" })).await,
            )
            .await;
            clock.set(after(wait + pass + take));
            let path = format!("/admin/api/hub/calls/{call}/accept");
            ok("take", post_as(server, &staff.dr, &path, json!({})).await).await;
        }
        Fate::ByClinician { wait, outcome } => {
            clock.set(after(wait));
            let answered = ok(
                "answer",
                post_as(server, &staff.dr, &answer, json!({})).await,
            )
            .await;
            if let Some(i) = outcome {
                // In the call (by socket), the clinician adds the resident
                // and records the outcome.
                clock.set(after(wait + 60));
                let socket =
                    ws::join_by_socket(server, answered["join_url"].as_str().unwrap()).await;
                let path = format!("/admin/api/hub/calls/{call}/residents");
                let resident = json!({ "nhs_number": "943 476 5919", "name": "Mabel Brown", "birth_date": "1938-04-21" });
                // "joined" reaches the socket just before the call log
                // records the join, so the consultation may take a moment
                // to open there.
                let mut reply = post_as(server, &staff.dr, &path, resident.clone()).await;
                for _ in 0..50 {
                    if reply.0 != 404 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    reply = post_as(server, &staff.dr, &path, resident.clone()).await;
                }
                let added = ok("resident", reply).await;
                clock.set(after(wait + 600));
                let path = format!("/admin/api/encounters/{}/outcome", added["encounter"]);
                ok(
                    "outcome",
                    post_as(server, &staff.dr, &path, outcomes()[i].clone()).await,
                )
                .await;
                // The clinician leaves (a dropped socket would be kept for
                // its resume window, and the consultation with it).
                let mut socket = socket;
                socket
                    .send(tokio_tungstenite::tungstenite::Message::text(
                        r#"{"type":"leave"}"#,
                    ))
                    .await
                    .expect("leave");
                wait_for_end(server, &staff.admin, call).await;
            }
        }
        Fate::Abandoned { wait } => {
            clock.set(after(wait));
            let path = format!("/home/api/calls/{call}/cancel?t={}", tokens[c.home]);
            ok("cancel", call_api(server, "POST", &path, &[], None).await).await;
        }
        Fate::Declined { wait, reason } => {
            clock.set(after(wait));
            let path = format!("/admin/api/queue/{call}/decline");
            ok(
                "decline",
                post_as(server, &staff.op, &path, json!({ "reason": reason })).await,
            )
            .await;
            let (_, status) = call_api(
                server,
                "GET",
                &format!("/home/api/calls/{call}?t={}", tokens[c.home]),
                &[],
                None,
            )
            .await;
            assert_eq!(
                (&status["state"], &status["declined"]["reason"]),
                (&json!("declined"), &json!(reason)),
                "{status}"
            );
        }
    }
}

/// A CSV file's rows as a spreadsheet reads them (RFC 4180 quoting).
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last line ends with CRLF"
    );
    rows
}

const CALL_COLUMNS: [&str; 22] = [
    "call_id",
    "home_id",
    "home_name",
    "urgency",
    "reason_category",
    "reason",
    "service",
    "period",
    "outcome",
    "declined_reason",
    "queued_at",
    "answered_at",
    "clinician_at",
    "answer_seconds",
    "to_clinician_seconds",
    "total_wait_seconds",
    "within_target",
    "consultation_seconds",
    "transport",
    "worst_quality",
    "reconnects",
    "day_of_week",
];

fn is_local_time(s: &str) -> bool {
    // 2026-08-31T09:15:00+01:00
    s.len() == 25 && s.parse::<Timestamp>().is_ok() && matches!(&s[19..20], "+" | "-")
}

/// A hub that has lived through the week before and the simulated week;
/// its clock stands at 09:00 the Saturday after.
struct Played {
    server: Server,
    clock: Clock,
    staff: Staff,
    homes: Vec<(String, String)>,
    earlier: Vec<Scripted>,
    week: Vec<Scripted>,
}

async fn play_the_weeks() -> Played {
    let earlier = week_before();
    let week = week();
    let clock = Clock::at(instant(earlier[0].at).checked_sub(1.hours()).unwrap());
    let server = Server::start_with(ServerOptions {
        env: clock.env(),
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    });
    let mut staff = Staff::new(&server, instant(earlier[0].at)).await;
    let homes: Vec<(String, String)> = HOMES.iter().map(|h| add_home(&server, h)).collect();
    let tokens: Vec<String> = homes.iter().map(|(_, t)| t.clone()).collect();
    for c in earlier.iter().chain(&week) {
        play(&server, &clock, &mut staff, &tokens, c).await;
    }
    let end = instant(date(2026, 9, 5).at(9, 0, 0, 0));
    clock.set(end);
    staff.fresh(&server, end).await;
    Played {
        server,
        clock,
        staff,
        homes,
        earlier,
        week,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_week_gives_the_figures_worked_out_independently() {
    // The clock is kept to the end: without its file the server would read
    // the real time, and every session would have expired.
    let Played {
        server,
        clock: _clock,
        staff,
        homes,
        earlier,
        week,
    } = play_the_weeks().await;

    let period = "from=2026-08-29&to=2026-09-04";
    let summary = ok(
        "summary",
        get_as(
            &server,
            &staff.admin,
            &format!("/admin/api/reports/summary?{period}"),
        )
        .await,
    )
    .await;
    let report = &summary["report"];
    let mut want = expected_report(&week);
    // Homes are grouped by id (two may share a name): each row names its own.
    for row in want["by_home"].as_array_mut().unwrap() {
        let at = HOMES.iter().position(|h| row["key"] == *h).unwrap();
        row["id"] = json!(homes[at].0);
    }
    for key in [
        "totals",
        "by_urgency",
        "by_home",
        "by_service",
        "by_category",
        "by_hour",
        "by_weekday",
        "declined_reasons",
    ] {
        assert_same(&report[key], &want[key], key);
    }
    assert_same(&report["outcomes"], &expected_outcomes(3), "outcomes");
    println!(
        "week: {} calls, {} offered, answered {} (median {} s, 90th percentile {} s), {} within target",
        week.len(), want["totals"]["offered"], want["totals"]["answered"],
        want["totals"]["answer_seconds"]["median"], want["totals"]["answer_seconds"]["p90"],
        want["totals"]["within_target"]
    );
    // The seven days before, for the comparison.
    assert_eq!(
        (&summary["previous"]["from"], &summary["previous"]["to"]),
        (&json!("2026-08-22"), &json!("2026-08-28"))
    );
    assert_same(
        &summary["previous"]["report"]["totals"],
        &expected_report(&earlier)["totals"],
        "the week before",
    );
    // Filtered to one home, and to one service.
    let (rose, _) = &homes[0];
    let one = ok(
        "home",
        get_as(
            &server,
            &staff.admin,
            &format!("/admin/api/reports/summary?{period}&home={rose}"),
        )
        .await,
    )
    .await;
    let mine: Vec<&Scripted> = week.iter().filter(|c| c.home == 0).collect();
    assert_same(&one["report"]["totals"], &figures(&mine), "one home");
    let night = ok(
        "service",
        get_as(
            &server,
            &staff.admin,
            &format!("/admin/api/reports/summary?{period}&service=Overnight"),
        )
        .await,
    )
    .await;
    let overnight: Vec<&Scripted> = week
        .iter()
        .filter(|c| service(c.at) == Some("Overnight"))
        .collect();
    assert_same(
        &night["report"]["totals"],
        &figures(&overnight),
        "overnight",
    );
    // Only admins see reports.
    let (code, _) = get_as(
        &server,
        &staff.op,
        &format!("/admin/api/reports/summary?{period}"),
    )
    .await;
    assert_eq!(code, 403);

    // The CSV: one header row, one row per call, ISO 8601 times with
    // offsets, no cell a spreadsheet would run as a formula.
    let reply = crate::support::http::get_with(
        &server.base_url,
        &format!("/admin/api/reports/calls.csv?{period}"),
        &[("Cookie", staff.admin.0.as_str())],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/csv"));
    let rows = read_csv(&reply.body);
    assert_eq!(rows[0], CALL_COLUMNS);
    assert_eq!(rows.len(), week.len() + 1);
    let col = |name: &str| CALL_COLUMNS.iter().position(|c| *c == name).unwrap();
    for (row, c) in rows[1..].iter().zip(&week) {
        assert_eq!(row.len(), CALL_COLUMNS.len(), "{row:?}");
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {row:?}"
            );
        }
        assert!(is_local_time(&row[col("queued_at")]), "{row:?}");
        assert_eq!(
            row[col("queued_at")].parse::<Timestamp>().unwrap(),
            instant(c.at)
        );
        if !row[col("answered_at")].is_empty() {
            assert!(is_local_time(&row[col("answered_at")]), "{row:?}");
        }
        let reason = &row[col("reason")];
        if c.reason == FORMULA {
            assert_eq!(*reason, format!("'{FORMULA}"), "the formula is text");
        } else {
            assert_eq!(*reason, c.reason);
        }
        assert_eq!(row[col("home_name")], HOMES[c.home]);
        assert_eq!(row[col("reason_category")], c.category);
        // Only the calls a clinician joined (by socket, no media) had a
        // consultation; none had media, so no transport or quality.
        let joined = matches!(
            c.fate,
            Fate::ByClinician {
                outcome: Some(_),
                ..
            }
        );
        assert_eq!(
            !row[col("consultation_seconds")].is_empty(),
            joined,
            "{row:?}"
        );
        assert_eq!(
            (
                row[col("transport")].as_str(),
                row[col("worst_quality")].as_str()
            ),
            ("", "")
        );
        assert_eq!(row[col("service")], service(c.at).unwrap_or(""));
    }
    // The JSON rows carry the same names.
    let json_rows = ok(
        "calls.json",
        get_as(
            &server,
            &staff.admin,
            &format!("/admin/api/reports/calls.json?{period}"),
        )
        .await,
    )
    .await;
    let json_rows = json_rows["calls"].as_array().unwrap();
    assert_eq!(json_rows.len(), week.len());
    let mut keys: Vec<&str> = json_rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut columns = CALL_COLUMNS.to_vec();
    columns.sort();
    assert_eq!(keys, columns);
    // The OpenAPI description names every route here and every field the
    // rows and figures carry.
    let spec = ok(
        "openapi",
        get_as(&server, &staff.admin, "/admin/api/reports/openapi.json").await,
    )
    .await;
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "summary",
        "calls.json",
        "calls.csv",
        "encounters.json",
        "encounters.csv",
    ] {
        let path = format!("/admin/api/reports/{path}");
        assert!(spec["paths"][&path]["get"].is_object(), "{path} described");
    }
    let described = |schema: &str| -> Vec<String> {
        let mut keys: Vec<String> = spec["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let keys_of = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(described("CallRow"), keys_of(&json_rows[0]));
    assert_eq!(described("Figures"), keys_of(&report["totals"]));
    assert_eq!(described("Report"), keys_of(report));
    assert_eq!(described("Outcomes"), keys_of(&report["outcomes"]));
    assert_eq!(described("Summary"), keys_of(&summary));
    let encounters = ok(
        "encounters.json",
        get_as(
            &server,
            &staff.admin,
            &format!("/admin/api/reports/encounters.json?{period}"),
        )
        .await,
    )
    .await;
    assert_eq!(
        described("EncounterRow"),
        keys_of(&encounters["encounters"][0])
    );
    // Encounters: one row each, without identifiers.
    let reply = crate::support::http::get_with(
        &server.base_url,
        &format!("/admin/api/reports/encounters.csv?{period}"),
        &[("Cookie", staff.admin.0.as_str())],
    )
    .await;
    let rows = read_csv(&reply.body);
    assert_eq!(rows.len(), 4, "{}", reply.body);
    assert!(!reply.body.contains("Mabel") && !reply.body.contains("9434765919"));
    // Every column is documented.
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reports.md")).unwrap();
    for name in CALL_COLUMNS.iter().chain(
        rows[0]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/reports.md names {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_page_draws_the_week_in_charts_and_tables() {
    let played = play_the_weeks().await;
    let server = &played.server;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    sign_in_with_the_form(&b, &server.base_url, "hub.admin", PASSWORD).await;
    b.until(
        "return location.pathname === '/admin';",
        Duration::from_secs(10),
        "signed in",
    )
    .await;
    b.client
        .goto(&format!(
            "{}/admin/reports?from=2026-08-29&to=2026-09-04",
            server.base_url
        ))
        .await
        .expect("open the reports page");
    b.until(
        "return (window.carecallReports || {}).loaded >= 1;",
        Duration::from_secs(10),
        "the report loaded",
    )
    .await;
    let want = expected_report(&played.week);
    let shown = b
        .eval(
            "const cell = (f, i) => document.querySelector(`tr[data-figure=\"${f}\"]`).children[i].textContent;
             return { offered: cell('Calls offered (a service was open)', 1),
                      before: cell('Calls offered (a service was open)', 2),
                      declined: cell('Declined by the hub', 1),
                      charts: [...document.querySelectorAll('#charts svg')].map((s) => s.querySelectorAll('rect').length),
                      heights: [...document.querySelectorAll('#charts svg')].map((s) => [...s.querySelectorAll('rect')].reduce((a, r) => a + Number(r.getAttribute('height')), 0)),
                      homes: [...document.querySelectorAll('#report-form select[name=home] option')].length };",
        )
        .await;
    println!("reports page: {shown}");
    assert_eq!(shown["offered"], want["totals"]["offered"].to_string());
    assert_eq!(shown["declined"], want["totals"]["declined"].to_string());
    assert_eq!(
        shown["before"],
        expected_report(&played.earlier)["totals"]["offered"].to_string()
    );
    // Five charts: 24 hours, 7 days, 7 days, 2 urgencies, 4 outcomes, each
    // with something drawn.
    assert_eq!(shown["charts"], json!([24, 7, 7, 2, 4]));
    assert!(
        shown["heights"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.as_f64().unwrap() > 0.0),
        "{shown}"
    );
    assert_eq!(shown["homes"], json!(HOMES.len() + 1));
    assert_accessible(&b, "reports page").await;
    // `CARECALL_SCREENSHOTS=docs` keeps the picture in docs/reports.png.
    if let Some(dir) = std::env::var_os("CARECALL_SCREENSHOTS") {
        b.client
            .set_window_size(1280, 1900)
            .await
            .expect("a tall window");
        let png = b.client.screenshot().await.expect("screenshot");
        let path = std::path::Path::new(&dir).join("reports.png");
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot saved to {}", path.display());
    }
    // Filtered to one home: the page asks again and shows that home's calls.
    let (rose, _) = &played.homes[0];
    crate::support::console::choose(&b, "select[name=home]", rose).await;
    crate::support::console::click(&b, "#report-form button[type=submit]").await;
    b.until(
        "return window.carecallReports.loaded >= 2;",
        Duration::from_secs(10),
        "the filtered report",
    )
    .await;
    let offered = b
        .eval("return document.querySelector('tr[data-figure=\"Calls offered (a service was open)\"]').children[1].textContent;")
        .await;
    let mine: Vec<&Scripted> = played.week.iter().filter(|c| c.home == 0).collect();
    assert_eq!(offered, figures(&mine)["offered"].to_string());
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_metrics_count_the_weeks_and_show_a_call_waiting_beyond_its_target() {
    let played = play_the_weeks().await;
    let server = &played.server;
    let all: Vec<&Scripted> = played.earlier.iter().chain(&played.week).collect();
    let text = scrape(&server.base_url).await;
    let get = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series} missing"));
    let count = |f: &dyn Fn(&Fate) -> bool| all.iter().filter(|c| f(&c.fate)).count() as f64;
    let answered_wait = |c: &&&Scripted| match c.fate {
        Fate::Answered { wait }
        | Fate::ToClinician { wait, .. }
        | Fate::ByClinician { wait, .. } => Some(wait as f64),
        _ => None,
    };
    assert_eq!(
        get(r#"carecall_queue_calls_total{outcome="placed"}"#),
        all.len() as f64
    );
    assert_eq!(
        get(r#"carecall_queue_calls_total{outcome="closed"}"#),
        count(&|f| matches!(f, Fate::Closed))
    );
    assert_eq!(
        get(r#"carecall_queue_calls_total{outcome="declined"}"#),
        count(&|f| matches!(f, Fate::Declined { .. }))
    );
    assert_eq!(
        get(r#"carecall_queue_calls_total{outcome="cancelled_unanswered"}"#),
        count(&|f| matches!(f, Fate::Abandoned { .. }))
    );
    for (urgent, label) in [(false, "routine"), (true, "urgent")] {
        let waits: Vec<f64> = all
            .iter()
            .filter(|c| c.urgent == urgent)
            .filter_map(|c| answered_wait(&c))
            .collect();
        assert_eq!(
            get(&format!(
                r#"carecall_queue_answer_seconds_count{{urgency="{label}"}}"#
            )),
            waits.len() as f64
        );
        assert_eq!(
            get(&format!(
                r#"carecall_queue_answer_seconds_sum{{urgency="{label}"}}"#
            )),
            waits.iter().sum::<f64>()
        );
        assert_eq!(
            get(&format!(
                r#"carecall_queue_waiting_calls{{urgency="{label}"}}"#
            )),
            0.0
        );
    }
    assert_eq!(
        get(r#"carecall_queue_calls_total{outcome="answered"}"#),
        all.iter().filter_map(|c| answered_wait(&c)).count() as f64
    );
    // Saturday 09:00: the day service is open, out of hours.
    assert_eq!(
        (
            get("carecall_service_open"),
            get(r#"carecall_service_period{period="in_hours"}"#),
            get(r#"carecall_service_period{period="out_of_hours"}"#),
        ),
        (1.0, 0.0, 1.0)
    );
    for role in ["admin", "operator", "clinician"] {
        assert_eq!(
            get(&format!(r#"carecall_staff_signed_in{{role="{role}"}}"#)),
            1.0,
            "{role}"
        );
    }
    assert_eq!(get(r#"carecall_staff_signed_in{role="specialist"}"#), 0.0);
    // Signed in through the API, with no console open: nobody watching.
    assert_eq!(get(r#"carecall_consoles_open{role="operator"}"#), 0.0);

    // An urgent call waits 150 s: past its 120 s target, as the alert reads.
    let start = instant(date(2026, 9, 5).at(10, 0, 0, 0));
    played.clock.set(start);
    let body = json!({ "token": played.homes[1].1, "urgent": true, "reason": "fall" });
    ok(
        "call",
        call_api(
            server,
            "POST",
            "/home/api/calls",
            &[],
            Some(&body.to_string()),
        )
        .await,
    )
    .await;
    played.clock.set(start.checked_add(150.seconds()).unwrap());
    let text = scrape(&server.base_url).await;
    let get = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series} missing"));
    assert_eq!(
        get(r#"carecall_queue_waiting_calls{urgency="urgent"}"#),
        1.0
    );
    assert_eq!(
        get(r#"carecall_queue_oldest_wait_seconds{urgency="urgent"}"#),
        150.0
    );
    assert_eq!(
        get(r#"carecall_queue_answer_target_seconds{urgency="urgent"}"#),
        120.0
    );
    assert_eq!(
        get(r#"carecall_queue_oldest_wait_seconds{urgency="routine"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_calling_while_closed_is_told_where_to_turn_and_a_declined_call_gets_its_reason() {
    use crate::support::console::{call_the_hub, choose, click, console};
    // Tuesday 1 September 2026, 21:00: between the day and overnight services.
    let clock = Clock::at(instant(date(2026, 9, 1).at(21, 0, 0, 0)));
    let server = Server::start_with(ServerOptions {
        env: clock.env(),
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    });
    let (_, token) = add_home(&server, "Rose Court");
    let link = format!("{}/home?t={token}", server.base_url);
    let driver = Driver::start().await;
    let home = driver.browser().await;
    call_the_hub(&home, &link).await;
    let closed =
        "return document.getElementById('waiting-title').textContent === 'The hub is closed now' \
                  && document.getElementById('position').textContent.includes('111');";
    home.until(closed, Duration::from_secs(10), "the closed notice")
        .await;
    assert_accessible(&home, "home page, every service closed").await;
    // Pressed again and again while closed: the one counted call.
    let mut calls = Vec::new();
    for urgent in [false, true] {
        let (code, again) = crate::support::queue::place_call(&server, &token, urgent).await;
        assert_eq!(
            (code, again["state"].as_str()),
            (200, Some("closed")),
            "{again}"
        );
        calls.push(again["call"].clone());
    }
    assert_eq!(calls[0], calls[1]);
    let text = scrape(&server.base_url).await;
    assert_eq!(
        value(&text, r#"carecall_queue_calls_total{outcome="closed"}"#),
        Some(1.0),
        "one closed call however often pressed"
    );

    // 10:00 the next day: the day service is open; an operator declines.
    clock.set(instant(date(2026, 9, 2).at(10, 0, 0, 0)));
    let op = console(&driver, &server, "op.one", "operator").await;
    call_the_hub(&home, &link).await;
    op.until(
        "return [...document.querySelectorAll('#queue tr[data-call]')].some((r) => r.textContent.includes('Chest pain'));",
        Duration::from_secs(10),
        "the call's subject in the console",
    )
    .await;
    click(&op, "#queue tr[data-call] button.decline").await;
    choose(&op, "#decline-reason", "Not for this service").await;
    assert_accessible(&op, "console, declining a call").await;
    click(&op, "#decline-confirm").await;
    let declined = "return document.getElementById('waiting-title').textContent === 'The hub cannot take this call' \
                    && document.getElementById('position').textContent.includes('Not for this service');";
    home.until(
        declined,
        Duration::from_secs(10),
        "the home told the reason",
    )
    .await;
    op.until(
        "return document.querySelectorAll('#queue tr[data-call]').length === 0;",
        Duration::from_secs(10),
        "the queue empty",
    )
    .await;
    home.close().await;
    op.close().await;
}
