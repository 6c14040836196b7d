//! The C ABI: `liblwolf_auth.so` / `liblwolf_auth.a` and `include/lwolf_auth.h`.
//!
//! This module only translates between C and the Rust API: pointers and C strings in,
//! status codes, buffers and handles out. It holds no logic of its own.
//!
//! Every `unsafe` block and every `extern "C" fn` of the crate lives under this module.
//! The rules every exported function follows:
//!
//! - its whole body runs inside `ffi_boundary` (or `ffi_boundary_keep_last_error` for the
//!   functions that read rather than report, and the `*_free` functions, which C calls
//!   between a failure and reading its message), so no panic crosses the ABI: a caught one
//!   becomes `LWOLF_ERR_INTERNAL` with a message;
//! - every pointer is checked before use (NULL gives `LWOLF_ERR_INVALID_ARGUMENT`), and no
//!   slice is ever built from a NULL pointer;
//! - the calling thread's last-error message is cleared on entry and set on every failure;
//! - out-parameters are written only on success;
//! - enums coming from C are read as integers, never as Rust enums (an out-of-range value
//!   would be undefined behaviour).
//!
//! `tests/ffi_boundary.rs` checks the first rule by reading the sources of this module.
//!
//! The functions are public so that the header generator and the ABI tests see them; from
//! Rust, use the Rust API instead: these trust their pointer arguments as C callers must.

#![allow(unsafe_code)]
// The C names (`lwolf_client`, `LWOLF_OK`) are the contract.
#![allow(non_camel_case_types)]
// The exports are `unsafe extern "C" fn`s: C cannot see the difference, and safe Rust cannot
// hand them a dangling pointer. Their safety contract is the one every doc comment (and the
// header's conventions) states: each pointer NULL or valid as described, handles used as
// their docs say. Inside, each dereference is an `unsafe` block with its `SAFETY:` reasoning.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

mod auth;
mod client;
mod config;
pub(crate) mod fork;
mod log;
mod request;
mod response;
mod status;

pub use auth::{
    lwolf_client_auth_headers, lwolf_client_dpop_nonce, lwolf_client_reject_token,
    lwolf_client_reject_token_at,
};
pub use client::{
    lwolf_client, lwolf_client_for_api, lwolf_client_for_tenant, lwolf_client_free,
    lwolf_client_invalidate, lwolf_client_new, lwolf_client_request, lwolf_client_send,
    lwolf_client_send_to, lwolf_client_token, lwolf_client_token_info, lwolf_token_info,
};
pub use config::{
    lwolf_config, lwolf_config_free, lwolf_config_from_env, lwolf_config_new, lwolf_config_set,
};
pub use log::{
    lwolf_log_fn, lwolf_set_log_callback, LWOLF_LOG_DEBUG, LWOLF_LOG_ERROR, LWOLF_LOG_INFO,
    LWOLF_LOG_TRACE, LWOLF_LOG_WARN,
};
pub use request::{
    lwolf_request, lwolf_request_body, lwolf_request_free, lwolf_request_header, lwolf_request_new,
    lwolf_request_query, lwolf_request_timeout_ms, lwolf_write_fn,
};
pub use response::{
    lwolf_response, lwolf_response_body, lwolf_response_free, lwolf_response_header,
    lwolf_response_header_at, lwolf_response_header_count, lwolf_response_status,
};
pub use status::{
    lwolf_last_error_code, lwolf_last_error_http_status, lwolf_last_error_message, lwolf_status,
    lwolf_status_name, lwolf_version,
};

// ---------------------------------------------------------------------------------------------
// The panic boundary

/// What an exported function hands back when it fails or panics.
pub(crate) trait FfiReturn {
    /// The value for `error`, which has already been stored as the last error.
    fn from_error(error: &Error) -> Self;
}

impl FfiReturn for lwolf_status {
    fn from_error(error: &Error) -> Self {
        lwolf_status::from(error)
    }
}

impl FfiReturn for () {
    fn from_error(_: &Error) -> Self {}
}

impl FfiReturn for u16 {
    fn from_error(_: &Error) -> Self {
        0
    }
}

impl FfiReturn for usize {
    fn from_error(_: &Error) -> Self {
        0
    }
}

impl<T> FfiReturn for *const T {
    fn from_error(_: &Error) -> Self {
        std::ptr::null()
    }
}

/// Runs the body of an exported function: clears the calling thread's last error, runs
/// `body`, and turns an `Err` or a panic into the failure value of `T` with the last error set.
///
/// Every `extern "C" fn` of this module is a single call of this function (or of
/// `ffi_boundary_keep_last_error`).
pub(crate) fn ffi_boundary<T: FfiReturn>(body: impl FnOnce() -> Result<T, Error>) -> T {
    clear_last_error();
    run(body)
}

