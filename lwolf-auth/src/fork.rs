//! fork(): what a child process must not inherit from its parent's other threads.
//!
//! A child of `fork()` has one thread, the one that forked. What the parent's other threads
//! were doing stays frozen in its memory: a lock one of them held is never released, a token
//! request one of them had in flight never finishes, and the pooled connections are the
//! parent's too (two processes on one keep-alive connection get each other's responses;
//! over TLS they encrypt with one key stream). So each lock of this crate is a
//! [`PerProcess`]: `pthread_atfork` handlers take them all before a fork and release them
//! after it in the parent, and in the child each gets a new lock and a new condition
//! variable, with a value made from the parent's (the cached token kept; no request in
//! flight; no connection of the parent's pool). The parent's locks are never released in the
//! child: with threads of the parent parked on one, releasing it may hand it to one of them
//! (parking_lot's eventual fairness), and they do not exist there (3 children of 100 hung so).
//!
//! Why handlers and not a pid check: a lock must be taken before the fork to be consistent
//! after it, which only `pthread_atfork` can do; and the check on each use is one relaxed
//! load of a generation counter, where a pid check would be a system call (glibc no longer
//! caches `getpid`) on paths the contract keeps free of them.

#![deny(unsafe_code)]
// Off Unix there is no fork(): no handler is installed, and what they would run is unused
// (each lock is then simply the one process's).
#![cfg_attr(not(unix), allow(dead_code))]

mod atfork;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};

use once_cell::sync::{Lazy, OnceCell};
use parking_lot::{ArcMutexGuard, Condvar, Mutex, RawMutex};

/// Bumped in every child of a fork.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Every `PerProcess` made, as held across a fork.
type Registered = Vec<Weak<dyn Holdable>>;

/// Every `PerProcess`, to be held across a fork.
static REGISTRY: Lazy<Arc<Level<Registered>>> = Lazy::new(|| {
    install_handlers();
    Arc::new(Level::new(Vec::new(), |all| {
        all.iter()
            .filter(|w| w.strong_count() > 0)
            .cloned()
            .collect()
    }))
});

thread_local! {
    /// What `before` took, for `after_in_parent` / `after_in_child` (all three run on the
    /// forking thread, which is the child's only thread).
    static HELD: RefCell<Vec<Box<dyn Held>>> = const { RefCell::new(Vec::new()) };
}

/// This process's generation: a new one in every child of a fork.
fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// A lock and condition variable of which each process of a fork has its own, and the value
/// they guard, carried into a child by `for_child`.
pub(crate) struct PerProcess<T: Send + 'static> {
    top: Arc<Level<T>>,
}

/// The lock of one process.
pub(crate) struct Level<T> {
    generation: u64,
    pub(crate) lock: Arc<Mutex<T>>,
    pub(crate) changed: Condvar,
    /// The lock of this process's child of a fork, made by the child's handler.
    child: OnceCell<Arc<Level<T>>>,
    for_child: fn(&T) -> T,
}

impl<T: Send + 'static> PerProcess<T> {
    /// `value` under a new lock. In a child of a fork the value starts as `for_child` of the
    /// parent's (taken under its lock, as it was at the fork).
    pub(crate) fn new(value: T, for_child: fn(&T) -> T) -> PerProcess<T> {
        let top = Arc::new(Level::new(value, for_child));
        let weak: Weak<dyn Holdable> = Arc::downgrade(&top) as Weak<dyn Holdable>;
        let registry = current(&REGISTRY);
        let mut all = registry.lock.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(weak);
        drop(all);
        PerProcess { top }
    }

    /// This process's lock: one relaxed load when there was no fork.
    pub(crate) fn get(&self) -> &Level<T> {
        let now = generation();
        let mut level = &*self.top;
        while level.generation != now {
            match level.child.get() {
                Some(child) => level = child,
                None => break,
            }
        }
        level
    }
}

impl<T> Level<T> {
    fn new(value: T, for_child: fn(&T) -> T) -> Level<T> {
        Level {
            generation: generation(),
            lock: Arc::new(Mutex::new(value)),
            changed: Condvar::new(),
            child: OnceCell::new(),
            for_child,
        }
    }
}

