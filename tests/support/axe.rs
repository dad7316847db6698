//! axe-core, the accessibility engine, run on a page in a test's browser with
//! the WCAG 2.0, 2.1 and 2.2 A and AA rules. The pinned package comes from
//! the npm registry (`tests/axe/package.json` and its lock; `tests/run.sh`
//! runs `npm ci` there) and is never copied into the tree.

use std::sync::OnceLock;

use serde_json::Value;

use super::browser::Browser;

/// The rule tags run: WCAG 2.0, 2.1 and 2.2, levels A and AA.
const WCAG_AA: &[&str] = &[
    "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa",
];

/// axe-core's browser build, read once per test process.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/axe/node_modules/axe-core/axe.min.js"
        );
        std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; install it with `npm ci` in tests/axe (tests/run.sh does)")
        })
    })
}

/// The page's WCAG A and AA violations now: for each, the rule, its impact,
/// and the first few offending elements with axe's summary of what to fix.
pub async fn violations(b: &Browser) -> Vec<String> {
    let loaded = b.eval("return typeof window.axe === 'object';").await;
    if loaded != Value::Bool(true) {
        b.eval(&format!("{};\nreturn null;", axe_source())).await;
    }
    let found = b
        .client
        .execute_async(
            "const [tags, done] = arguments;
             axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
               .then((r) => done(r.violations.map((v) => `${v.id} (${v.impact}): ${v.help}; ` +
                 v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`).join(' | '))),
                     (e) => done([`axe failed: ${e}`]));",
            vec![serde_json::json!(WCAG_AA)],
        )
        .await
        .expect("axe script runs");
    serde_json::from_value(found).unwrap_or_else(|_| vec!["axe returned nothing".into()])
}

/// Fails the test if the page, in the state named `state`, has any WCAG A or
/// AA violation.
pub async fn assert_accessible(b: &Browser, state: &str) {
    let found = violations(b).await;
    assert!(
        found.is_empty(),
        "{state}: {} WCAG violations:\n{}",
        found.len(),
        found.join("\n")
    );
    println!("{state}: no WCAG A/AA violations");
}
