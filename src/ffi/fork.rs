//! The fork handlers: `pthread_atfork`, the one call into the C library that is not an
//! export of ours. What the handlers do, and why, is in `crate::fork`.

use std::ffi::c_int;

use super::callback_boundary;

#[cfg(unix)]
extern "C" {
    // POSIX: registers handlers run before `fork()` in the forking thread, and after it in
    // the parent and in the child. glibc unregisters them if this library is unloaded.
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> c_int;
}

extern "C" fn on_before_fork() {
    callback_boundary(crate::fork::before)
}

extern "C" fn on_after_fork_in_parent() {
    callback_boundary(crate::fork::after_in_parent)
}

extern "C" fn on_after_fork_in_child() {
    callback_boundary(crate::fork::after_in_child)
}

/// Registers the handlers (once: `crate::fork` calls this under a `Once`).
#[cfg(unix)]
pub(crate) fn install_handlers() -> Result<(), std::io::Error> {
    // SAFETY: the three are `extern "C" fn()`s that live as long as the library, unwind no
    // panic (each is one `callback_boundary`), and take only locks that no code holds while
    // it forks (see `crate::fork::hold_across_fork`).
    let rc = unsafe {
        pthread_atfork(
            Some(on_before_fork),
            Some(on_after_fork_in_parent),
            Some(on_after_fork_in_child),
        )
    };
    match rc {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// No `fork()` here: nothing to do.
#[cfg(not(unix))]
pub(crate) fn install_handlers() -> Result<(), std::io::Error> {
    let _ = (
        on_before_fork,
        on_after_fork_in_parent,
        on_after_fork_in_child,
    );
    Ok(())
}
