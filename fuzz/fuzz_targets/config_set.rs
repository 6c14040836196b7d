#![no_main]
//! Config keys and values, and URL rules, on arbitrary strings: no panic; a rejected value
//! leaves the builder unchanged; an accepted URL is https or loopback http.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    let mut builder = lwolf_auth::Config::builder().client_id("id").client_secret("s");
    let before = format!("{builder:?}");
    if builder.set(key, value).is_err() {
        assert_eq!(before, format!("{builder:?}"));
    }
    let _ = builder.build();
    for url_key in ["token_url", "api_base_url"] {
        let mut b = lwolf_auth::Config::builder().client_id("id").client_secret("s");
        b.set(url_key, value).unwrap();
        if let Ok(config) = b.build() {
            let url = if url_key == "token_url" { config.token_url() } else { config.api_base_url() };
            let lower = url.to_ascii_lowercase();
            assert!(lower.starts_with("https://") || lower.starts_with("http://"));
        }
    }
});
