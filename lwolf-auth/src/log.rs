//! Log records: this crate's own, sent to the `log` facade (for Rust applications) and to the
//! one handler a host sets ([`set_handler`]; `lwolf_set_log_callback` in C).
//!
//! Only this crate's records reach the handler, never another crate's: ureq-proto's TRACE
//! records hex-dump the bytes on the wire, token requests and `Authorization` headers
//! included. No record of ours holds a secret, a key or a token: tokens appear as their
//! fingerprints, and server text is sanitized before it reaches a message.
//!
//! | level | what |
//! |---|---|
//! | `Error` | (none yet) |
//! | `Warn` | each retry, with its reason and wait; a failed refresh while the current token is kept; a cache directory refused or unusable; a shared cache (file or Redis) that failed |
//! | `Info` | a token fetched (fingerprint, lifetime) |
//! | `Debug` | a token due for refresh; disk-cache reads and writes |
//! | `Trace` | each HTTP exchange: method, URL without its query, status, time |

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use ::log::{Level, LevelFilter};
use once_cell::sync::Lazy;

use crate::fork::PerProcess;

type Handler = dyn Fn(Level, &str) + Send + Sync;

struct Sink {
    max_level: LevelFilter,
    handler: Arc<Handler>,
}

impl Sink {
    /// The sink a child of a fork starts with: the same handler in a slot of its own. The
    /// slot's reference count is what a replacement waits on (calls under way), and the
    /// parent's count includes deliveries on the parent's threads, which do not exist in
    /// the child: waiting on it there would wait forever.
    fn in_a_child(slot: &Option<Arc<Sink>>) -> Option<Arc<Sink>> {
        slot.as_ref().map(|sink| {
            Arc::new(Sink {
                max_level: sink.max_level,
                handler: Arc::clone(&sink.handler),
            })
        })
    }
}

/// The handler's level (a `LevelFilter` as a number), so that a record nobody wants costs
/// one load.
static HANDLER_LEVEL: AtomicUsize = AtomicUsize::new(0);

/// The handler. Taken only to clone or swap the `Arc`, never while a handler runs.
static SINK: Lazy<PerProcess<Option<Arc<Sink>>>> =
    Lazy::new(|| PerProcess::new(None, Sink::in_a_child));

thread_local! {
    /// The handlers this thread is running now (their addresses): a handler that replaces
    /// itself must not wait for itself to return.
    static RUNNING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Sends this crate's records at `max_level` and more severe to `handler`, in place of any
/// handler set before. Process-wide; no handler is set by default.
///
/// The handler runs on the thread that logs, possibly on several threads at once, and
/// never under a lock of this crate (it may call back into it, or set another handler).
/// When this returns, the handler it replaced is not running on any other thread and is
/// not called again. So do not call this while holding a lock that the old handler takes.
/// In a child of `fork()` it never waits on a call under way on one of the parent's threads
/// (they do not exist there).
///
/// ```
/// use lwolf_auth::unversioned::log::{self, Level, LevelFilter};
/// log::set_handler(LevelFilter::Info, |level: Level, message: &str| {
///     eprintln!("lwolf-auth {level}: {message}");
/// });
/// log::clear_handler();
/// ```
pub fn set_handler(max_level: LevelFilter, handler: impl Fn(Level, &str) + Send + Sync + 'static) {
    replace(Some(Arc::new(Sink {
        max_level,
        handler: Arc::new(handler),
    })));
}

/// Removes the handler: records go to the `log` facade only. When this returns, the old
/// handler is not running on any other thread and is not called again.
pub fn clear_handler() {
    replace(None);
}

fn replace(sink: Option<Arc<Sink>>) {
    let old = {
        let mut slot = SINK.get().lock.lock();
        let level = sink.as_ref().map_or(LevelFilter::Off, |s| s.max_level);
        HANDLER_LEVEL.store(level as usize, Ordering::Relaxed);
        std::mem::replace(&mut *slot, sink)
    };
    if let Some(old) = old {
        wait_until_unused(&old);
    }
}

/// Waits until no other thread runs `sink`: the slot no longer holds it, so the only other
/// clones are those of deliveries under way.
fn wait_until_unused(sink: &Arc<Sink>) {
    let key = Arc::as_ptr(sink) as usize;
    let on_this_thread = RUNNING
        .try_with(|r| r.borrow().iter().filter(|&&k| k == key).count())
        .unwrap_or(0);
    let mut rounds = 0u32;
    while Arc::strong_count(sink) > 1 + on_this_thread {
        rounds = rounds.saturating_add(1);
        if rounds < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Whether a record at `level` would go anywhere.
pub(crate) fn enabled(level: Level) -> bool {
    level as usize <= HANDLER_LEVEL.load(Ordering::Relaxed) || level <= ::log::max_level()
}

/// Logs one record of this crate (use the macros: `log::warn!(...)` with `use crate::log`).
pub(crate) fn emit(level: Level, target: &'static str, args: fmt::Arguments<'_>) {
    let to_handler = level as usize <= HANDLER_LEVEL.load(Ordering::Relaxed);
    if level <= ::log::max_level() {
        ::log::logger().log(
            &::log::Record::builder()
                .args(args)
                .level(level)
                .target(target)
                .module_path_static(Some(target))
                .build(),
        );
    }
    if to_handler {
        deliver(level, &args.to_string());
    }
}

fn deliver(level: Level, message: &str) {
    let Some(sink) = SINK.get().lock.lock().clone() else {
        return;
    };
    if level > sink.max_level {
        return;
    }
    let key = Arc::as_ptr(&sink) as usize;
    let _ = RUNNING.try_with(|r| r.borrow_mut().push(key));
    // Popped on the way out, a panicking handler included.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = RUNNING.try_with(|r| r.borrow_mut().pop());
        }
    }
    let _done = Done;
    (sink.handler)(level, message);
}

macro_rules! record {
    ($level:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::emit($crate::log::Level::$level, module_path!(), format_args!($($arg)+))
        }
    };
}