/// The deepest level of `top` made so far: this process's (or, in a child whose handler has
/// not run yet, its parent's).
fn current<T>(top: &Arc<Level<T>>) -> Arc<Level<T>> {
    let mut level = Arc::clone(top);
    while let Some(child) = level.child.get().cloned() {
        level = child;
    }
    level
}

trait Holdable: Send + Sync {
    /// Takes this process's lock, kept until the returned value is released or forked.
    fn hold(self: Arc<Self>) -> Box<dyn Held>;
}

trait Held {
    /// In the parent: releases the lock.
    fn release(self: Box<Self>);
    /// In the child: gives the level a child of its own; the lock stays taken, unused.
    fn fork(self: Box<Self>);
}

impl<T: Send + 'static> Holdable for Level<T> {
    fn hold(self: Arc<Self>) -> Box<dyn Held> {
        let level = current(&self);
        let guard = level.lock.lock_arc();
        Box::new(HeldLevel { level, guard })
    }
}

struct HeldLevel<T: 'static> {
    level: Arc<Level<T>>,
    guard: ArcMutexGuard<RawMutex, T>,
}

impl<T: Send + 'static> Held for HeldLevel<T> {
    fn release(self: Box<Self>) {
        drop(self.guard);
    }

    fn fork(self: Box<Self>) {
        let value = (self.level.for_child)(&self.guard);
        let _ = self
            .level
            .child
            .set(Arc::new(Level::new(value, self.level.for_child)));
        std::mem::forget(self.guard);
    }
}

fn install_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        if let Err(e) = atfork::install() {
            // The `log` facade alone: `crate::log` keeps its handler in a `PerProcess`,
            // whose registry is being made right now.
            #[allow(clippy::disallowed_macros)]
            {
                ::log::warn!(
                    "cannot install the fork handlers ({e}); do not fork with clients in use"
                );
            }
        }
    });
}

/// Before a fork, on the forking thread: take every lock, the registry's first (so that no
/// lock registered meanwhile is missed).
pub(crate) fn before() {
    let level = current(&REGISTRY);
    let registry = HeldLevel {
        guard: level.lock.lock_arc(),
        level,
    };
    let mut held: Vec<Box<dyn Held>> = registry
        .guard
        .iter()
        .filter_map(Weak::upgrade)
        .map(Holdable::hold)
        .collect();
    held.insert(0, Box::new(registry));
    HELD.with(|h| *h.borrow_mut() = held);
}

/// After a fork, in the parent: release them.
pub(crate) fn after_in_parent() {
    for held in HELD.with(|h| std::mem::take(&mut *h.borrow_mut())) {
        held.release();
    }
}

/// After a fork, in the child: a new generation, and new locks.
pub(crate) fn after_in_child() {
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    // The new levels are made with the new generation.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    crate::jitter::reseed();
    for held in held {
        held.fork();
    }
}

/// The values a child starts with: `Clone` ones are copied.
pub(crate) fn cloned<T: Clone>(value: &T) -> T {
    value.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_gets_new_locks_and_the_parent_its_old_ones() {
        let a = PerProcess::new(1, |v| v + 100);
        let parent_lock = Arc::clone(&a.get().lock);
        before();
        assert!(parent_lock.is_locked());
        after_in_parent();
        assert!(!parent_lock.is_locked());
        assert!(Arc::ptr_eq(&a.get().lock, &parent_lock));

        // As if forked: the child's lock is new and unlocked, its value made from the old.
        before();
        after_in_child();
        assert!(!Arc::ptr_eq(&a.get().lock, &parent_lock));
        assert_eq!(*a.get().lock.lock(), 101);
        assert!(
            parent_lock.is_locked(),
            "the parent's lock is left alone in the child"
        );
        // A grandchild too.
        before();
        after_in_child();
        assert_eq!(*a.get().lock.lock(), 201);
        // New ones are registered in the child.
        let b = PerProcess::new(7, cloned);
        before();
        after_in_parent();
        assert_eq!(*b.get().lock.lock(), 7);
    }
}
