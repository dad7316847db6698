//! Chromium's DevTools commands sent through chromedriver, for what WebDriver
//! itself cannot ask: emulating a media feature such as forced colours.

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

use super::browser::Browser;

/// chromedriver's `goog/cdp/execute` endpoint: one DevTools method and its
/// parameters.
#[derive(Debug)]
struct DevTools {
    method: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Makes the page see a CSS media feature as `value` (for example
/// `forced-colors` as `active`), as the user's system setting would.
pub async fn emulate_media_feature(b: &Browser, name: &str, value: &str) {
    b.client
        .issue_cmd(DevTools {
            method: "Emulation.setEmulatedMedia",
            params: json!({ "features": [{ "name": name, "value": value }] }),
        })
        .await
        .unwrap_or_else(|e| panic!("emulate {name}: {value}: {e}"));
}
