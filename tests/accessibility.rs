//! The call page for everyone who meets it: by keyboard alone with a visible
//! focus ring, on tablet and phone screens with every control big enough to
//! tap and no text hidden, and heard through a screen reader's live region.
//! axe-core's WCAG checks run inside the tests that reach each page and state.

use std::time::Duration;

use fantoccini::Locator;

use crate::support::axe::{assert_accessible, violations};
use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding;
use crate::support::Server;

const TAB: &str = "\u{E004}";
const SHIFT_TAB: &str = "\u{E008}\u{E004}";
const ENTER: &str = "\u{E007}";
const SPACE: &str = " ";

/// Presses `keys` on whatever has the focus.
async fn press(b: &Browser, keys: &str) {
    let focused = b.client.active_element().await.expect("a focused element");
    focused.send_keys(keys).await.expect("keys");
}

/// The focused element's id (or tag), and whether it shows a focus ring of
/// at least 2 px.
async fn focused(b: &Browser) -> (String, bool) {
    let v = b
        .eval(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return [e.id || e.tagName, s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2];",
        )
        .await;
    (
        v[0].as_str().unwrap_or("").to_owned(),
        v[1].as_bool().unwrap_or(false),
    )
}

/// Presses Tab (at most 10 times) until `id` has the focus; every element
/// passed on the way must show its focus ring.
async fn tab_to(b: &Browser, id: &str) {
    let mut path = Vec::new();
    for _ in 0..10 {
        press(b, TAB).await;
        let (now, ring) = focused(b).await;
        assert!(
            ring || now == "BODY",
            "{now} has the focus but no visible ring"
        );
        path.push(now.clone());
        if now == id {
            return;
        }
    }
    panic!("Tab never reached #{id}: {path:?}");
}

async fn pressed(b: &Browser, id: &str) -> String {
    let v = b
        .eval(&format!(
            "return document.getElementById('{id}').getAttribute('aria-pressed');"
        ))
        .await;
    v.as_str().unwrap_or("").to_owned()
}

/// How long a page may take to show what a key or a click did.
const SHOWN_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_joins_mutes_turns_the_camera_off_unmutes_and_leaves_by_keyboard_alone() {
    let server = Server::start();
    let driver = Driver::start().await;
    let home = driver.browser().await;
    home.open_join_page(&server.link("keys-1", "home", "Rose Court", "1h"))
        .await;
    assert_accessible(&home, "the home's join screen").await;
    tab_to(&home, "join-button").await;
    press(&home, ENTER).await;
    home.until(
        "return !!(window.carecall.call && window.carecall.call.participant);",
        SHOWN_WITHIN,
        "joined by Enter",
    )
    .await;

    tab_to(&home, "mute-button").await;
    press(&home, SPACE).await;
    assert_eq!(
        pressed(&home, "mute-button").await,
        "true",
        "muted by Space"
    );
    tab_to(&home, "camera-button").await;
    press(&home, ENTER).await;
    assert_eq!(
        pressed(&home, "camera-button").await,
        "true",
        "camera off by Enter"
    );
    press(&home, SHIFT_TAB).await;
    assert_eq!(focused(&home).await, ("mute-button".into(), true));
    press(&home, SPACE).await;
    assert_eq!(pressed(&home, "mute-button").await, "false", "unmuted");
    let tracks = home
        .eval(
            "return window.carecall.call.localStream.getTracks().map((t) => [t.kind, t.enabled]);",
        )
        .await;
    assert_eq!(
        tracks,
        serde_json::json!([["audio", true], ["video", false]])
    );
    tab_to(&home, "leave-button").await;
    press(&home, ENTER).await;
    home.until(
        "return !document.getElementById('ended').hidden;",
        SHOWN_WITHIN,
        "left by Enter",
    )
    .await;
    assert_accessible(&home, "the ended screen").await;
    // The check can fail: a list without a label, planted, is found.
    home.eval("document.body.append(document.createElement('select')); return null;")
        .await;
    let found = violations(&home).await;
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("select-name (critical)")),
        "axe misses an unlabelled list: {found:?}"
    );
    home.close().await;
}

/// Sizes the window so that the page itself (the viewport) is `w`x`h`.
async fn set_viewport(b: &Browser, w: u32, h: u32) {
    b.client.set_window_size(w, h).await.expect("window size");
    let inner = b.eval("return [innerWidth, innerHeight];").await;
    let extra = |i: usize, want: u32| want.saturating_sub(inner[i].as_u64().unwrap_or(0) as u32);
    let (dw, dh) = (extra(0, w), extra(1, h));
    if dw > 0 || dh > 0 {
        b.client
            .set_window_size(w + dw, h + dh)
            .await
            .expect("window size");
    }
}

/// Screen sizes a care home or hub meets: two tablets each way up, a wide
/// Android tablet and a phone.
const SIZES: [(u32, u32); 4] = [(1024, 768), (768, 1024), (1280, 800), (390, 844)];

