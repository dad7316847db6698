//! The hub's call queue as a test drives it: homes added with `carecall
//! home add`, calls placed and followed with the home's link, accounts
//! signed in to answer.

use std::process::Command;

use serde_json::{json, Value};

use super::admin::sign_in;
use super::http::request;
use super::{binary, Server};

/// `carecall home add NAME` against the server's data directory: (id, token).
pub fn add_home(server: &Server, name: &str) -> (String, String) {
    let out = Command::new(binary())
        .args(["home", "add", name])
        .env("CARECALL_DATA_DIR", server.data_dir.path())
        .envs(server.data_dir.database_env())
        .env("CARECALL_PUBLIC_URL", &server.base_url)
        .output()
        .expect("carecall home add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let id = lines
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let link = lines.next().unwrap();
    assert!(
        link.starts_with(&format!("{}/home?t=", server.base_url)),
        "{link}"
    );
    (id, link.split_once("t=").unwrap().1.to_owned())
}

pub fn home_cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("home")
        .args(args)
        .env("CARECALL_DATA_DIR", server.data_dir.path())
        .envs(server.data_dir.database_env())
        .env("CARECALL_PUBLIC_URL", &server.base_url)
        .output()
        .expect("carecall home")
}

/// A request whose answer is JSON: (status, body).
pub async fn call_api(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let r = request(&server.base_url, method, path, headers, body).await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

pub async fn place_call(server: &Server, token: &str, urgent: bool) -> (u16, Value) {
    let body =
        json!({ "token": token, "urgent": urgent, "reason": "fall", "initials": "JS" }).to_string();
    call_api(server, "POST", "/home/api/calls", &[], Some(&body)).await
}

pub async fn status(server: &Server, token: &str, call: i64) -> (u16, Value) {
    let path = format!("/home/api/calls/{call}?t={token}");
    call_api(server, "GET", &path, &[], None).await
}

/// An operator account signed in: (cookie, csrf).
pub async fn operator(server: &Server, name: &str) -> (String, String) {
    account(server, name, "operator").await
}

/// An account with `role` signed in: (cookie, csrf).
pub async fn account(server: &Server, name: &str, role: &str) -> (String, String) {
    let password = "a long hub staff password";
    let added = server.add_account(name, password, role);
    assert!(added.status.success(), "{added:?}");
    super::admin::signed_in(&sign_in(server, name, password).await)
}

/// A signed-in account's POST of `body` (JSON) to `path`.
pub async fn post_as(
    server: &Server,
    who: &(String, String),
    path: &str,
    body: Value,
) -> (u16, Value) {
    let headers = [("Cookie", who.0.as_str()), ("x-csrf-token", who.1.as_str())];
    call_api(server, "POST", path, &headers, Some(&body.to_string())).await
}

/// A signed-in account's GET of `path`.
pub async fn get_as(server: &Server, who: &(String, String), path: &str) -> (u16, Value) {
    call_api(server, "GET", path, &[("Cookie", who.0.as_str())], None).await
}

pub async fn answer(server: &Server, op: &(String, String), call: i64) -> (u16, Value) {
    let headers = [("Cookie", op.0.as_str()), ("x-csrf-token", op.1.as_str())];
    let path = format!("/admin/api/queue/{call}/answer");
    call_api(server, "POST", &path, &headers, Some("{}")).await
}

/// A call placed by a new home, Rose Court, and answered by a new
/// clinician, dr.one: what the records and photo tests start from.
pub struct AnsweredCall {
    /// The home's token.
    pub token: String,
    /// The hub call's id.
    pub call: i64,
    /// The clinician's session: (cookie, csrf).
    pub dr: (String, String),
    /// The answer's reply (its `join_url` is the clinician's link).
    pub answered: Value,
}

/// Places and answers an [`AnsweredCall`] on `server`.
pub async fn answered_call(server: &Server, urgent: bool) -> AnsweredCall {
    let (_, token) = add_home(server, "Rose Court");
    let (code, placed) = place_call(server, &token, urgent).await;
    assert_eq!(code, 201, "{placed}");
    let call = placed["call"].as_i64().unwrap();
    let dr = account(server, "dr.one", "clinician").await;
    let (code, answered) = answer(server, &dr, call).await;
    assert_eq!(code, 200, "{answered}");
    AnsweredCall {
        token,
        call,
        dr,
        answered,
    }
}

pub async fn queue(server: &Server, op: &(String, String)) -> Vec<Value> {
    let headers = [("Cookie", op.0.as_str())];
    let (code, body) = call_api(server, "GET", "/admin/api/queue", &headers, None).await;
    assert_eq!(code, 200, "{body}");
    body["queue"].as_array().unwrap().clone()
}
