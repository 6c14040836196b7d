//! The C ABI called from Rust as a C program would, for the tests that check it from the
//! inside (allocations, panics, leaks, fuzz inputs) and the `ffi_strings` fuzz target.
//! Each helper asserts what a correct program may take for granted.

// Each user takes the part it needs.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use lwolf_auth_ffi::*;

/// `s` as C passes it.
pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// This thread's last error message.
pub fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until this thread's next lwolf_ call.
    let ptr = unsafe { lwolf_last_error_message() };
    assert!(!ptr.is_null(), "lwolf_last_error_message returned NULL");
    // SAFETY: as above.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .expect("the last error is UTF-8")
        .to_owned()
}

/// Sets one key, which must be accepted.
pub fn set(cfg: *mut lwolf_config, key: &str, value: &str) {
    // SAFETY: cfg is a live configuration; the strings live through the call.
    let status = unsafe { lwolf_config_set(cfg, c(key).as_ptr(), c(value).as_ptr()) };
    assert_eq!(status, lwolf_status::LWOLF_OK, "{key}: {}", last_error());
}

/// A configuration with `settings` applied; freed by the caller.
pub fn config(settings: &[(&str, &str)]) -> *mut lwolf_config {
    let mut cfg = ptr::null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(
        unsafe { lwolf_config_new(&mut cfg) },
        lwolf_status::LWOLF_OK
    );
    for (key, value) in settings {
        set(cfg, key, value);
    }
    cfg
}

/// A client made from `settings`, which must be complete; freed by the caller.
pub fn client(settings: &[(&str, &str)]) -> *mut lwolf_client {
    let cfg = config(settings);
    let mut client = ptr::null_mut();
    // SAFETY: cfg is live, the out-pointer valid; cfg is freed once, after use.
    unsafe {
        assert_eq!(lwolf_client_new(cfg, &mut client), lwolf_status::LWOLF_OK);
        lwolf_config_free(cfg);
    }
    client
}

/// The token, or the failure's status and message.
pub fn token(client: *const lwolf_client) -> Result<String, (lwolf_status, String)> {
    let mut buf = [0 as c_char; 4096];
    let mut len = 0usize;
    // SAFETY: client is live; buf holds buf.len() bytes.
    match unsafe { lwolf_client_token(client, buf.as_mut_ptr(), buf.len(), &mut len) } {
        lwolf_status::LWOLF_OK => {
            // SAFETY: the library wrote a NUL-terminated token of `len` bytes.
            let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
            assert_eq!(s.len(), len);
            Ok(s.to_owned())
        }
        status => Err((status, last_error())),
    }
}
