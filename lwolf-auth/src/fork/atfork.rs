//! The fork handlers' registration: `pthread_atfork`, the one call of this crate into the C
//! library. What the handlers do, and why, is in `crate::fork`.

#![allow(unsafe_code)]

/// Registers `before`, `after_in_parent` and `after_in_child` (once: `crate::fork` calls this
/// under a `Once`).
#[cfg(unix)]
pub(super) fn install() -> Result<(), std::io::Error> {
    extern "C" fn prepare() {
        guarded(super::before);
    }
    extern "C" fn parent() {
        guarded(super::after_in_parent);
    }
    extern "C" fn child() {
        guarded(super::after_in_child);
    }
    // SAFETY: three `extern "C" fn()`s that live as long as the library, unwind no panic
    // (each is `guarded`), and take only locks that no code holds while it forks.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    match rc {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// No `fork()` here: nothing to do.
#[cfg(not(unix))]
pub(super) fn install() -> Result<(), std::io::Error> {
    Ok(())
}

/// Runs a handler; a panic must not unwind into the C library's `fork()` (it would abort the
/// host process), so it is caught and dropped: a handler only moves locks.
#[cfg(unix)]
fn guarded(handler: fn()) {
    let _ = std::panic::catch_unwind(handler);
}
