//! The log callback through the C ABI (`examples-c/log.c`, at `LWOLF_LOG_TRACE`): a retry, a
//! token fetched, a refresh that fails while the token is kept, a refused cache directory,
//! each HTTP exchange; no secret or token in any record; nothing after it is switched off.

use lwolf_test_support::common;
use lwolf_test_support::ffi_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

#[test]
fn records_through_a_retry_a_failed_refresh_and_a_refused_cache_dir() {
    let program = ffi_support::make_examples(&["log"], "c-log").join("dynamic/log");
    // Token requests: a 503 (retried), a token valid 4 s, due at 1 s; its refresh fails
    // twice (the first attempt and its retry); then tokens again.
    let n = Arc::new(AtomicUsize::new(0));
    let tokens = {
        let n = Arc::clone(&n);
        Action::dynamic(move |_| match n.fetch_add(1, Ordering::SeqCst) {
            0 => Action::json(503, r#"{"error":"temporarily_unavailable"}"#),
            1 => Action::token(&format!("{TOKEN_MARK}log-1"), 4),
            2 | 3 => Action::json(500, r#"{"error":"server_error"}"#),
            k => Action::token(&format!("{TOKEN_MARK}log-{k}"), 3600),
        })
    };
    let server = Server::new(route(tokens, Action::json(200, "[]")));
    let dir = TempDir::new("log-callback");
    let cache_dir = dir.path().join("open-to-all");
    std::fs::create_dir(&cache_dir).unwrap();
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    let mut cmd = ffi_support::clean_command(&program);
    cmd.arg("2")
        .env("LWOLF_TOKEN_URL", server.token_url())
        .env("LWOLF_API_BASE_URL", server.url())
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_REFRESH_RATIO", "0.25")
        .env("LWOLF_MAX_RETRIES", "1")
        .env("LWOLF_RETRY_BASE_MS", "20")
        .env("LWOLF_RETRY_MAX_MS", "40")
        .env("LWOLF_CACHE_DIR", &cache_dir);
    let out = ffi_support::run(&mut cmd, secs(60));
    let stdout = ffi_support::expect_success(&out, "examples-c/log");
    eprintln!("{stdout}");
    assert_no_secret(&stdout);
    assert!(
        !stdout.contains(TOKEN_MARK),
        "a token in a record:\n{stdout}"
    );

    let has = |level: &str, parts: &[&str]| {
        stdout
            .lines()
            .any(|l| l.starts_with(level) && parts.iter().all(|p| l.contains(p)))
    };
    let url = server.token_url();
    for (level, parts) in [
        ("TRACE", vec![&*format!("POST {url}: 503")]),
        // At WARN: a host that logs at WARN must see a failing gateway.
        (
            "WARN",
            vec!["token request failed", "503", "retry 1 of 1 in"],
        ),
        ("INFO", vec!["fetched, lifetime 4s"]),
        (
            "TRACE",
            vec![&*format!("GET {}/v1/transactions: 200", server.url())],
        ),
        ("DEBUG", vec!["due for refresh"]),
        ("WARN", vec!["refresh failed", "still serving token"]),
        ("WARN", vec!["refusing the token cache directory", "777"]),
    ] {
        assert!(
            has(level, &parts),
            "no {level} record with {parts:?}:\n{stdout}"
        );
    }
    assert!(stdout.contains("records after off: 0"), "{stdout}");
    // Each record is one line, and names its level.
    for line in stdout
        .lines()
        .filter(|l| !l.starts_with("records after off"))
    {
        let level = line.split(' ').next().unwrap();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "{line}"
        );
    }
}

/// Levels as given to `lwolf_set_log_callback`: 0 sends none, above 5 is TRACE, NULL is off.
#[test]
fn max_level_zero_sends_nothing_and_above_trace_is_trace() {
    use lwolf_auth_ffi::{lwolf_set_log_callback, lwolf_status, LWOLF_LOG_TRACE};
    use std::ffi::{c_char, c_void, CStr};
    use std::sync::Mutex;
    static LEVELS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    unsafe extern "C" fn record(_: *mut c_void, level: u32, message: *const c_char) {
        // SAFETY: NUL-terminated, valid during the call.
        assert!(!unsafe { CStr::from_ptr(message) }.to_bytes().is_empty());
        LEVELS.lock().unwrap().push(level);
    }
    let server = Server::tokens();
    let fetch = || {
        let client = lwolf_auth::Client::new(builder(&server).build().unwrap());
        ok(client.token());
    };
    for (max, expect_trace) in [(0u32, None), (99, Some(true)), (3, Some(false))] {
        LEVELS.lock().unwrap().clear();
        // SAFETY: a callback valid for the whole process; no userdata.
        let status = unsafe { lwolf_set_log_callback(Some(record), std::ptr::null_mut(), max) };
        assert_eq!(status, lwolf_status::LWOLF_OK);
        fetch();
        let levels = LEVELS.lock().unwrap().clone();
        match expect_trace {
            None => assert!(levels.is_empty(), "max 0 sent {levels:?}"),
            Some(trace) => {
                assert!(!levels.is_empty(), "max {max} sent nothing");
                assert_eq!(
                    levels.contains(&LWOLF_LOG_TRACE),
                    trace,
                    "max {max}: {levels:?}"
                );
                assert!(
                    levels.iter().all(|&l| l <= max.min(LWOLF_LOG_TRACE)),
                    "{levels:?}"
                );
            }
        }
    }
    // SAFETY: NULL turns the records off.
    assert_eq!(
        unsafe { lwolf_set_log_callback(None, std::ptr::null_mut(), 5) },
        lwolf_status::LWOLF_OK
    );
    LEVELS.lock().unwrap().clear();
    fetch();
    assert!(LEVELS.lock().unwrap().is_empty());
}
