//! The consultation reaches the resident's record, in real Chromium: a
//! home calls, a clinician answers, attaches the resident (a wrong check
//! digit is refused first), records consent and a recording, and ends with
//! an outcome and a care plan. The home's page shows the plan; the hooks
//! carry `encounter.completed` and a FHIR Bundle whose Encounter and
//! recording name the Patient with that NHS number; the identifiers are in
//! no file, log line or metric in plain text; the audit trail has each look.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::support::axe::assert_accessible;
use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding;
use crate::support::console::{call_the_hub, choose, click, console, wait_for};
use crate::support::hooks::EventSink;
use crate::support::metrics::scrape;
use crate::support::queue::{account, add_home, get_as};
use crate::support::recording::start_recording;
use crate::support::{Server, ServerOptions};

const NHS_NUMBER: &str = "9434765919";
const NAME: &str = "Mabel Brown";
const BORN: &str = "1938-04-21";

/// Types `text` into the field `css` of `b`'s page.
async fn type_into(b: &Browser, css: &str, text: &str) {
    let field = wait_for(b, css, 10).await;
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Waits until `events` holds one of `kind` (standard endpoint).
async fn event(events: &EventSink, kind: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(e) = events.of_type(kind).pop() {
            return e;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no {kind} event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultation_reaches_the_record_with_resident_consent_outcome_and_care_plan() {
    let events = EventSink::default();
    let (_config_dir, config) = events.start().await;
    let server = Server::start_with(ServerOptions {
        env: vec![("CARECALL_CONFIG".into(), config.display().to_string())],
        json_log: true,
        ..ServerOptions::default()
    });
    let (_, token) = add_home(&server, "Rose Court");
    let driver = Driver::start().await;
    let dr = console(&driver, &server, "dr.one", "clinician").await;
    let home = driver.browser().await;
    call_the_hub(&home, &format!("{}/home?t={token}", server.base_url)).await;
    click(&dr, "#queue button.answer").await;
    home.until(
        "return location.pathname === '/join' && !!(window.carecall && window.carecall.call);",
        Duration::from_secs(20),
        "the home in the call",
    )
    .await;
    wait_for(&dr, "#call-frame", 5).await;
    dr.client.enter_frame(0).await.expect("into the call");
    wait_all_decoding(&[&home, &dr], 1, Duration::from_secs(30)).await;

    // Who it is about: a wrong check digit is refused, then the right one.
    dr.client
        .enter_parent_frame()
        .await
        .expect("out of the call");
    type_into(&dr, "#resident-form input[name=nhs_number]", "943 476 5918").await;
    type_into(&dr, "#resident-form input[name=name]", NAME).await;
    dr.eval(&format!(
        "document.querySelector('#resident-form input[name=birth_date]').value = '{BORN}'; return null;"
    ))
    .await;
    click(&dr, "#resident-form button").await;
    dr.until(
        "return document.getElementById('resident-problem').textContent.includes('check digit');",
        Duration::from_secs(10),
        "the wrong NHS number refused",
    )
    .await;
    type_into(&dr, "#resident-form input[name=nhs_number]", "943 476 5919").await;
    click(&dr, "#resident-form button").await;
    wait_for(&dr, "#resident-list li[data-encounter] button.outcome", 10).await;
    assert_accessible(&dr, "the console with a resident attached").await;

    // Consent, then a short recording, finished before the outcome.
    dr.client.enter_frame(0).await.expect("into the call");
    start_recording(&dr).await;
    home.until(
        "return !document.getElementById('recording-indicator').hidden;",
        Duration::from_secs(10),
        "recording shown to the home",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    dr.client
        .find(Locator::Css("#record-button"))
        .await
        .expect("Stop recording")
        .click()
        .await
        .expect("stop");
    home.until(
        "return document.getElementById('recording-indicator').hidden;",
        Duration::from_secs(10),
        "recording stopped",
    )
    .await;
    let ready = event(&events, "recording.ready").await;
    let recording = ready["data"]["recording"].as_str().unwrap().to_owned();
    let started = event(&events, "recording.started").await;
    assert_eq!(started["data"]["consent"]["given"], true, "{started}");

    // The outcome and the care plan, in the console's short form.
    dr.client
        .enter_parent_frame()
        .await
        .expect("out of the call");
    click(&dr, "#resident-list button.outcome").await;
    wait_for(&dr, "#outcome-form:not([hidden])", 5).await;
    choose(
        &dr,
        "#outcome-form select[name=disposition]",
        "managed-in-home",
    )
    .await;
    click(&dr, "#outcome-form input[name=conveyance_avoided]").await;
    click(&dr, "#outcome-form input[name=restore2_used]").await;
    type_into(&dr, "#outcome-form input[name=news2]", "3").await;
    choose(&dr, "#outcome-form select[name=respect]", "in-place").await;
    type_into(
        &dr,
        "#outcome-form textarea[name=note]",
        "Chest clear; temperature 37.9.",
    )
    .await;
    type_into(
        &dr,
        "#outcome-form textarea[name=plan]",
        "Encourage fluids; paracetamol as charted.",
    )
    .await;
    type_into(&dr, "#outcome-form input[name=what]", "Check temperature").await;
    type_into(&dr, "#outcome-form input[name=when]", "every 4 hours").await;
    assert_accessible(&dr, "the console's outcome form").await;
    click(&dr, "#outcome-form button[type=submit]").await;
    dr.until(
        "return document.getElementById('resident-problem').textContent.startsWith('Outcome saved');",
        Duration::from_secs(10),
        "the outcome saved",
    )
    .await;

    // The home leaves, and its page shows the plan.
    home.client
        .find(Locator::Css("#leave-button"))
        .await
        .expect("Leave")
        .click()
        .await
        .expect("leave");
    let back = wait_for(&home, "#home-page-link:not([hidden]) a", 10).await;
    back.click().await.expect("back to the home's page");
    home.until(
        "return !document.getElementById('plans').hidden;",
        Duration::from_secs(10),
        "the care plan on the home's page",
    )
    .await;
    let plan = home
        .eval("return document.getElementById('plan-list').textContent;")
        .await;
    let plan = plan.as_str().unwrap_or_default();
    assert!(
        plan.contains("Encourage fluids") && plan.contains("Check temperature: every 4 hours"),
        "{plan}"
    );
    assert!(
        !plan.contains(NAME) && !plan.contains(NHS_NUMBER),
        "identifiers on the home's page: {plan}"
    );
    assert_accessible(&home, "the home's page with a care plan").await;

    // The hooks: encounter.completed, and its FHIR Bundle.
    let completed = event(&events, "encounter.completed").await;
    let data = &completed["data"];
    assert_eq!(data["resident"]["nhs_number"], NHS_NUMBER);
    assert_eq!(data["outcome"]["disposition"], "managed-in-home");
    assert_eq!(data["outcome"]["news2"], 3);
    let bundles = events.fhir_resources("Bundle");
    let (content_type, bundle) = bundles
        .iter()
        .find(|(_, b)| b["entry"][0]["resource"]["resourceType"] == "Patient")
        .expect("a Bundle for the encounter")
        .clone();
    assert_eq!(content_type, "application/fhir+json");
    assert_eq!(
        carecall_admin::hooks::bundle_problems(&bundle),
        Vec::<String>::new()
    );
    let entries = bundle["entry"].as_array().unwrap();
    let full_url = |kind: &str| {
        entries
            .iter()
            .find(|e| e["resource"]["resourceType"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {bundle}"))
    };
    let patient = full_url("Patient");
    assert_eq!(
        patient["resource"]["identifier"][0],
        json!({ "system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS_NUMBER })
    );
    let encounter = &full_url("Encounter")["resource"];
    assert_eq!(encounter["reasonCode"][0]["text"], "chest pain since lunch");
    let subject = &encounter["subject"]["reference"];
    assert_eq!(
        subject, &patient["fullUrl"],
        "Encounter.subject is the Patient"
    );
    let document = full_url("DocumentReference");
    assert_eq!(
        document["resource"]["identifier"][0]["value"],
        recording.as_str()
    );
    assert_eq!(
        &document["resource"]["subject"]["reference"], subject,
        "the recording's subject is the same Patient"
    );

    // No identifier in plain text in the database, its log, the server's
    // log or /metrics.
    let mut places = vec![
        (
            "/metrics".to_owned(),
            scrape(&server.base_url).await.into_bytes(),
        ),
        ("the log".into(), std::fs::read(server.log_path()).unwrap()),
    ];
    for file in ["carecall.db", "carecall.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir.path().join(file)) {
            places.push((file.into(), bytes));
        }
    }
    for (place, bytes) in &places {
        for secret in [NHS_NUMBER, NAME, BORN, "Chest clear"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} in {place} in plain text"
            );
        }
    }

    // The audit trail holds each look and change made here.
    let admin = account(&server, "hub.admin", "admin").await;
    let (code, trail) = get_as(&server, &admin, "/admin/api/audit").await;
    assert_eq!(code, 200, "{trail}");
    let actions: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["account"].as_str().unwrap_or(""),
            )
        })
        .collect();
    println!("audit trail: {actions:?}");
    for action in ["resident.attached", "residents.viewed", "outcome.recorded"] {
        assert!(
            actions.contains(&(action, "dr.one")),
            "{action} not in {actions:?}"
        );
    }
    home.close().await;
    dr.close().await;
}