/// What does not fit at this size: controls under 44x44 CSS px, text whose
/// centre is covered by another element, a page wider than the screen.
const LAYOUT_PROBLEMS: &str = "
  const bad = [];
  const shown = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && !e.closest('.visually-hidden'); };
  for (const e of document.querySelectorAll('button, select, input, a[href]')) {
    if (!shown(e)) continue;
    const r = e.getBoundingClientRect();
    if (r.width < 44 || r.height < 44) bad.push(`${e.id || e.textContent.trim()} is ${Math.round(r.width)}x${Math.round(r.height)}`);
  }
  for (const e of document.querySelectorAll('h1, h2, p, span, label, button, a')) {
    if (!shown(e) || !e.textContent.trim() || e.children.length && e.tagName !== 'BUTTON' && e.tagName !== 'LABEL') continue;
    e.scrollIntoView({ block: 'center', inline: 'center' });
    const r = e.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !(hit === e || e.contains(hit))) bad.push(`'${e.textContent.trim().slice(0, 30)}' is under ${hit ? (hit.id || hit.className || hit.tagName) : 'nothing'}`);
  }
  window.scrollTo(0, 0);
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) bad.push(`the page is ${root.scrollWidth} px wide on a ${root.clientWidth} px screen`);
  return bad;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_fits_tablets_and_a_phone_with_every_control_big_enough_and_no_text_hidden() {
    let server = Server::start();
    let driver = Driver::start().await;
    let home = driver.browser().await;
    home.join(&server.link("layout-1", "home", "Rose Court", "1h"))
        .await;
    let clinician = driver.browser().await;
    let join = clinician
        .open_join_page(&server.link("layout-1", "clinician", "Hub clinician", "1h"))
        .await;
    assert_accessible(&clinician, "the clinician's join screen").await;
    join.click().await.expect("Join");
    wait_all_decoding(&[&home, &clinician], 1, Duration::from_secs(30)).await;
    assert_accessible(&clinician, "the clinician's call").await;
    let shots = std::env::var_os("CARECALL_SCREENSHOTS");
    let mut problems = Vec::new();
    for (w, h) in SIZES {
        for b in [&home, &clinician] {
            set_viewport(b, w, h).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (who, b) in [("home", &home), ("clinician", &clinician)] {
            let inner = b.eval("return [innerWidth, innerHeight];").await;
            assert_eq!(inner, serde_json::json!([w, h]), "{who}'s viewport");
            let found: Vec<String> =
                serde_json::from_value(b.eval(LAYOUT_PROBLEMS).await).unwrap_or_default();
            println!("{who} at {w}x{h} (viewport {inner}): {found:?}");
            problems.extend(found.into_iter().map(|p| format!("{who} at {w}x{h}: {p}")));
            if let Some(dir) = &shots {
                let png = b.client.screenshot().await.expect("screenshot");
                let path = std::path::Path::new(dir).join(format!("call-{who}-{w}x{h}.png"));
                std::fs::write(&path, png).expect("write screenshot");
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    home.close().await;
    clinician.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_reader_hears_a_join_the_recording_and_a_reconnect() {
    let server = Server::start();
    let driver = Driver::start().await;
    let home = driver.browser().await;
    home.join(&server.link("heard-1", "home", "Rose Court", "1h"))
        .await;
    home.until(
        "return !!(window.carecall.call && window.carecall.call.participant);",
        SHOWN_WITHIN,
        "the home joined",
    )
    .await;
    let regions = home
        .eval(
            "window.heard = [];
             const regions = document.querySelectorAll('[aria-live=polite], [role=status], [role=log]');
             new MutationObserver((changes) => {
               for (const c of changes) for (const n of c.addedNodes) window.heard.push(n.textContent.trim());
             }).observe(regions[0], { childList: true, subtree: true });
             return regions.length;",
        )
        .await;
    assert_eq!(regions, 1, "one polite live region");
    let clinician = driver.browser().await;
    clinician
        .join(&server.link("heard-1", "clinician", "Hub clinician", "1h"))
        .await;
    wait_all_decoding(&[&home, &clinician], 1, Duration::from_secs(30)).await;
    let record = clinician
        .client
        .find(Locator::Css("#record-button"))
        .await
        .expect("Record");
    record.click().await.expect("Record");
    home.until(
        "return !document.getElementById('recording-indicator').hidden;",
        SHOWN_WITHIN,
        "recording shown",
    )
    .await;
    assert_accessible(
        &home,
        "the home's call with the recording sign and a banner",
    )
    .await;
    record.click().await.expect("Stop recording");
    home.until(
        "return document.getElementById('recording-indicator').hidden;",
        SHOWN_WITHIN,
        "recording stopped",
    )
    .await;
    server.drop_connections();
    home.until(
        "return window.heard.includes('Reconnected.');",
        SHOWN_WITHIN,
        "a reconnect heard",
    )
    .await;
    let heard = home.eval("return window.heard;").await;
    println!("the home's screen reader heard: {heard}");
    let heard: Vec<String> = serde_json::from_value(heard).unwrap();
    for said in [
        "Hub clinician joined the call.",
        "Hub clinician started recording this call.",
        "Recording stopped.",
        "The connection dropped. Reconnecting.",
        "Reconnected.",
    ] {
        assert!(
            heard.iter().any(|h| h == said),
            "{said:?} not in what was heard: {heard:?}"
        );
    }
    home.close().await;
    clinician.close().await;
}