/// `ffi_boundary` for the functions that must not clear the last error:
/// `lwolf_last_error_message` itself, the two that only return static strings, and the
/// `*_free` functions (cleanup code runs between a failure and the read of its message).
pub(crate) fn ffi_boundary_keep_last_error<T: FfiReturn>(
    body: impl FnOnce() -> Result<T, Error>,
) -> T {
    run(body)
}

/// Runs `body` and reports its outcome to C: the failure value of `T`, with the last error
/// set, for an `Err` or a panic.
fn run<T: FfiReturn>(body: impl FnOnce() -> Result<T, Error>) -> T {
    match caught(body) {
        Ok(value) => value,
        Err(error) => {
            set_last_error(&error);
            set_last_error_details(&error);
            T::from_error(&error)
        }
    }
}

/// Runs a callback the C library makes into us (the fork handlers; not exports): a panic is
/// caught and dropped, since there is no caller to report it to and unwinding into C is
/// undefined behaviour. Every non-exported `extern "C" fn` of this module is a single call
/// of this function.
pub(crate) fn callback_boundary(body: impl FnOnce()) {
    let _ = caught(|| {
        body();
        Ok(())
    });
}

/// The one place where panics are caught: a panic becomes `Error::Internal`.
fn caught<T>(body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    // AssertUnwindSafe: a panic leaves nothing half-updated that C could see again. Clients
    // and responses are only touched through `&` (a client's state lives behind the core's
    // own locks, which do not poison); a config changes only through `ConfigBuilder::set`,
    // which builds the new value aside and assigns it whole; out-parameters are written last.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("unknown panic payload");
            Err(Error::Internal(
                format!("panic caught at the C boundary: {what}").into_boxed_str(),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The thread-local last error

thread_local! {
    /// This thread's last error message as C reads it: empty until the first failure, and
    /// from then on always NUL-terminated with no other NUL (a `CString` in all but type).
    /// A plain `Vec` keeps its capacity when emptied, so clearing it on every successful call
    /// never allocates or frees (a `CString` is a boxed slice and would be reallocated).
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The HTTP status behind the last error, 0 when the server did not answer.
    static LAST_HTTP_STATUS: Cell<u16> = const { Cell::new(0) };
    /// The OAuth `error` (or the API's `code`) behind the last error, kept as `LAST_ERROR`
    /// is: empty, or NUL-terminated.
    static LAST_ERROR_CODE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Empties the last error without allocating or freeing: the buffers are reused.
fn clear_last_error() {
    // `try_with`: during thread teardown the slot may be gone; there is nothing to clear then.
    for slot in [&LAST_ERROR, &LAST_ERROR_CODE] {
        let _ = slot.try_with(|slot| {
            let mut msg = slot.borrow_mut();
            if msg.first().is_some_and(|&b| b != 0) {
                msg.clear();
                msg.push(0); // within capacity
            }
        });
    }
    let _ = LAST_HTTP_STATUS.try_with(|s| s.set(0));
}

/// Stores what the server said of `error`, if it answered: its status and error code.
fn set_last_error_details(error: &Error) {
    let failure = error.http_failure();
    let _ = LAST_HTTP_STATUS.try_with(|s| s.set(failure.map_or(0, |f| f.status)));
    let code = failure.and_then(|f| f.error.as_deref()).unwrap_or("");
    let _ = LAST_ERROR_CODE.try_with(|slot| {
        let mut buf = slot.borrow_mut();
        buf.clear();
        buf.extend(code.bytes().filter(|&b| b != 0));
        buf.push(0);
    });
}

/// This thread's last HTTP status (0: none).
pub(crate) fn last_http_status() -> u16 {
    LAST_HTTP_STATUS.try_with(Cell::get).unwrap_or(0)
}

/// A pointer to this thread's last error code, or to a static `""`.
pub(crate) fn last_error_code_ptr() -> *const c_char {
    LAST_ERROR_CODE
        .try_with(|slot| {
            let code = slot.borrow();
            (!code.is_empty()).then(|| code.as_ptr().cast::<c_char>())
        })
        .ok()
        .flatten()
        .unwrap_or(c"".as_ptr())
}

/// Stores `error`'s message as this thread's last error.
fn set_last_error(error: &impl std::fmt::Display) {
    let _ = LAST_ERROR.try_with(|slot| {
        let mut msg = slot.borrow_mut();
        msg.clear();
        let _ = write!(msg, "{error}");
        // A NUL would cut the message short in C; none is expected, but never fail on one.
        msg.retain(|&b| b != 0);
        msg.push(0);
    });
}

/// `LWOLF_ERR_BUFFER_TOO_SMALL`, with its message: a failure of the C ABI alone (Rust hands
/// out owned values), so it has no `Error` variant.
pub(crate) fn buffer_too_small(needed: usize) -> lwolf_status {
    set_last_error(&format_args!("buffer too small: {needed} bytes needed"));
    lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL
}

/// A pointer to this thread's last error, or to a static `""`.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| {
            let msg = slot.borrow();
            // Valid until the buffer is next changed: the next `lwolf_` call on this thread.
            (!msg.is_empty()).then(|| msg.as_ptr().cast::<c_char>())
        })
        .ok()
        .flatten()
        .unwrap_or(c"".as_ptr())
}

// ---------------------------------------------------------------------------------------------
// Pointer and string checks

/// The error for a NULL pointer argument.
pub(crate) fn null_argument(name: &str) -> Error {
    Error::InvalidArgument(format!("{name} is NULL").into_boxed_str())
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid and unchanged
/// for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string valid for 'a.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8").into_boxed_str()))
}

/// Reads a byte-buffer argument; NULL is allowed only with a length of 0 (giving `None`).
///
/// # Safety
///
/// `ptr` must be NULL or point to `len` readable bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<Option<&'a [u8]>, Error> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(None);
        }
        return Err(Error::InvalidArgument(
            format!("{name} is NULL but {name}_len is {len}").into_boxed_str(),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(
            format!("{name}_len is too large").into_boxed_str(),
        ));
    }
    // SAFETY: not NULL, len fits in isize, and the caller promises `len` readable bytes.
    Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }))
}

