//! The log callback: `lwolf_set_log_callback` and the `LWOLF_LOG_*` levels.

use std::ffi::{c_char, c_void, CString};

use crate::{ffi_boundary, lwolf_status};
use lwolf_auth::unversioned::log::{self, Level, LevelFilter};

/// Records of failures that C hosts must act on (none yet).
pub const LWOLF_LOG_ERROR: u32 = 1;
/// Each retry, with its reason and wait; a failed refresh while the current token is kept;
/// a cache directory refused or unusable; a shared cache (file or Redis) that failed.
pub const LWOLF_LOG_WARN: u32 = 2;
/// A token fetched (its fingerprint and lifetime).
pub const LWOLF_LOG_INFO: u32 = 3;
/// A token due for refresh; reads and writes of the shared cache file.
pub const LWOLF_LOG_DEBUG: u32 = 4;
/// Each HTTP exchange: method, URL without its query, status and time.
pub const LWOLF_LOG_TRACE: u32 = 5;

/// A log callback: `level` is one of `LWOLF_LOG_*`, `message` a NUL-terminated UTF-8 line
/// without a trailing newline, valid during the call only; `userdata` is what was given to
/// `lwolf_set_log_callback`.
pub type lwolf_log_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: u32, message: *const c_char)>;

/// The host's callback and its userdata, called from any thread.
struct Callback {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the caller of `lwolf_set_log_callback` promises that the callback may be called
// from any thread, with this userdata, until it is replaced.
unsafe impl Send for Callback {}
unsafe impl Sync for Callback {}

impl Callback {
    fn call(&self, level: Level, message: &str) {
        // A NUL would end the line early in C; records hold none, but never fail on one.
        let Ok(line) = CString::new(message.replace('\0', "")) else {
            return;
        };
        // SAFETY: the callback and userdata are the host's, valid until replaced (and
        // `crate::log` waits for calls under way before the replacement returns); `line`
        // outlives the call.
        unsafe { (self.callback)(self.userdata, level as u32, line.as_ptr()) }
    }
}

/// Sends the library's log records at `max_level` and more severe (`LWOLF_LOG_ERROR` = 1 …
/// `LWOLF_LOG_TRACE` = 5; 0 sends none; above 5 is `LWOLF_LOG_TRACE`) to `callback`, with
/// `userdata`, in place of any callback set before. Process-wide. A NULL `callback` turns the
/// records off. Only the library's own records are sent, never those of the crates it is
/// built on, and no record at any level holds a secret, a key or a token.
///
/// The callback runs on the thread that logs, possibly on several threads at once, and never
/// under a lock of the library (it may call any `lwolf_` function, this one included). When
/// this function returns, the callback it replaced is not running on any other thread and is
/// not called again, so its userdata may be freed; do not call it while holding a lock that
/// the callback it replaces takes. In a child of `fork()` it never waits on a call that was
/// under way on one of the parent's threads (those threads do not exist in the child).
#[no_mangle]
pub unsafe extern "C" fn lwolf_set_log_callback(
    callback: lwolf_log_fn,
    userdata: *mut c_void,
    max_level: u32,
) -> lwolf_status {
    ffi_boundary(|| {
        match callback {
            None => log::clear_handler(),
            Some(callback) => {
                let max_level = match max_level {
                    0 => LevelFilter::Off,
                    LWOLF_LOG_ERROR => LevelFilter::Error,
                    LWOLF_LOG_WARN => LevelFilter::Warn,
                    LWOLF_LOG_INFO => LevelFilter::Info,
                    LWOLF_LOG_DEBUG => LevelFilter::Debug,
                    _ => LevelFilter::Trace,
                };
                let callback = Callback { callback, userdata };
                log::set_handler(max_level, move |level, message| {
                    callback.call(level, message)
                });
            }
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}
