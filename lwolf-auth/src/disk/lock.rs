//! The lock that lets one process of the host fetch while the others wait for its token: an
//! exclusive `flock`-style lock on a file beside the entry, which dies with its holder.
//!
//! A lock lives on an open file, and a child of `fork()` inherits the open files of its
//! parent: a child forked while a thread of the parent held the lock would keep it for as
//! long as the child lives, and every process of the host would wait for it. So a held
//! lock's file is kept in a registry of this process rather than by its holder, and a child
//! of a fork closes every file in it (which releases nothing: the parent's descriptor still
//! holds the lock, and the parent releases it as usual).

use std::cell::Cell;
use std::fs::{File, TryLockError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use super::sys::SafeDir;
use crate::fork::PerProcess;

/// The longest pause between two attempts to take the lock.
const MAX_PAUSE: Duration = Duration::from_millis(25);

/// The lock files this process has open, by the id of their holder.
type Registry = Vec<(u64, Cell<Option<File>>)>;

static OPEN: Lazy<PerProcess<Registry>> = Lazy::new(|| PerProcess::new(Vec::new(), in_a_child));
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A child of a fork closes the lock files it inherited (their locks stay with the parent)
/// and starts with none.
fn in_a_child(inherited: &Registry) -> Registry {
    for (_, file) in inherited {
        drop(file.take());
    }
    Vec::new()
}

/// A held lock (or an open lock file being waited on); released when dropped.
pub(crate) struct Held {
    id: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let level = OPEN.get();
        let mut open = level.lock.lock();
        // Absent in a child of a fork: the file was closed there already.
        if let Some(i) = open.iter().position(|(id, _)| *id == self.id) {
            drop(open.swap_remove(i));
        }
    }
}

/// What became of the attempt to take the lock.
pub(super) enum Taken {
    Held(Held),
    /// Another process still held it at `until`.
    TimedOut,
    /// The lock file could not be used: why.
    Failed(String),
}

/// The exclusive lock on `name` in `dir`, waited for until `until`.
pub(super) fn take(dir: &SafeDir, name: &str, until: Instant) -> Taken {
    let mut pause = Duration::from_millis(1);
    'open: loop {
        let file = match dir.open_lock_file(name) {
            Ok(file) => file,
            Err(e) => return Taken::Failed(e.to_string()),
        };
        // Registered before it is locked: a fork from now on closes it in the child.
        let held = register(file);
        loop {
            match with_file(&held, |file| {
                file.try_lock().map(|()| dir.is_still_at(file, name))
            }) {
                Some(Ok(true)) => return Taken::Held(held),
                // The sweep of another process removed the file (under its lock) since it
                // was opened: a lock on a removed file excludes no one.
                Some(Ok(false)) => continue 'open,
                Some(Err(TryLockError::WouldBlock)) => {}
                Some(Err(TryLockError::Error(e))) => return Taken::Failed(e.to_string()),
                None => return Taken::Failed("the lock file was closed".to_owned()),
            }
            let now = Instant::now();
            if now >= until {
                return Taken::TimedOut;
            }
            // A little jitter, so that waiters do not poll in step.
            let jittered = pause.mul_f64(0.5 + crate::jitter::fraction());
            std::thread::sleep(jittered.min(until - now));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

/// Tries once to take the lock of `file` (a stray lock file found by the sweep); the held
/// lock when no one else had it.
pub(super) fn try_take(file: File) -> Option<Held> {
    let held = register(file);
    matches!(with_file(&held, File::try_lock), Some(Ok(()))).then_some(held)
}

fn register(file: File) -> Held {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    OPEN.get().lock.lock().push((id, Cell::new(Some(file))));
    Held { id }
}

/// `f` applied to the file of `held`, under the registry's lock (never across a wait).
fn with_file<R>(held: &Held, f: impl FnOnce(&File) -> R) -> Option<R> {
    let level = OPEN.get();
    let open = level.lock.lock();
    let (_, cell) = open.iter().find(|(id, _)| *id == held.id)?;
    let file = cell.take()?;
    let result = f(&file);
    cell.set(Some(file));
    Some(result)
}

/// Whether the lock file of `held` is still the file named `name` in `dir`.
pub(super) fn is_still_at(dir: &SafeDir, held: &Held, name: &str) -> bool {
    with_file(held, |file| dir.is_still_at(file, name)).unwrap_or(false)
}
