//! Signing in to the admin plane of a test server.

use super::http::{request, Reply};
use super::Server;

/// Posts a sign-in; returns the reply as it came.
pub async fn sign_in(server: &Server, name: &str, password: &str) -> Reply {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    request(&server.base_url, "POST", "/admin/login", &[], Some(&body)).await
}

/// Creates an account and signs in; returns the `Cookie` header value and
/// the session's CSRF token.
pub async fn session(server: &Server) -> (String, String) {
    let password = "a long hub password";
    let added = server.add_admin("hub.admin", password);
    assert!(added.status.success(), "{added:?}");
    signed_in(&sign_in(server, "hub.admin", password).await)
}

/// From a successful sign-in's reply: the `Cookie` header value and the
/// session's CSRF token.
pub fn signed_in(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.header("set-cookie").expect("session cookie");
    let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    let csrf = body["csrf"].as_str().expect("csrf token").to_owned();
    (cookie, csrf)
}

/// Opens `/admin` in `b`, is sent to the sign-in page, and signs in through
/// its form.
pub async fn sign_in_with_the_form(
    b: &super::browser::Browser,
    base_url: &str,
    name: &str,
    password: &str,
) {
    use fantoccini::Locator;
    let c = &b.client;
    c.goto(&format!("{base_url}/admin"))
        .await
        .expect("open /admin");
    let url = c.current_url().await.expect("url");
    assert!(url.path() == "/admin/login", "not sent to sign in: {url}");
    for (field, text) in [("name", name), ("password", password)] {
        c.find(Locator::Css(&format!("input[name={field}]")))
            .await
            .expect("sign-in field")
            .send_keys(text)
            .await
            .expect("type");
    }
    c.find(Locator::Css("button[type=submit]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
}
