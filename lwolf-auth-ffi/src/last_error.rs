//! The thread-local last error: what `lwolf_last_error_message`, `lwolf_last_error_http_status`
//! and `lwolf_last_error_code` read. Every entry point clears it (without allocating) and every
//! failure sets it.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::io::Write as _;

use lwolf_auth::{Error, TransportKind};

use crate::status::lwolf_status;

thread_local! {
    /// This thread's last error message as C reads it: empty until the first failure, and
    /// from then on always NUL-terminated with no other NUL (a `CString` in all but type).
    /// A plain `Vec` keeps its capacity when emptied, so clearing it on every successful call
    /// never allocates or frees (a `CString` is a boxed slice and would be reallocated).
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The HTTP status behind the last error, 0 when the server did not answer.
    static LAST_HTTP_STATUS: Cell<u16> = const { Cell::new(0) };
    /// The kind of the last transport failure (`timeout`, `dns`...), `""` for any other.
    static LAST_TRANSPORT_KIND: Cell<&'static CStr> = const { Cell::new(c"") };
    /// The OAuth `error` (or the API's `code`) behind the last error, kept as `LAST_ERROR`
    /// is: empty, or NUL-terminated.
    static LAST_ERROR_CODE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Empties the last error without allocating or freeing: the buffers are reused.
pub(crate) fn clear_last_error() {
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
    let _ = LAST_TRANSPORT_KIND.try_with(|s| s.set(c""));
}

/// Stores what the server said of `error`, if it answered: its status and error code.
pub(crate) fn set_last_error_details(error: &Error) {
    let failure = error.http_failure();
    let _ = LAST_HTTP_STATUS.try_with(|s| s.set(failure.map_or(0, |f| f.status)));
    let kind = match error.transport_kind() {
        Some(TransportKind::Timeout) => c"timeout",
        Some(TransportKind::Dns) => c"dns",
        Some(TransportKind::Connect) => c"connect",
        Some(TransportKind::Tls) => c"tls",
        Some(TransportKind::Proxy) => c"proxy",
        Some(_) => c"io",
        None if matches!(error, Error::Deadline(_)) => c"timeout",
        None => c"",
    };
    let _ = LAST_TRANSPORT_KIND.try_with(|s| s.set(kind));
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

/// This thread's last transport failure's kind, or `""`.
pub(crate) fn last_transport_kind_ptr() -> *const c_char {
    LAST_TRANSPORT_KIND
        .try_with(Cell::get)
        .unwrap_or(c"")
        .as_ptr()
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
pub(crate) fn set_last_error(error: &impl std::fmt::Display) {
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