// The core logs nothing at ERROR yet (a failure is the caller's to report); the sandbox does.
#[allow(unused_macros)]
macro_rules! log_error {
    ($($arg:tt)+) => { $crate::log::record!(Error, $($arg)+) };
}
macro_rules! log_warn {
    ($($arg:tt)+) => { $crate::log::record!(Warn, $($arg)+) };
}
macro_rules! log_info {
    ($($arg:tt)+) => { $crate::log::record!(Info, $($arg)+) };
}
macro_rules! log_debug {
    ($($arg:tt)+) => { $crate::log::record!(Debug, $($arg)+) };
}
macro_rules! log_trace {
    ($($arg:tt)+) => { $crate::log::record!(Trace, $($arg)+) };
}

// Named `log_*` and renamed here: a macro named `warn` clashes with the built-in attribute.
#[allow(unused_imports)]
pub(crate) use {
    log_debug as debug, log_error as error, log_info as info, log_trace as trace, log_warn as warn,
    record,
};

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::atomic::AtomicBool;

    // One test: the handler is process-wide, and the unit tests run in parallel.
    #[test]
    fn replacing_a_handler_waits_for_its_calls_except_its_own() {
        // Replaced from inside itself: no wait for itself.
        static SEEN: Mutex<Vec<String>> = parking_lot::const_mutex(Vec::new());
        set_handler(LevelFilter::Debug, |_, m| {
            if m.starts_with("mark ") {
                SEEN.lock().push(m.to_owned());
                clear_handler();
            }
        });
        warn!("mark {}", 1);
        warn!("mark 2");
        assert_eq!(*SEEN.lock(), ["mark 1"]);

        // Replaced from another thread: waits for the call under way there.
        static IN_HANDLER: AtomicBool = AtomicBool::new(false);
        static FINISHED: AtomicBool = AtomicBool::new(false);
        set_handler(LevelFilter::Trace, |_, m| {
            if m == "slow" {
                IN_HANDLER.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                FINISHED.store(true, Ordering::SeqCst);
            }
        });
        let logger = std::thread::spawn(|| trace!("slow"));
        while !IN_HANDLER.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        clear_handler();
        assert!(
            FINISHED.load(Ordering::SeqCst),
            "returned while the old handler ran"
        );
        logger.join().unwrap();
        // Off: nothing is formatted for the handler.
        assert!(!enabled(Level::Trace) || ::log::max_level() >= Level::Trace);
    }
}
