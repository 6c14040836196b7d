//! What the `ffi_strings` fuzz target does with one input, shared with the test that replays
//! the inputs it kept (`tests/ffi_fuzz_regressions.rs`): both include this file, and
//! `tests/c_calls/mod.rs` as `crate::c_calls`.
//!
//! The input is split at its first NUL into two strings (interior NULs stripped, each
//! NUL-terminated as C passes them):
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

use std::ffi::{c_char, CString};
use std::ptr;

use crate::c_calls::{c, client, last_error};
use lwolf_auth_ffi::*;

/// The keys the second string is set under, by input length. Frozen, not `CONFIG_KEYS`:
/// the saved inputs pick a key by index.
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

/// A client that can reach nothing: its token endpoint and API are a port nobody listens on.
pub fn dead_client() -> *mut lwolf_client {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    client(&[
        ("client_id", "fuzz"),
        ("client_secret", "fuzz-secret"),
        ("token_url", &format!("http://127.0.0.1:{port}/oauth/token")),
        (
            "api_base_url",
            &format!("http://127.0.0.1:{port}/backoffice"),
        ),
        ("max_retries", "0"),
        ("timeout_ms", "200"),
    ])
}

/// The bytes with every NUL removed, NUL-terminated.
fn c_bytes(bytes: &[u8]) -> CString {
    CString::new(
        bytes
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .unwrap()
}

/// Checks a status against the allowed ones and the last-error rules.
#[track_caller]
fn check(what: &str, status: lwolf_status, allowed: &[lwolf_status]) {
    assert!(
        allowed.contains(&status),
        "{what}: {status:?} is not one of {allowed:?}"
    );
    let msg = last_error();
    assert_eq!(
        msg.is_empty(),
        status == lwolf_status::LWOLF_OK,
        "{what}: {status:?} with the message {msg:?}"
    );
}

/// One input, through `lwolf_config_*` and through `client` (a [`dead_client`]).
pub fn replay(client: *const lwolf_client, data: &[u8]) {
    use lwolf_status::*;
    let mut halves = data.splitn(2, |&b| b == 0);
    let a = c_bytes(halves.next().unwrap_or_default());
    let b = c_bytes(halves.next().unwrap_or_default());
    let (a_ptr, b_ptr): (*const c_char, *const c_char) = (a.as_ptr(), b.as_ptr());

    // SAFETY (every call below): the pointers are live CStrings, a live client and
    // configuration, and valid out-pointers; what is made is freed once.
    let mut cfg = ptr::null_mut();
    check(
        "config_new",
        unsafe { lwolf_config_new(&mut cfg) },
        &[LWOLF_OK],
    );
    let status = unsafe { lwolf_config_set(cfg, a_ptr, b_ptr) };
    check(
        "config_set(a, b)",
        status,
        &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT],
    );
    let key = KEYS[data.len() % KEYS.len()];
    let status = unsafe { lwolf_config_set(cfg, c(key).as_ptr(), b_ptr) };
    check(key, status, &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT]);
    if !PATH_KEYS.iter().any(|k| k.as_bytes() == a.as_bytes()) {
        let mut made = ptr::null_mut();
        let status = unsafe { lwolf_client_new(cfg, &mut made) };
        check("client_new", status, &[LWOLF_OK, LWOLF_ERR_CONFIG]);
        assert_eq!(made.is_null(), status != LWOLF_OK);
        // A client made from fuzzed URLs is never used: it might point anywhere.
        unsafe { lwolf_client_free(made) };
    }
    unsafe { lwolf_config_free(cfg) };

    let mut response = ptr::null_mut();
    let status =
        unsafe { lwolf_client_request(client, a_ptr, b_ptr, ptr::null(), 0, &mut response) };
    check(
        "request(a, b)",
        status,
        &[LWOLF_ERR_INVALID_ARGUMENT, LWOLF_ERR_TRANSPORT],
    );
    let get = c("GET");
    let status = unsafe {
        lwolf_client_request(
            client,
            get.as_ptr(),
            a_ptr,
            b"{}".as_ptr(),
            2,
            &mut response,
        )
    };
    check(
        "request(GET, a)",
        status,
        &[LWOLF_ERR_INVALID_ARGUMENT, LWOLF_ERR_TRANSPORT],
    );
    assert!(response.is_null(), "a response with no server");
    let mut tenant = ptr::null_mut();
    let status = unsafe { lwolf_client_for_tenant(client, a_ptr, &mut tenant) };
    check(
        "for_tenant(a)",
        status,
        &[LWOLF_OK, LWOLF_ERR_INVALID_ARGUMENT],
    );
    unsafe { lwolf_client_free(tenant) };
}
