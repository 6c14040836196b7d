#![no_main]
//! The token-response parser on arbitrary bodies: no panic, and what it accepts obeys the
//! contract (a non-empty token, a positive lifetime).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(r) = lwolf_auth::unversioned::parse_token_response(body, std::time::SystemTime::now()) {
        assert!(!r.access_token.expose().is_empty());
        assert!(r.lifetime > std::time::Duration::ZERO);
    }
});
