//! Driving the hub's pages in a browser: the console of a signed-in hub
//! account, and a care home's "Call the hub" page.

use std::time::Duration;

use fantoccini::Locator;

use super::admin::sign_in_with_the_form;
use super::browser::{Browser, Driver};
use super::Server;

const PASSWORD: &str = "a long hub staff password";

/// Waits for `css` in `b`'s current frame, up to `secs`.
pub async fn wait_for(b: &Browser, css: &str, secs: u64) -> fantoccini::elements::Element {
    b.client
        .wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear in {secs} s: {e}"))
}

/// Clicks `css` once it is there (found and clicked in one step: the
/// console redraws its lists on every push).
pub async fn click(b: &Browser, css: &str) {
    let script = format!(
        "const e = document.querySelector({css:?}); if (!e || e.disabled) return false; e.click(); return true;"
    );
    b.until(&script, Duration::from_secs(20), &format!("click {css}"))
        .await;
}

/// A hub account signed in through the form and sent to the console, whose
/// live connection is up.
pub async fn console(driver: &Driver, server: &Server, name: &str, role: &str) -> Browser {
    let added = server.add_account(name, PASSWORD, role);
    assert!(added.status.success(), "{added:?}");
    let b = driver.browser().await;
    sign_in_with_the_form(&b, &server.base_url, name, PASSWORD).await;
    let live = "return location.pathname === '/admin/hub' \
                && document.getElementById('live').textContent === 'live';";
    b.until(live, Duration::from_secs(20), &format!("{name}'s console"))
        .await;
    b
}

/// Chooses `value` in the `<select>` `css`.
pub async fn choose(b: &Browser, css: &str, value: &str) {
    let script = format!(
        "const s = document.querySelector('{css}'); s.value = '{value}'; return s.value === '{value}';"
    );
    b.until(
        &script,
        Duration::from_secs(20),
        &format!("{value} offered in {css}"),
    )
    .await;
}

/// The home's page: places a call about chest pain, with a reason.
pub async fn call_the_hub(b: &Browser, link: &str) {
    b.open(link, "open the home's link").await;
    choose(b, "#category", "Chest pain").await;
    let reason = wait_for(b, "#reason", 20).await;
    reason.send_keys("chest pain since lunch").await.unwrap();
    wait_for(b, "#initials", 5)
        .await
        .send_keys("MB")
        .await
        .unwrap();
    click(b, "input[value=urgent]").await;
    click(b, "#call-button").await;
}
