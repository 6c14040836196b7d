//! The token cache shared between the processes of a host: one file per identity in
//! `cache_dir`, behind the in-memory cache and following the protocol of `shared.rs`.
//!
//! * The file is named after the entry (`crate::entry`: an HMAC of the identity under a key
//!   derived from the credential, so a rotated secret has a file of its own) and holds the
//!   token sealed (AES-256-GCM). It is replaced whole (temp file, fsync, rename), so it is
//!   read without a lock.
//! * The lock is `flock`-style on a file beside it (`lock.rs`): it dies with its holder,
//!   and a child of a fork does not keep its parent's.
//! * The directory is checked as `ssh` checks its own and worked through a handle
//!   (`sys.rs`): no link of another user, no directory above it that someone else could
//!   change, ours alone (`0700`), files `0600`, never opened through a link or blocking on
//!   a FIFO. Anything else is refused, logged, and treated as absent. Files that do not
//!   open (truncated, altered, of another version or credential) are replaced.
//! * Once per process, leftovers of the library's own names are swept away (`sweep.rs`).
//! * Only fingerprints and paths are logged, never a token; a path only if it exists.

// No unsafe code here; Windows' DACL calls (disk/sys_windows.rs) are the one exception.
#![deny(unsafe_code)]

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::Renewal;
use crate::config::Config;
use crate::entry::{EntryKey, MAX_VALUE_BYTES};
use crate::log;
use crate::secret::shown;
use crate::shared::{lock_wait_until, Lock, SharedLayer};
use crate::token::{AccessToken, TokenSource};

mod lock;
mod sweep;
#[cfg(unix)]
mod sys;
#[cfg(windows)]
#[path = "disk/sys_windows.rs"]
mod sys;
#[cfg(not(any(unix, windows)))]
#[path = "disk/sys_other.rs"]
mod sys;

use sys::SafeDir;

/// What opening the cache directory came to (each system's `sys` module opens it).
pub(super) enum Opened {
    Safe(SafeDir),
    /// Missing, and not to be made.
    #[cfg_attr(not(any(unix, windows)), allow(dead_code))]
    Missing,
    /// Not to be used: why (for the log).
    Refused(String),
}

/// One entry of the directory, as the sweep needs it.
pub(super) struct Entry {
    pub name: String,
    pub is_file: bool,
    pub age: std::time::Duration,
}

/// What a cache file's name ends with.
const TOKEN_SUFFIX: &str = ".token";

/// The shared cache of one identity.
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// `<first 32 hex digits of the entry's name>`: the stem of its files.
    stem: String,
    /// `<stem>.token`, and the path of it.
    file_name: String,
    file: PathBuf,
    /// `<stem>.lock`
    lock_name: String,
    entry: Arc<EntryKey>,
    /// The limit of one attempt: what a waiter keeps back for its own fetch.
    timeout: Duration,
    /// Whether this process has swept the directory's leftovers yet.
    swept: AtomicBool,
    /// Whether a refusal of the directory was logged as a warning yet: it is checked on
    /// every use, and said again only at DEBUG.
    refusal_warned: AtomicBool,
}

impl DiskCache {
    /// The shared cache of the identity whose entry is `entry`, when `config` names a
    /// `cache_dir`. No I/O.
    pub(crate) fn new(config: &Config, entry: &Arc<EntryKey>) -> Option<DiskCache> {
        let dir = config.cache_dir.clone()?;
        let entry = Arc::clone(entry);
        let stem = entry.name()[..32].to_owned();
        let file_name = format!("{stem}{TOKEN_SUFFIX}");
        Some(DiskCache {
            file: dir.join(&file_name),
            lock_name: format!("{stem}.lock"),
            file_name,
            stem,
            dir,
            entry,
            timeout: config.timeout,
            swept: AtomicBool::new(false),
            refusal_warned: AtomicBool::new(false),
        })
    }

