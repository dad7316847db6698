//! The JSON bodies anyone may post: the check page's offer and result, and
//! a care home's call.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let offer = carecall_admin::fuzzing::check_offer(data);
    let call = carecall_admin::fuzzing::home_call(data);
    if let Some(verdict) = carecall_admin::fuzzing::check_result(data) {
        assert!(verdict.contains("headline"), "{verdict}");
    }
    std::hint::black_box((offer, call));
});
