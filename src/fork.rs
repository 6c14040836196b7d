//! fork(): what a child process must not inherit from its parent's other threads.
//!
//! A child of `fork()` has one thread, the one that forked. What the parent's other threads
//! were doing stays frozen in its memory: a lock one of them held is never released, a token
//! request one of them had in flight never finishes, and the pooled connections are the
//! parent's too (two processes on one keep-alive connection get each other's responses;
//! over TLS they encrypt with one key stream). So:
//!
//! * `pthread_atfork` handlers take every registered lock before the fork and release them
//!   in both processes after it, so a child never inherits a lock held by a thread it does
//!   not have. A pid check cannot do this: by the time a child notices, the lock is lost.
//! * The child handler starts a new generation. What belongs to one process (the connection
//!   pool, a request in flight) carries the generation it was made in and is not used in
//!   another. Comparing generations is one relaxed atomic load, where a pid check would be
//!   a system call (glibc no longer caches `getpid`) on paths the contract keeps free of
//!   them.
//! * The cached token is plain data: the child keeps serving it.

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};

use once_cell::sync::Lazy;
use parking_lot::{Mutex, MutexGuard};

/// Bumped in every child of a fork.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The locks held across a fork.
static LOCKS: Lazy<Mutex<Vec<Weak<dyn Holdable>>>> = Lazy::new(|| Mutex::new(Vec::new()));

thread_local! {
    /// What `before` took, for `after_in_parent` / `after_in_child` to release (all three
    /// run on the forking thread, which is the child's only thread).
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Kept only to be dropped: that releases the locks.
struct Held {
    _registry: MutexGuard<'static, Vec<Weak<dyn Holdable>>>,
    _guards: Vec<Box<dyn Any>>,
}

/// A lock that can be taken and kept past the scope that took it.
trait Holdable: Send + Sync {
    fn hold(self: Arc<Self>) -> Box<dyn Any>;
}

impl<T: Send + 'static> Holdable for Mutex<T> {
    fn hold(self: Arc<Self>) -> Box<dyn Any> {
        Box::new(self.lock_arc())
    }
}

/// This process's generation: a new one in every child of a fork.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Holds `lock` across every fork from now on, so no child inherits it taken. A lock so
/// registered must never be taken while another registered lock is held, and nothing may
/// be done under it that forks.
pub(crate) fn hold_across_fork<T: Send + 'static>(lock: &Arc<Mutex<T>>) {
    install_handlers();
    let weak: Weak<Mutex<T>> = Arc::downgrade(lock);
    let mut locks = LOCKS.lock();
    locks.retain(|w| w.strong_count() > 0);
    locks.push(weak);
}

fn install_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        if let Err(e) = crate::ffi::fork::install_handlers() {
            crate::log::warn!(
                "cannot install the fork handlers ({e}); do not fork with clients in use"
            );
        }
    });
}

/// Before a fork, on the forking thread: take every lock.
pub(crate) fn before() {
    let registry = LOCKS.lock();
    let guards = registry
        .iter()
        .filter_map(Weak::upgrade)
        .map(Holdable::hold)
        .collect();
    HELD.with(|h| {
        *h.borrow_mut() = Some(Held {
            _registry: registry,
            _guards: guards,
        })
    });
}

/// After a fork, in the parent: release them.
pub(crate) fn after_in_parent() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

/// After a fork, in the child: a new generation, then release them.
pub(crate) fn after_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    HELD.with(|h| drop(h.borrow_mut().take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handlers_take_and_release_every_registered_lock() {
        let a = Arc::new(Mutex::new(1));
        let b = Arc::new(Mutex::new(2));
        hold_across_fork(&a);
        hold_across_fork(&b);
        before();
        assert!(a.is_locked() && b.is_locked());
        after_in_parent();
        assert!(!a.is_locked() && !b.is_locked());
        let generation = generation();
        before();
        after_in_child();
        assert!(!a.is_locked());
        assert_eq!(super::generation(), generation + 1);
        // A dropped lock is skipped, and forgotten at the next registration.
        drop(b);
        before();
        after_in_parent();
        hold_across_fork(&a);
        assert!(LOCKS.lock().iter().all(|w| w.strong_count() > 0));
    }
}
