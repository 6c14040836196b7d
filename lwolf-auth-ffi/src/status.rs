//! `lwolf_status`: the status code every fallible function returns.

use std::ffi::{c_char, CStr};

use crate::{ffi_boundary_keep_last_error, last_error_ptr};
use lwolf_auth::Error;

/// The result of an `lwolf_` function. The values are fixed and will not change.
///
/// In C this is a `uint32_t`: compare it with the `LWOLF_*` constants, and treat any value
/// you do not know as a failure (a later version may add codes). `lwolf_status_name` gives
/// a code's name and `lwolf_last_error_message` the details of the last failure.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lwolf_status {
    /// Success.
    LWOLF_OK = 0,
    /// A NULL pointer, a string that is not UTF-8, an unknown configuration key, a bad value,
    /// or an absolute URL to another origin than `api_base_url`'s.
    LWOLF_ERR_INVALID_ARGUMENT = 1,
    /// An incomplete or forbidden configuration (missing client id or secret, `http://` to a
    /// host that is not loopback, an unreadable secret or CA file).
    LWOLF_ERR_CONFIG = 2,
    /// The token endpoint answered 401: wrong client id or secret.
    LWOLF_ERR_INVALID_CREDENTIALS = 3,
    /// The token endpoint answered 400.
    LWOLF_ERR_BAD_REQUEST = 4,
    /// The token endpoint answered 403.
    LWOLF_ERR_FORBIDDEN = 5,
    /// The token endpoint answered 429 and the retries ran out.
    LWOLF_ERR_RATE_LIMITED = 6,
    /// The token endpoint answered 5xx and the retries ran out, or another unexpected status.
    LWOLF_ERR_SERVER = 7,
    /// No response could be had: DNS, connect, TLS, I/O or timeout.
    LWOLF_ERR_TRANSPORT = 8,
    /// The token response was malformed, oversized, or a redirect.
    LWOLF_ERR_INVALID_RESPONSE = 9,
    /// The caller's buffer is too small; the length needed is reported.
    LWOLF_ERR_BUFFER_TOO_SMALL = 10,
    /// A bug: a panic caught at the C boundary, or a state that should not happen.
    LWOLF_ERR_INTERNAL = 11,
    /// The caller's write callback stopped a streamed response (`lwolf_client_send_to`).
    LWOLF_ERR_ABORTED = 12,
    /// The call's `deadline_ms` passed while it waited its turn (for a token request in
    /// flight, or for the pace of the API): nothing was sent for it.
    LWOLF_ERR_DEADLINE = 13,
}

/// The constants' names, indexed by value: `LWOLF_OK` is 0.
const NAMES: [&CStr; 14] = [
    c"LWOLF_OK",
    c"LWOLF_ERR_INVALID_ARGUMENT",
    c"LWOLF_ERR_CONFIG",
    c"LWOLF_ERR_INVALID_CREDENTIALS",
    c"LWOLF_ERR_BAD_REQUEST",
    c"LWOLF_ERR_FORBIDDEN",
    c"LWOLF_ERR_RATE_LIMITED",
    c"LWOLF_ERR_SERVER",
    c"LWOLF_ERR_TRANSPORT",
    c"LWOLF_ERR_INVALID_RESPONSE",
    c"LWOLF_ERR_BUFFER_TOO_SMALL",
    c"LWOLF_ERR_INTERNAL",
    c"LWOLF_ERR_ABORTED",
    c"LWOLF_ERR_DEADLINE",
];

/// What C is told of a Rust error. Every variant is named; one added to the (non-exhaustive)
/// Rust error before it is named here reaches C as `LWOLF_ERR_INTERNAL`, and the test below
/// names every variant the library has.
impl From<&Error> for lwolf_status {
    fn from(error: &Error) -> lwolf_status {
        match error {
            Error::InvalidArgument(_) => lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
            Error::Config(_) => lwolf_status::LWOLF_ERR_CONFIG,
            Error::InvalidCredentials(_) => lwolf_status::LWOLF_ERR_INVALID_CREDENTIALS,
            Error::BadRequest(_) => lwolf_status::LWOLF_ERR_BAD_REQUEST,
            Error::Forbidden(_) => lwolf_status::LWOLF_ERR_FORBIDDEN,
            Error::RateLimited(_) => lwolf_status::LWOLF_ERR_RATE_LIMITED,
            Error::Server(_) => lwolf_status::LWOLF_ERR_SERVER,
            Error::Transport(_) => lwolf_status::LWOLF_ERR_TRANSPORT,
            Error::InvalidResponse(_) | Error::Json(_) => lwolf_status::LWOLF_ERR_INVALID_RESPONSE,
            Error::Aborted(_) => lwolf_status::LWOLF_ERR_ABORTED,
            Error::Deadline(_) => lwolf_status::LWOLF_ERR_DEADLINE,
            Error::Internal(_) => lwolf_status::LWOLF_ERR_INTERNAL,
            _ => lwolf_status::LWOLF_ERR_INTERNAL,
        }
    }
}