/// Moves `value` to the heap and hands it to C, which frees it with the matching `*_free`.
pub(crate) fn to_c_owned<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees what `to_c_owned` handed to C: the body of every `*_free`. NULL does nothing.
///
/// # Safety
///
/// `ptr` must be NULL or a pointer from `to_c_owned::<T>` that C gives up here: not used
/// again, nor freed twice.
pub(crate) unsafe fn free_owned<T>(ptr: *mut T) -> Result<(), Error> {
    if !ptr.is_null() {
        // SAFETY: non-NULL, made by Box::into_raw in `to_c_owned`, and given up by the caller.
        drop(unsafe { Box::from_raw(ptr) });
    }
    Ok(())
}

/// Writes an out-parameter.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: not NULL; the caller promises it is valid for writes. `write` does not drop
    // whatever (possibly uninitialised) value was there.
    unsafe { out.write(value) };
    Ok(())
}

/// Panics on purpose when `key` is the test key; the ABI tests prove the boundary catches it.
#[cfg(any(test, feature = "ffi-test-panic"))]
pub(crate) fn maybe_test_panic(key: &str) {
    if key == "__lwolf_test_panic" {
        panic!("test panic requested through lwolf_config_set");
    }
}

/// Without the `ffi-test-panic` feature the test key is just an unknown key.
#[cfg(not(any(test, feature = "ffi-test-panic")))]
pub(crate) fn maybe_test_panic(_key: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    fn last_error() -> String {
        // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
        unsafe { CStr::from_ptr(lwolf_last_error_message()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn panic_becomes_internal_with_message() {
        let mut cfg: *mut lwolf_config = ptr::null_mut();
        assert_eq!(
            unsafe { lwolf_config_new(&mut cfg) },
            lwolf_status::LWOLF_OK
        );
        let status =
            unsafe { lwolf_config_set(cfg, c"__lwolf_test_panic".as_ptr(), c"1".as_ptr()) };
        assert_eq!(status, lwolf_status::LWOLF_ERR_INTERNAL);
        let msg = last_error();
        assert!(msg.contains("panic"), "{msg}");
        assert!(msg.contains("test panic requested"), "{msg}");
        // The handle is still usable after the panic.
        assert_eq!(
            unsafe { lwolf_config_set(cfg, c"client_id".as_ptr(), c"x".as_ptr()) },
            lwolf_status::LWOLF_OK
        );
        assert_eq!(last_error(), "");
        unsafe { lwolf_config_free(cfg) };
    }

    #[test]
    fn last_error_is_cleared_on_entry_and_kept_by_readers() {
        assert_eq!(
            unsafe { lwolf_config_new(ptr::null_mut()) },
            lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_error(), "invalid argument: out is NULL");
        // Reading the message, the version or a status name does not clear it.
        let _ = unsafe { lwolf_version() };
        let _ = unsafe { lwolf_status_name(3) };
        assert_eq!(last_error(), "invalid argument: out is NULL");
        let mut cfg: *mut lwolf_config = ptr::null_mut();
        assert_eq!(
            unsafe { lwolf_config_new(&mut cfg) },
            lwolf_status::LWOLF_OK
        );
        assert_eq!(last_error(), "");
        unsafe { lwolf_config_free(cfg) };
    }

    #[test]
    fn version_matches_the_crate() {
        // SAFETY: static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(lwolf_version()) };
        assert_eq!(v.to_str().unwrap(), crate::VERSION);
    }
}