    /// The cache file of this identity.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The directory, made if `create` and missing, and checked; `None` (logged, unless it
    /// is simply missing and was not to be made) when it must not be used.
    fn open_dir(&self, create: bool) -> Option<SafeDir> {
        match SafeDir::open(&self.dir, create) {
            Opened::Safe(dir) => {
                if create && !self.swept.swap(true, Ordering::Relaxed) {
                    sweep::leftovers(&dir, &self.dir);
                }
                Some(dir)
            }
            Opened::Missing => None,
            Opened::Refused(why) => {
                let message = format!(
                    "refusing the token cache directory {}: {why}; tokens stay in memory",
                    shown(&self.dir)
                );
                if self.refusal_warned.swap(true, Ordering::Relaxed) {
                    log::debug!("{message}");
                } else {
                    log::warn!("{message}");
                }
                None
            }
        }
    }

    /// The file's token if it is there, trusted, well-formed and ours, usable or not.
    fn read_any(&self, dir: &SafeDir) -> Option<AccessToken> {
        let mut file = match dir.open_file(&self.file_name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!(
                    "refusing the shared token cache {}: {e}; not reading it",
                    shown(&self.file)
                );
                return None;
            }
        };
        let mut bytes = Vec::with_capacity(1024);
        if let Err(e) = (&mut file)
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
        {
            log::warn!(
                "cannot read the shared token cache {}: {e}",
                shown(&self.file)
            );
            return None;
        }
        match self.entry.open(&bytes, TokenSource::CacheDir) {
            Ok(token) => Some(token),
            Err(why) => {
                log::warn!(
                    "ignoring the shared token cache {}: {why}; it will be replaced",
                    shown(&self.file)
                );
                None
            }
        }
    }

    /// Replaces `name` with `bytes`: a private temp file in the same directory, written,
    /// synced and renamed over it.
    fn replace(&self, dir: &SafeDir, name: &str, bytes: &[u8]) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            "{}.{}-{}-{:x}.tmp",
            self.stem,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            crate::jitter::u32()
        );
        let written = (|| {
            let mut file = dir.create_file(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            dir.rename(&tmp, name)
        })();
        if written.is_err() {
            let _ = dir.remove(&tmp);
            return written;
        }
        // So that the rename itself survives a crash.
        dir.sync();
        Ok(())
    }

    /// The lock, waited for until `until`; `None` (logged) when it could not be had.
    fn take_lock(&self, dir: &SafeDir, until: Instant) -> Option<lock::Held> {
        match lock::take(dir, &self.lock_name, until) {
            lock::Taken::Held(held) => Some(held),
            lock::Taken::TimedOut => {
                log::warn!(
                    "another process still holds the token cache lock of {}; going on \
                     without the lock",
                    shown(&self.dir)
                );
                None
            }
            lock::Taken::Failed(why) => {
                log::warn!(
                    "cannot open the lock file of {}: {why}; going on without the lock",
                    shown(&self.dir)
                );
                None
            }
        }
    }

    /// `.renewed` file of the API at `origin`: when a 401/403 of that API last forced a
    /// renewal, for every process of the identity.
    fn renewed_name(&self, origin: &str) -> String {
        format!("{}.{}.renewed", self.stem, sweep::origin_tag(origin))
    }
}

impl SharedLayer for DiskCache {
    type Session = SafeDir;
    type Guard = Option<lock::Held>;

    fn describe(&self) -> String {
        format!("the shared cache {}", shown(&self.file))
    }

    fn session(&self) -> Option<SafeDir> {
        self.open_dir(true)
    }

    fn read(&self, dir: &mut SafeDir) -> Option<AccessToken> {
        let token = self.read_any(dir)?;
        if token.is_usable_now() {
            log::debug!(
                "token {} read from the shared cache {}",
                token.fingerprint(),
                shown(&self.file)
            );
            Some(token)
        } else {
            log::debug!(
                "token {} in the shared cache has expired",
                token.fingerprint()
            );
            None
        }
    }

    fn lock(
        &self,
        dir: &mut SafeDir,
        until: Instant,
        _wanted: &dyn Fn(&AccessToken) -> bool,
        _found: &mut Option<AccessToken>,
    ) -> Lock<Option<lock::Held>> {
        // Whoever held it wrote before releasing it: the read after the lock gets that.
        match self.take_lock(dir, lock_wait_until(until, self.timeout)) {
            Some(held) => Lock::Held(Some(held)),
            None => Lock::Without,
        }
    }