impl lwolf_status {
    /// The constant's name, `"LWOLF_ERR_CONFIG"` for example (the CLI prints it, and exits
    /// with the value).
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
            .to_str()
            .unwrap_or("LWOLF_UNKNOWN_STATUS")
    }

    /// The name of any value C may pass, NUL-terminated.
    fn c_name(code: u32) -> &'static CStr {
        usize::try_from(code)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or(c"LWOLF_UNKNOWN_STATUS")
    }
}

/// Returns the name of a status code (`"LWOLF_OK"`, `"LWOLF_ERR_CONFIG"`…) as a static
/// NUL-terminated string, or `"LWOLF_UNKNOWN_STATUS"` for a value that is not a known code.
///
/// The code is taken as a plain integer, so any value is safe to pass. The string lives as
/// long as the library is loaded; do not free it. Does not change the last error.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_status_name(status: u32) -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(lwolf_status::c_name(status).as_ptr()))
}

/// Returns the calling thread's last error message: a NUL-terminated UTF-8 string describing
/// the most recent failure of an `lwolf_` function called on this thread.
///
/// Every `lwolf_` function except `lwolf_last_error_message`, `lwolf_version`,
/// `lwolf_status_name` and the `*_free` functions clears the message when called, and sets
/// it when it fails, so after a success this returns `""`. It never returns NULL. The message never contains the client
/// secret or a token.
///
/// The string is owned by the library and stays valid until the next call of an `lwolf_`
/// function on the same thread; copy it if you need it longer. Do not free it.
///
/// Thread-safe: each thread has its own message.
#[no_mangle]
pub unsafe extern "C" fn lwolf_last_error_message() -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(last_error_ptr()))
}

/// Returns the HTTP status the server answered with in this thread's last failure (401 for
/// wrong credentials, say), or 0 when no server answered (a transport error, a bad argument)
/// or the last call succeeded. Kept and cleared as `lwolf_last_error_message` is.
/// Thread-safe: each thread has its own.
#[no_mangle]
pub unsafe extern "C" fn lwolf_last_error_http_status() -> u16 {
    ffi_boundary_keep_last_error(|| Ok(crate::last_http_status()))
}

/// Returns the error code the server gave in this thread's last failure (the OAuth `error`,
/// `"invalid_client"` say, or the API's `code`), or `""` when there was none. Owned by the
/// library and valid as `lwolf_last_error_message`'s string is; never NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_last_error_code() -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(crate::last_error_code_ptr()))
}

/// Returns what kind of transport failure this thread's last failure was, when it was one
/// (`LWOLF_ERR_TRANSPORT`; and `"timeout"` for `LWOLF_ERR_DEADLINE`): `"timeout"`, `"dns"`,
/// `"connect"`, `"tls"`, `"proxy"` or `"io"`; `""` for any other failure or after a
/// success. Act on this, never on the message's words. Static; never NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_last_error_transport_kind() -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(crate::last_error::last_transport_kind_ptr()))
}

/// Returns this library's version (for example `"0.1.0"`) as a static NUL-terminated string.
///
/// The string lives as long as the library is loaded; do not free it. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_version() -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(VERSION.as_ptr()))
}

/// The crate version with a NUL, for `lwolf_version`.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the crate version holds a NUL"),
    };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_constants() {
        let all = [
            lwolf_status::LWOLF_OK,
            lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
            lwolf_status::LWOLF_ERR_CONFIG,
            lwolf_status::LWOLF_ERR_INVALID_CREDENTIALS,
            lwolf_status::LWOLF_ERR_BAD_REQUEST,
            lwolf_status::LWOLF_ERR_FORBIDDEN,
            lwolf_status::LWOLF_ERR_RATE_LIMITED,
            lwolf_status::LWOLF_ERR_SERVER,
            lwolf_status::LWOLF_ERR_TRANSPORT,
            lwolf_status::LWOLF_ERR_INVALID_RESPONSE,
            lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL,
            lwolf_status::LWOLF_ERR_INTERNAL,
            lwolf_status::LWOLF_ERR_ABORTED,
        ];
        for (code, status) in all.into_iter().enumerate() {
            assert_eq!(status as usize, code);
            assert_eq!(status.name(), format!("{status:?}"));
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(lwolf_status_name(code as u32)) };
            assert_eq!(name.to_str().unwrap(), status.name());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(lwolf_status_name(u32::MAX)) };
        assert_eq!(unknown.to_str().unwrap(), "LWOLF_UNKNOWN_STATUS");
    }

    #[test]
    fn every_error_maps_to_its_status() {
        let cases = [
            (
                Error::InvalidArgument("x".into()),
                lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
            ),
            (Error::Config("x".into()), lwolf_status::LWOLF_ERR_CONFIG),
            (
                Error::InvalidResponse("x".into()),
                lwolf_status::LWOLF_ERR_INVALID_RESPONSE,
            ),
            (
                Error::Json("x".into()),
                lwolf_status::LWOLF_ERR_INVALID_RESPONSE,
            ),
            (
                Error::Internal("x".into()),
                lwolf_status::LWOLF_ERR_INTERNAL,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(lwolf_status::from(&error), status);
        }
    }
}
