//! The admin plane's doors, on a real server: every admin route refuses
//! without a session (the test walks the router's own list, so a new route
//! cannot be left open), wrong passwords are rate-limited, the session cookie
//! is HttpOnly and SameSite=Strict, and a state-changing request without the
//! session's CSRF token is refused.

use crate::support::admin::{session, sign_in, signed_in};
use crate::support::http::{get_with, request};
use crate::support::Server;
use serde_json::Value;

const PASSWORD: &str = "a long hub password";

#[tokio::test]
async fn every_admin_route_refuses_without_a_session() {
    let server = Server::start();
    let routes = carecall_admin::protected_routes();
    assert!(routes.len() >= 4, "{routes:?}");
    for (method, path, _) in &routes {
        let reply = request(&server.base_url, method.as_str(), path, &[], Some("{}")).await;
        let refused = match reply.status {
            401 => true,
            303 => reply.header("location") == Some("/admin/login"),
            _ => false,
        };
        assert!(refused, "{method} {path} without a session: {reply:?}");
        // A forged cookie is no better.
        let forged = [("Cookie", "carecall_admin=forged")];
        let reply = request(&server.base_url, method.as_str(), path, &forged, Some("{}")).await;
        assert!(
            matches!(reply.status, 401 | 303),
            "{method} {path} with a forged cookie: {reply:?}"
        );
    }
    println!("{} admin routes refuse without a session", routes.len());
}

