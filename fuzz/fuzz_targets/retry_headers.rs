#![no_main]
//! `Retry-After` and `X-RateLimit-Reset` parsers on arbitrary values: no panic, bounded.

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let now = SystemTime::now();
    let _ = lwolf_auth::unversioned::parse_retry_after(value, now);
    if let Some(wait) = lwolf_auth::unversioned::parse_rate_limit_reset(value, now) {
        assert!(wait <= Duration::from_secs(1_000_000_000));
    }
});
