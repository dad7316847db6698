//! The call page for everyone who meets it: by keyboard alone with a visible
//! focus ring, on tablet and phone screens with every control big enough to
//! tap and no text hidden, and heard through a screen reader's live region.
//! axe-core's WCAG checks run inside the tests that reach each page and state.

use std::time::Duration;

use fantoccini::Locator;

use crate::support::axe::{assert_accessible, violations};
use crate::support::browser::{Browser, Driver};
use crate::support::calls::wait_all_decoding;
use crate::support::devtools::emulate_media_feature;
use crate::support::recording::answer_consent;
use crate::support::Server;

const TAB: &str = "\u{E004}";
const SHIFT_TAB: &str = "\u{E008}\u{E004}";
const ENTER: &str = "\u{E007}";
const SPACE: &str = " ";
const ARROW_DOWN: &str = "\u{E015}";

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
             return [e.id || e.name || e.tagName, s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2];",
        )
        .await;
    (
        v[0].as_str().unwrap_or("").to_owned(),
        v[1].as_bool().unwrap_or(false),
    )
}

/// Presses Tab (at most 20 times) until `id` (an id, else a form field's
/// name) has the focus; every element passed on the way must show its focus
/// ring.
async fn tab_to(b: &Browser, id: &str) {
    let mut path = Vec::new();
    for _ in 0..20 {
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
    home.client
        .goto(&format!("{}/join?t=not-a-link", server.base_url))
        .await
        .expect("open a damaged link");
    assert_accessible(&home, "the link problem page").await;
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
    // A refusal from the hub reaches the home in plain words, with what to
    // do; its code stays in the page's metrics for the helpdesk. (A message
    // of no known type ends the session.)
    let link = server.link("keys-1", "home", "Rose Court", "1h");
    home.join(&link).await;
    home.until(
        "return !!(window.carecall.call && window.carecall.call.participant);",
        SHOWN_WITHIN,
        "joined again",
    )
    .await;
    home.eval("window.carecall.call.send({ type: 'no-such-message' }); return null;")
        .await;
    home.until(
        "return !document.getElementById('ended').hidden;",
        SHOWN_WITHIN,
        "the session refused",
    )
    .await;
    assert_eq!(
        home.eval("return [document.getElementById('ended-message').textContent, window.carecall.metrics.errors];")
            .await,
        serde_json::json!([
            "Something went wrong with the call. Join it again; if this keeps happening, phone the hub.",
            ["unknown-type"]
        ])
    );
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

/// Sizes the window so that the page itself (the viewport) is `w`x`h`: the
/// window's frame takes what the page does not get, and a resize still
/// under way reads stale, so it measures again and corrects until the two
/// agree.
async fn set_viewport(b: &Browser, w: u32, h: u32) {
    let want = serde_json::json!([w, h]);
    let (mut window_w, mut window_h) = (i64::from(w), i64::from(h));
    let mut inner = serde_json::Value::Null;
    for _ in 0..10 {
        b.client
            .set_window_size(window_w.max(1) as u32, window_h.max(1) as u32)
            .await
            .expect("window size");
        for _ in 0..3 {
            inner = b.eval("return [innerWidth, innerHeight];").await;
            if inner == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let got = |i: usize| inner[i].as_i64().unwrap_or(0);
        window_w += i64::from(w) - got(0);
        window_h += i64::from(h) - got(1);
    }
    assert_eq!(inner, want, "the viewport");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_staff_sign_in_and_make_a_join_link_by_keyboard_alone() {
    let server = Server::start();
    let added = server.add_admin("hub.admin", "a long hub password");
    assert!(added.status.success(), "{added:?}");
    let driver = Driver::start().await;
    let admin = driver.browser().await;
    admin
        .client
        .goto(&format!("{}/admin/login", server.base_url))
        .await
        .expect("open the sign-in page");
    tab_to(&admin, "name").await;
    press(&admin, "hub.admin").await;
    tab_to(&admin, "password").await;
    press(&admin, &format!("a long hub password{ENTER}")).await;
    admin
        .until(
            "return location.pathname === '/admin' && !!document.querySelector('#link-form');",
            SHOWN_WITHIN,
            "signed in",
        )
        .await;
    tab_to(&admin, "room").await;
    press(&admin, "kbd-room").await;
    tab_to(&admin, "role").await;
    press(&admin, ARROW_DOWN).await;
    tab_to(&admin, "hours").await;
    press(&admin, ENTER).await;
    admin
        .until(
            "return document.getElementById('link-out').textContent.includes('/join?t=');",
            SHOWN_WITHIN,
            "a join link made",
        )
        .await;
    let role = admin
        .eval("return document.querySelector('#link-form select[name=role]').value;")
        .await;
    assert_eq!(role, "clinician", "the arrow key chose the next role");
    assert_accessible(&admin, "the dashboard with a link made").await;
    admin.close().await;
}

/// Screen sizes a care home or hub meets: two tablets each way up, a wide
/// Android tablet and a phone; then what a 1024x768 tablet shows at 200%
/// zoom (WCAG 1.4.4, text at 200%), and 320 CSS px wide, as 1280x1024 at
/// 400% zoom (WCAG 1.4.10, reflow).
const SIZES: [(u32, u32); 6] = [
    (1024, 768),
    (768, 1024),
    (1280, 800),
    (390, 844),
    (512, 384),
    (320, 256),
];

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

/// The page's layout problems at its present size, each prefixed with
/// `name` (the page, who and the size); with `CARECALL_SCREENSHOTS` set to a
/// directory, also a screenshot there named `name`.png.
async fn layout_problems(b: &Browser, name: &str) -> Vec<String> {
    let inner = b.eval("return [innerWidth, innerHeight];").await;
    let found: Vec<String> =
        serde_json::from_value(b.eval(LAYOUT_PROBLEMS).await).unwrap_or_default();
    println!("{name} (viewport {inner}): {found:?}");
    if let Some(dir) = std::env::var_os("CARECALL_SCREENSHOTS") {
        let png = b.client.screenshot().await.expect("screenshot");
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
    }
    found.into_iter().map(|p| format!("{name}: {p}")).collect()
}

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
    let mut problems = Vec::new();
    for (w, h) in SIZES {
        set_viewport(&clinician, w, h).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        problems.extend(layout_problems(&clinician, &format!("join-clinician-{w}x{h}")).await);
    }
    join.click().await.expect("Join");
    wait_all_decoding(&[&home, &clinician], 1, Duration::from_secs(30)).await;
    assert_accessible(&clinician, "the clinician's call").await;
    for (w, h) in SIZES {
        for b in [&home, &clinician] {
            set_viewport(b, w, h).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (who, b) in [("home", &home), ("clinician", &clinician)] {
            problems.extend(layout_problems(b, &format!("call-{who}-{w}x{h}")).await);
        }
    }
    // High contrast: the system's colours replace the page's backgrounds,
    // so each control needs a border of its own to be seen as one.
    for (who, b) in [("home", &home), ("clinician", &clinician)] {
        set_viewport(b, 1024, 768).await;
        emulate_media_feature(b, "forced-colors", "active").await;
        let found: Vec<String> =
            serde_json::from_value(b.eval(UNBORDERED_CONTROLS).await).unwrap_or_default();
        println!("{who} in forced colours: {found:?}");
        problems.extend(
            found
                .into_iter()
                .map(|p| format!("{who} in forced colours: {p}")),
        );
        problems.extend(layout_problems(b, &format!("call-{who}-forced-colours")).await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    home.close().await;
    clinician.close().await;
}

/// In forced colours, the shown controls without a visible border.
const UNBORDERED_CONTROLS: &str = "
  if (!matchMedia('(forced-colors: active)').matches) return ['forced colours are not on'];
  const bad = [];
  for (const e of document.querySelectorAll('button, select')) {
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const s = getComputedStyle(e);
    if (s.borderTopStyle === 'none' || parseFloat(s.borderTopWidth) < 1) bad.push(`${e.id || e.textContent.trim()} has no border`);
  }
  return bad;";

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
    clinician
        .until(
            "return !document.getElementById('consent-prompt').hidden;",
            SHOWN_WITHIN,
            "the consent question",
        )
        .await;
    assert_accessible(&clinician, "the clinician's call asking for consent").await;
    answer_consent(&clinician, "#consent-given").await;
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
