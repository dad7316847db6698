//! Entry points for the fuzz targets in `fuzz/`: the JSON bodies anyone may
//! post without signing in (the connectivity check's offer and result, a
//! care home's call), read as the routes read them. Not part of the crate's
//! interface; built only with the `fuzzing` feature.

/// A `/check/api/offer` body: whether it was accepted.
pub fn check_offer(body: &[u8]) -> bool {
    serde_json::from_slice::<crate::check::CheckOffer>(body).is_ok()
}

/// A `/check/api/result` body and the verdict it is given, worded.
pub fn check_result(body: &[u8]) -> Option<String> {
    let result: crate::check::CheckResult = serde_json::from_slice(body).ok()?;
    let verdict = crate::check::verdict(&result);
    serde_json::to_string(&verdict).ok()
}

/// A `/home/api/calls` body: whether it was accepted.
pub fn home_call(body: &[u8]) -> bool {
    serde_json::from_slice::<crate::queue::CallRequest>(body).is_ok()
}
