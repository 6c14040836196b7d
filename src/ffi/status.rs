//! `lwolf_status`: the status code every fallible function returns.

use std::ffi::{c_char, CStr};

use super::{ffi_boundary_keep_last_error, last_error_ptr};

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
}

impl lwolf_status {
    /// The status for a code from [`crate::Error::status_code`]; an unknown code is internal.
    pub(crate) fn from_code(code: u32) -> lwolf_status {
        match code {
            0 => lwolf_status::LWOLF_OK,
            1 => lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
            2 => lwolf_status::LWOLF_ERR_CONFIG,
            3 => lwolf_status::LWOLF_ERR_INVALID_CREDENTIALS,
            4 => lwolf_status::LWOLF_ERR_BAD_REQUEST,
            5 => lwolf_status::LWOLF_ERR_FORBIDDEN,
            6 => lwolf_status::LWOLF_ERR_RATE_LIMITED,
            7 => lwolf_status::LWOLF_ERR_SERVER,
            8 => lwolf_status::LWOLF_ERR_TRANSPORT,
            9 => lwolf_status::LWOLF_ERR_INVALID_RESPONSE,
            10 => lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL,
            _ => lwolf_status::LWOLF_ERR_INTERNAL,
        }
    }

    /// The constant's name, NUL-terminated.
    fn name(code: u32) -> &'static CStr {
        usize::try_from(code)
            .ok()
            .and_then(|i| crate::error::STATUS_NAMES.get(i))
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
pub extern "C" fn lwolf_status_name(status: u32) -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(lwolf_status::name(status).as_ptr()))
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
pub extern "C" fn lwolf_last_error_message() -> *const c_char {
    ffi_boundary_keep_last_error(|| Ok(last_error_ptr()))
}

/// Returns this library's version (for example `"0.1.0"`) as a static NUL-terminated string.
///
/// The string lives as long as the library is loaded; do not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn lwolf_version() -> *const c_char {
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
    fn codes_round_trip_and_match_the_contract() {
        for code in 0..=11u32 {
            let status = lwolf_status::from_code(code);
            assert_eq!(status as u32, code);
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(lwolf_status_name(code)) };
            assert_eq!(name.to_str().unwrap(), format!("{status:?}"));
        }
        assert_eq!(
            lwolf_status::from_code(12),
            lwolf_status::LWOLF_ERR_INTERNAL
        );
        // SAFETY: as above.
        let unknown = unsafe { std::ffi::CStr::from_ptr(lwolf_status_name(u32::MAX)) };
        assert_eq!(unknown.to_str().unwrap(), "LWOLF_UNKNOWN_STATUS");
    }

    #[test]
    fn every_error_maps_to_its_status() {
        use crate::Error;
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
                Error::BufferTooSmall { needed: 3 },
                lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL,
            ),
            (
                Error::Internal("x".into()),
                lwolf_status::LWOLF_ERR_INTERNAL,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(lwolf_status::from_code(error.status_code()), status);
        }
    }
}
