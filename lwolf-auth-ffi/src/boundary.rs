//! The panic boundary: every exported function's body runs inside `ffi_boundary` (or
//! `ffi_boundary_keep_last_error`), so that no panic crosses the ABI (a caught one is
//! `LWOLF_ERR_INTERNAL` with a message) and every failure is reported the same way: the
//! status code returned, and the thread's last error set.

use std::panic::{catch_unwind, AssertUnwindSafe};

use lwolf_auth::Error;

use crate::last_error::{clear_last_error, set_last_error, set_last_error_details};
use crate::status::lwolf_status;

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
