#![no_main]
//! The C ABI's string inputs on arbitrary bytes. The input is split at its first NUL into
//! two strings (interior NULs stripped, each NUL-terminated as C passes them):
//!
//! - as key and value to `lwolf_config_set`, and the value again under a key picked by the
//!   input's length (so every key's parser sees arbitrary values), then `lwolf_client_new`;
//! - as method and path to `lwolf_client_request`, and as the tenant to
//!   `lwolf_client_for_tenant`, on a client whose `token_url` and `api_base_url` are a dead
//!   loopback port (`max_retries` 0, `timeout_ms` 200): nothing is ever sent anywhere.
//!
//! Every status must be one the contract allows for that call (never
//! `LWOLF_ERR_INTERNAL`, which is what a caught panic becomes), every failure must leave a
//! non-empty UTF-8 last-error message, and nothing may crash.

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lwolf_auth::ffi::*;

/// The keys of the contract (and the disk cache's), for the second `lwolf_config_set`.
const KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "audience",
    "token_url",
    "api_base_url",
    "lwt_client_id",
    "refresh_ratio",
    "timeout_ms",
    "max_retries",
    "retry_base_ms",
    "retry_max_ms",
    "token_format",
    "client_auth",
    "user_agent",
    "max_response_bytes",
];

/// Keys whose values `lwolf_client_new` opens as paths: an arbitrary path (a FIFO, or
/// /dev/zero) could block or never end, which is the caller's business, not a string bug.
const PATH_KEYS: &[&str] = &["client_secret_file", "ca_file", "cache_dir"];

struct Shared(*mut lwolf_client);
// SAFETY: an lwolf_client is thread-safe by contract (shared across threads in C).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn set(cfg: *mut lwolf_config, key: &str, value: &str) {
    assert_eq!(
        unsafe { lwolf_config_set(cfg, c(key).as_ptr(), c(value).as_ptr()) },
        lwolf_status::LWOLF_OK,
        "{key}"
    );
}

/// A client that can reach nothing: its token endpoint and API are a port nobody listens on.
fn dead_client() -> *mut lwolf_client {
    static CLIENT: OnceLock<Shared> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut cfg = ptr::null_mut();
            assert_eq!(unsafe { lwolf_config_new(&mut cfg) }, lwolf_status::LWOLF_OK);
            set(cfg, "client_id", "fuzz");
            set(cfg, "client_secret", "fuzz-secret");
            set(cfg, "token_url", &format!("http://127.0.0.1:{port}/oauth/token"));
            set(cfg, "api_base_url", &format!("http://127.0.0.1:{port}/backoffice"));
            set(cfg, "max_retries", "0");
            set(cfg, "timeout_ms", "200");
            let mut client = ptr::null_mut();
            assert_eq!(unsafe { lwolf_client_new(cfg, &mut client) }, lwolf_status::LWOLF_OK);
            unsafe { lwolf_config_free(cfg) };
            Shared(client)
        })
        .0
}

/// Checks a status against the allowed ones and the last-error rules.
#[track_caller]
fn check(what: &str, status: lwolf_status, allowed: &[lwolf_status]) {
    let code = status as u32;
    assert!(code <= 11, "{what}: status {code} out of range");
    assert!(
        allowed.contains(&status),
        "{what}: {status:?} is not one of {allowed:?}"
    );
    let msg = unsafe { lwolf_last_error_message() };
    assert!(!msg.is_null(), "{what}: last error is NULL");
    // SAFETY: NUL-terminated, valid until this thread's next lwolf_ call.
    let msg = unsafe { CStr::from_ptr(msg) };
    let msg = msg.to_str().expect("last error is UTF-8");
    if status == lwolf_status::LWOLF_OK {
        assert!(msg.is_empty(), "{what}: a message after a success: {msg}");
    } else {
        assert!(!msg.is_empty(), "{what}: no message after {status:?}");
    }
    assert!(!unsafe { lwolf_status_name(code) }.is_null());
}

/// The bytes with every NUL removed, NUL-terminated.
fn c_bytes(bytes: &[u8]) -> CString {
    CString::new(bytes.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).unwrap()
}

fuzz_target!(|data: &[u8]| {
    use lwolf_status::*;
    let mut halves = data.splitn(2, |&b| b == 0);
    let a = c_bytes(halves.next().unwrap_or_default());
    let b = c_bytes(halves.next().unwrap_or_default());
    let (a_ptr, b_ptr): (*const c_char, *const c_char) = (a.as_ptr(), b.as_ptr());

    // Configuration.
    let mut cfg = ptr::null_mut();
    check("config_new", unsafe { lwolf_config_new(&mut cfg) }, &[LWOLF_OK]);
    let status = unsafe { lwolf_config_set(cfg, a_ptr, b_ptr) };
    check("config_set(a, b)", status, &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT]);
    let key = KEYS[data.len() % KEYS.len()];
    let status = unsafe { lwolf_config_set(cfg, c(key).as_ptr(), b_ptr) };
    check(key, status, &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT]);
    let a_is_a_path_key = PATH_KEYS.iter().any(|k| k.as_bytes() == a.as_bytes());
    if !a_is_a_path_key {
        let mut client = ptr::null_mut();
        let status = unsafe { lwolf_client_new(cfg, &mut client) };
        check("client_new", status, &[LWOLF_OK, LWOLF_ERR_CONFIG]);
        assert_eq!(client.is_null(), status != LWOLF_OK);
        // A client made from fuzzed URLs is never used: it might point anywhere.
        unsafe { lwolf_client_free(client) };
    }
    unsafe { lwolf_config_free(cfg) };

    // Requests and tenants on the client that reaches nothing.
    let client = dead_client();
    let mut response = ptr::null_mut();
    let status = unsafe { lwolf_client_request(client, a_ptr, b_ptr, ptr::null(), 0, &mut response) };
    check(
        "request(a, b)",
        status,
        &[LWOLF_ERR_INVALID_ARGUMENT, LWOLF_ERR_TRANSPORT],
    );
    assert!(response.is_null(), "a response with no server");
    let status = unsafe { lwolf_client_request(client, c("GET").as_ptr(), a_ptr, b"{}".as_ptr(), 2, &mut response) };
    check(
        "request(GET, a)",
        status,
        &[LWOLF_ERR_INVALID_ARGUMENT, LWOLF_ERR_TRANSPORT],
    );
    let mut tenant = ptr::null_mut();
    let status = unsafe { lwolf_client_for_tenant(client, a_ptr, &mut tenant) };
    check("for_tenant(a)", status, &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT]);
    unsafe { lwolf_client_free(tenant) };
});