#[tokio::test]
async fn hub_staff_are_kept_out_of_every_admin_route() {
    let server = Server::start();
    let added = server.add_account("op.one", PASSWORD, "operator");
    assert!(added.status.success(), "{added:?}");
    let reply = sign_in(&server, "op.one", PASSWORD).await;
    let (cookie, csrf) = signed_in(&reply);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["role"], "operator");
    let headers = [("Cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let mut admin_only = 0;
    for (method, path, who) in carecall_admin::protected_routes() {
        if who != carecall_admin::Who::Admin {
            continue;
        }
        admin_only += 1;
        let reply = request(
            &server.base_url,
            method.as_str(),
            path,
            &headers,
            Some("{}"),
        )
        .await;
        let kept_out = match reply.status {
            403 => reply.body.contains("needs an admin account"),
            303 => reply.header("location") == Some("/admin/hub"),
            _ => false,
        };
        assert!(kept_out, "{method} {path} as an operator: {reply:?}");
    }
    assert!(admin_only >= 10, "{admin_only} admin-only routes");
    let console = request(&server.base_url, "GET", "/admin/hub", &headers, None).await;
    assert_eq!(console.status, 200, "the operator's own console");
    assert!(console.body.contains("Hub console"), "{console:?}");
    println!("{admin_only} admin-only routes refuse an operator");
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_writes_need_the_csrf_token() {
    let server = Server::start();
    let added = server.add_admin("hub.admin", PASSWORD);
    assert!(added.status.success(), "{added:?}");
    let twice = server.add_admin("hub.admin", PASSWORD);
    assert!(!twice.status.success(), "a second account of the same name");

    let reply = sign_in(&server, "hub.admin", PASSWORD).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: not Secure");
    let session = cookie.split(';').next().unwrap().to_owned();
    let csrf = serde_json::from_str::<Value>(&reply.body).unwrap()["csrf"]
        .as_str()
        .expect("csrf token")
        .to_owned();

    let with_cookie = [("Cookie", session.as_str())];
    let me = get_with(&server.base_url, "/admin/api/session", &with_cookie).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert!(me.body.contains("hub.admin"));
    let page = request(&server.base_url, "GET", "/admin", &with_cookie, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Live calls"));
    let rooms = get_with(&server.base_url, "/admin/api/rooms", &with_cookie).await;
    assert_eq!((rooms.status, rooms.body.trim()), (200, "[]"));

    // A POST without the CSRF token, or with another, is refused.
    let out = request(
        &server.base_url,
        "POST",
        "/admin/logout",
        &with_cookie,
        None,
    )
    .await;
    assert_eq!(out.status, 403, "{out:?}");
    let wrong = [("Cookie", session.as_str()), ("x-csrf-token", "guess")];
    let out = request(&server.base_url, "POST", "/admin/logout", &wrong, None).await;
    assert_eq!(out.status, 403, "{out:?}");
    // With it, the session ends.
    let right = [
        ("Cookie", session.as_str()),
        ("x-csrf-token", csrf.as_str()),
    ];
    let out = request(&server.base_url, "POST", "/admin/logout", &right, None).await;
    assert_eq!(out.status, 200, "{out:?}");
    let me = get_with(&server.base_url, "/admin/api/session", &with_cookie).await;
    assert_eq!(me.status, 401, "signed out: {me:?}");
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited() {
    let server = Server::start();
    assert!(server.add_admin("hub.admin", PASSWORD).status.success());
    for attempt in 1..=5 {
        let reply = sign_in(&server, "hub.admin", "not the password").await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {reply:?}");
    }
    // The sixth is refused before the password is even checked, and so is
    // the right password now.
    let reply = sign_in(&server, "hub.admin", "not the password").await;
    assert_eq!(reply.status, 429, "{reply:?}");
    assert!(reply.header("retry-after").is_some());
    let reply = sign_in(&server, "hub.admin", PASSWORD).await;
    assert_eq!(reply.status, 429, "locked out for a while: {reply:?}");
    // An unknown account gets the same answer as a wrong password.
    let reply = sign_in(&server, "nobody", PASSWORD).await;
    assert_eq!(reply.status, 429, "same address, still limited: {reply:?}");
}

#[tokio::test]
async fn a_link_made_on_the_dashboard_opens_the_join_page() {
    let server = Server::start();
    let (cookie, csrf) = session(&server).await;
    let ask = |hours: u64| {
        serde_json::json!({"room": "ward-4", "role": "home", "name": "Rose Court", "hours": hours})
            .to_string()
    };
    let no_csrf = [("Cookie", cookie.as_str())];
    let reply = request(
        &server.base_url,
        "POST",
        "/admin/api/links",
        &no_csrf,
        Some(&ask(2)),
    )
    .await;
    assert_eq!(reply.status, 403, "without the CSRF token: {reply:?}");
    let headers = [("Cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let reply = request(
        &server.base_url,
        "POST",
        "/admin/api/links",
        &headers,
        Some(&ask(0)),
    )
    .await;
    assert_eq!(reply.status, 400, "a link that lasts no time: {reply:?}");
    let reply = request(
        &server.base_url,
        "POST",
        "/admin/api/links",
        &headers,
        Some(&ask(2)),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    let link = body["link"].as_str().expect("a link");
    let path = link.strip_prefix(&server.base_url).expect("on this hub");
    assert!(path.starts_with("/join?t="), "{link}");
    let page = request(&server.base_url, "GET", path, &[], None).await;
    assert_eq!(page.status, 200, "the link opens the join page: {page:?}");
}

#[tokio::test]
async fn an_account_changed_from_the_shell_is_signed_out_at_once() {
    let server = Server::start();
    let (cookie, _) = session(&server).await;
    let with_cookie = [("Cookie", cookie.as_str())];
    let me = || {
        request(
            &server.base_url,
            "GET",
            "/admin/api/session",
            &with_cookie,
            None,
        )
    };
    assert_eq!(me().await.status, 200);
    let run = |args: &[&str], stdin: &str| {
        let out = server.admin_command(args, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = run(&["sessions", "hub.admin"], "");
    assert!(listed.starts_with("1 session(s)"), "{listed}");

    run(&["disable", "hub.admin"], "");
    assert_eq!(me().await.status, 401, "a disabled account's session ends");
    let password = "a long hub password";
    assert_eq!(sign_in(&server, "hub.admin", password).await.status, 401);
    run(&["enable", "hub.admin"], "");
    let (cookie, _) = signed_in(&sign_in(&server, "hub.admin", password).await);

    run(&["passwd", "hub.admin"], "a brand new password\n");
    let again = [("Cookie", cookie.as_str())];
    let old = request(&server.base_url, "GET", "/admin/api/session", &again, None).await;
    assert_eq!(old.status, 401, "a new password ends the sessions");
    assert_eq!(sign_in(&server, "hub.admin", password).await.status, 401);
    let (cookie, _) = signed_in(&sign_in(&server, "hub.admin", "a brand new password").await);
    let ended = run(&["sessions", "hub.admin", "--end"], "");
    assert!(
        ended.starts_with("1 session(s) of hub.admin ended"),
        "{ended}"
    );
    let now = [("Cookie", cookie.as_str())];
    let gone = request(&server.base_url, "GET", "/admin/api/session", &now, None).await;
    assert_eq!(gone.status, 401);

    run(&["delete", "hub.admin"], "");
    let refused = sign_in(&server, "hub.admin", "a brand new password").await;
    assert_eq!(refused.status, 401);
    let missing = server.admin_command(&["disable", "hub.admin"], "");
    assert!(!missing.status.success(), "no such account");
}