    fn write(&self, dir: &mut SafeDir, token: &AccessToken) {
        let Some(bytes) = self.entry.seal(token) else {
            log::warn!("cannot seal the token for the shared cache: no random source");
            return;
        };
        match self.replace(dir, &self.file_name, &bytes) {
            Ok(()) => log::debug!(
                "token {} saved to the shared cache {}",
                token.fingerprint(),
                shown(&self.file)
            ),
            Err(e) => log::warn!(
                "cannot write the shared token cache {}: {e}",
                shown(&self.file)
            ),
        }
    }

    fn unlock(&self, _dir: &mut SafeDir, guard: Option<lock::Held>) {
        drop(guard);
    }

    /// Under the lock, so a fresh token written meanwhile stays.
    fn forget(&self, used: Option<&AccessToken>) {
        let Some(dir) = self.open_dir(false) else {
            return;
        };
        let until = Instant::now() + self.timeout;
        let held = self.take_lock(&dir, until);
        let drop_it = match used {
            None => true,
            Some(used) => self
                .read_any(&dir)
                .is_some_and(|held| held.fingerprint() == used.fingerprint()),
        };
        if drop_it {
            match dir.remove(&self.file_name) {
                Ok(()) => log::debug!("token dropped from the shared cache {}", shown(&self.file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "cannot remove the shared token cache {}: {e}",
                    shown(&self.file)
                ),
            }
        }
        drop(held);
    }

    /// `Claimed` (and the time is written for the others) unless one forced a renewal for
    /// the API at `origin` within `interval` (the `.renewed` file says when, by the wall
    /// clock); then `Newer` if the file holds another usable token (theirs: no token
    /// request needed), else `Refused`. Under the lock, so two processes do not both claim
    /// it. Without a usable directory, only the in-memory bound applies: `Claimed`.
    fn claim_renewal(&self, used: &AccessToken, origin: &str, interval: Duration) -> Renewal {
        let Some(mut dir) = self.open_dir(true) else {
            return Renewal::Claimed;
        };
        let held = self.take_lock(&dir, Instant::now() + self.timeout);
        let name = self.renewed_name(origin);
        let now = SystemTime::now();
        let last = dir
            .open_file(&name)
            .and_then(|file| io::read_to_string(file.take(64)))
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| UNIX_EPOCH + Duration::from_secs_f64(secs));
        let recent = last.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age < interval));
        let outcome = if recent {
            let newer = self
                .read(&mut dir)
                .is_some_and(|held| held.fingerprint() != used.fingerprint());
            if newer {
                Renewal::Newer
            } else {
                Renewal::Refused
            }
        } else {
            let secs = now
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            if let Err(e) = self.replace(&dir, &name, format!("{secs}\n").as_bytes()) {
                log::warn!("cannot record a renewal in {}: {e}", shown(&self.dir));
            }
            Renewal::Claimed
        };
        drop(held);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_of(config: &Config) -> Option<DiskCache> {
        DiskCache::new(config, &Arc::new(EntryKey::new(config, None).unwrap()))
    }

    fn disk(secret: &str) -> DiskCache {
        let config = Config::builder()
            .client_id("id")
            .client_secret(secret)
            .cache_dir("/nonexistent")
            .build()
            .unwrap();
        disk_of(&config).unwrap()
    }

    #[test]
    fn files_are_named_by_identity_and_credential() {
        let config = Config::builder()
            .client_id("id")
            .client_secret("one")
            .build()
            .unwrap();
        assert!(disk_of(&config).is_none(), "no cache_dir");
        let (a, b) = (disk("one"), disk("two"));
        assert_eq!(a.file(), disk("one").file());
        assert_ne!(a.file(), b.file(), "a rotated secret has a file of its own");
        let name = a.file().file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 32 + TOKEN_SUFFIX.len());
        assert_eq!(a.lock_name, name.replace(TOKEN_SUFFIX, ".lock"));
        assert!(sweep::is_own_name(&a.renewed_name("https://api.lwolf.com")));
        assert_ne!(
            a.renewed_name("https://api.lwolf.com"),
            a.renewed_name("https://gateway.lwolf.com")
        );
    }
}
