//! The admin dashboard in a real browser during a live call: an admin is sent
//! to the sign-in page, signs in through the form, and finds the call with
//! both participants, each with a quality badge and live figures. Then the
//! admin ends the call from the dashboard: both browsers say so, and the call
//! appears in the history with its worst quality and, opened, each
//! participant's quality samples.
//!
//! With `CARECALL_SCREENSHOT=FILE` the test also saves a screenshot of the
//! dashboard (the one in the README was made that way).

use std::time::{Duration, Instant};

use crate::support::admin::sign_in_with_the_form;
use crate::support::axe::assert_accessible;
use crate::support::browser::Driver;
use crate::support::calls::wait_all_decoding_hd;
use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_call_with_quality_badges() {
    let server = Server::start();
    let added = server.add_admin("hub.admin", "a long hub password");
    assert!(added.status.success(), "{added:?}");
    let driver = Driver::start().await;
    let home = driver.browser().await;
    home.join(&server.link("consult-5", "home", "Rose Court", "1h"))
        .await;
    let clinician = driver.browser().await;
    clinician
        .join(&server.link("consult-5", "clinician", "Hub clinician", "1h"))
        .await;
    wait_all_decoding_hd(&[&home, &clinician], 1, Duration::from_secs(60)).await;
    let mut ids = vec![
        home.participant().await.expect("home joined"),
        clinician.participant().await.expect("clinician joined"),
    ];
    ids.sort();

    let admin = driver.browser().await;
    let c = &admin.client;
    sign_in_with_the_form(&admin, &server.base_url, "hub.admin", "a long hub password").await;

    let rows_script = r#"
        return [...document.querySelectorAll('section.room[data-room="consult-5"] tr[data-participant]')]
          .map((tr) => ({
            participant: tr.dataset.participant,
            badge: tr.querySelector('.badge').className.replace('badge ', ''),
            cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
          }));
    "#;
    let start = Instant::now();
    let rows = loop {
        let rows = admin.eval(rows_script).await;
        let list = rows.as_array().cloned().unwrap_or_default();
        // A call on loopback loses nothing and waits for nothing: green.
        let green = list.iter().all(|r| r["badge"] == "green");
        if list.len() == 2 && green {
            break list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the dashboard does not show the call with green badges: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut shown: Vec<String> = rows
        .iter()
        .map(|r| r["participant"].as_str().unwrap_or("").to_owned())
        .collect();
    shown.sort();
    assert_eq!(shown, ids, "participants on the dashboard");
    assert_accessible(&admin, "the dashboard with a live call").await;
    for r in &rows {
        println!(
            "dashboard row: {} {} {}",
            r["participant"], r["badge"], r["cells"]
        );
        // Up and down kbit/s are live figures, not placeholders.
        let up: f64 = r["cells"][3].as_str().unwrap_or("").parse().unwrap_or(0.0);
        assert!(up > 0.0, "no upload figure: {r}");
    }
    if let Ok(path) = std::env::var("CARECALL_SCREENSHOT") {
        // Let the charts gather some points first.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
        println!("dashboard screenshot saved to {path}");
    }

    // At least one quality sample (every 5 s) before the call ends.
    tokio::time::sleep(carecall_admin::QUALITY_SAMPLE_EVERY + Duration::from_secs(1)).await;
    admin
        .eval(
            r#"window.confirm = () => true;
            document.querySelector('section.room[data-room="consult-5"] .end-call').click();"#,
        )
        .await;
    for who in [&home, &clinician] {
        let start = Instant::now();
        loop {
            let title = who
                .eval("return document.getElementById('ended-title').textContent;")
                .await;
            if title == "The call has ended" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the call did not end on a participant's screen: {title}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The history (reloaded) lists the call with its worst quality; its
    // details show each participant's samples.
    c.refresh().await.expect("reload the dashboard");
    let history_script = r#"
        const row = document.querySelector('#calls tr[data-call]');
        if (!row) return null;
        const cells = [...row.querySelectorAll('td')].map((td) => td.textContent);
        if (cells[0] === 'running') return null;
        row.querySelector('button').click();
        return cells;
    "#;
    let start = Instant::now();
    let cells = loop {
        let cells = admin.eval(history_script).await;
        if !cells.is_null() {
            break cells;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the ended call is not in the history"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("history row: {cells}");
    assert_eq!(cells[1], "consult-5");
    assert_eq!(
        cells[5], "green",
        "worst quality of a loopback call: {cells}"
    );
    let detail_script = r#"
        return [...document.querySelectorAll('#call-detail tr')].slice(1).map((tr) => ({
          cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
          points: tr.querySelector('polyline.up')?.getAttribute('points') ?? '',
        }));
    "#;
    let start = Instant::now();
    let sessions = loop {
        let rows = admin.eval(detail_script).await;
        if rows.as_array().is_some_and(|r| r.len() == 2) {
            break rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "call details not shown: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for s in sessions.as_array().expect("sessions") {
        println!("call detail: {s}");
        assert_eq!(s["cells"][4], "udp", "transport: {s}");
        let samples = s["points"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .count();
        assert!(samples >= 1, "no quality samples: {s}");
    }
    admin.close().await;
    home.close().await;
    clinician.close().await;
}
