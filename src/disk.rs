//! The token cache shared between processes: one file per identity in `cache_dir`.
//!
//! It sits behind the in-memory cache: it is consulted only when the in-memory cache would
//! otherwise ask the token endpoint, so a usable token in memory never touches the disk.
//!
//! * The file is named after the entry (`crate::entry`: an HMAC of the identity under a key
//!   derived from the credential, so a rotated secret has a file of its own) and holds the
//!   token sealed (AES-256-GCM). It is replaced whole (temp file, fsync, rename), so it is
//!   read without a lock.
//! * Whoever finds no usable, not-yet-due token in it takes an exclusive lock on a lock file
//!   beside it, reads it again (another process may have refreshed meanwhile), and fetches
//!   only if it still has to. The wait for the lock is bounded by the HTTP timeout; past it,
//!   the caller fetches without the lock. The lock is `flock`-style: it dies with its holder.
//! * The directory must be owned by the effective user and closed to group and others
//!   (it is created `0700`), no directory above it may be open to everyone without the
//!   sticky bit, and the files must be private too (written `0600`) and are never opened
//!   through a symbolic link; anything else is refused, logged, and treated as absent.
//!   Files that do not open (truncated, altered, of another version or credential) are
//!   treated as absent and replaced on the next write.
//! * Once per process, leftovers are swept away (`sweep.rs`): temp files of writers that
//!   died, lock files of entries that are gone, and plain-text files of older versions.
//! * Only fingerprints and paths are logged, never a token.

#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::Renewal;
use crate::config::Config;
use crate::entry::{EntryKey, MAX_VALUE_BYTES};
use crate::error::Error;
use crate::log;
use crate::token::{AccessToken, TokenSource};

/// What a cache file's name ends with.
pub(crate) const TOKEN_SUFFIX: &str = ".token";
/// The longest pause between two attempts to take the lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(25);

/// The shared cache of one identity.
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// `<dir>/<first 32 hex digits of the entry's name>.token`
    file: PathBuf,
    /// `<dir>/<the same>.lock`
    lock: PathBuf,
    /// `<dir>/<the same>.renewed`: when a 401/403 last forced a renewal, for every process
    /// of the identity.
    renewed: PathBuf,
    entry: Arc<EntryKey>,
    /// How long to wait for another process's refresh before fetching without the lock.
    lock_wait: Duration,
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
        let stem = &entry.name()[..32];
        Some(DiskCache {
            file: dir.join(format!("{stem}{TOKEN_SUFFIX}")),
            lock: dir.join(format!("{stem}.lock")),
            renewed: dir.join(format!("{stem}.renewed")),
            dir,
            entry,
            lock_wait: config.timeout,
            swept: AtomicBool::new(false),
            refusal_warned: AtomicBool::new(false),
        })
    }

    /// The cache file of this identity.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// A usable token: from the file if it holds one that is not yet due, else from `fetch`
    /// (under the lock, after reading the file again), written back for the others.
    ///
    /// `serving` says whether the in-memory cache still serves a usable token. If it does
    /// not and `fetch` fails, a token from the file that is due but still usable is handed
    /// out rather than the error (a failed refresh is no error while a token is servable);
    /// if it does, the error goes back so that the in-memory cache keeps its own token and
    /// backs off.
    pub(crate) fn get_or_fetch(
        &self,
        serving: bool,
        fetch: impl FnOnce() -> Result<AccessToken, Error>,
    ) -> Result<AccessToken, Error> {
        let Some(euid) = self.prepare_dir(true) else {
            return fetch();
        };
        if let Ok(token) = self.read_fresh(euid, "read from the shared cache") {
            return Ok(token);
        }
        let lock = self.lock();
        // Another process may have refreshed while we waited.
        let found = match self.read_fresh(euid, "refreshed by another process, read from") {
            Ok(token) => return Ok(token),
            Err(found) => found,
        };
        match fetch() {
            Ok(token) => {
                match self.write(&token) {
                    Ok(()) => log::debug!(
                        "token {} saved to the shared cache {}",
                        token.fingerprint(),
                        self.file.display()
                    ),
                    Err(e) => log::warn!(
                        "cannot write the shared token cache {}: {e}",
                        self.file.display()
                    ),
                }
                drop(lock);
                Ok(token)
            }
            Err(e) => {
                drop(lock);
                match found {
                    Some(token) if !serving && token.is_usable_now() => {
                        log::warn!(
                            "refresh failed ({e}); serving token {} from the shared cache",
                            token.fingerprint()
                        );
                        Ok(token)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// The file's token if it is usable and not yet due (logged as `how`); else the usable
    /// but due one, if any, as the error.
    fn read_fresh(&self, euid: u32, how: &str) -> Result<AccessToken, Option<AccessToken>> {
        match self.read_usable(euid) {
            Some(token) if !is_due(&token) => {
                log::debug!(
                    "token {} {how} {}",
                    token.fingerprint(),
                    self.file.display()
                );
                Ok(token)
            }
            other => Err(other),
        }
    }

    /// What a 401/403 to `used` may do, for every process of the identity: `Claimed` (and
    /// the time is written for the others) unless one forced a renewal within `interval`
    /// (the file `.renewed` says when, by the wall clock); then `Newer` if the shared file
    /// holds another usable token (theirs: no token request needed), else `Refused`. Under
    /// the lock, so two processes do not both claim it. Without a usable directory, only
    /// the in-memory bound applies: `Claimed`.
    pub(crate) fn claim_renewal(&self, used: &AccessToken, interval: Duration) -> Renewal {
        let Some(euid) = self.prepare_dir(true) else {
            return Renewal::Claimed;
        };
        let lock = self.lock();
        let now = SystemTime::now();
        let last = sys::open_no_follow(&self.renewed)
            .and_then(|file| io::read_to_string(file.take(64)))
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| UNIX_EPOCH + Duration::from_secs_f64(secs));
        let recent = last.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age < interval));
        let outcome = if recent {
            let newer = self
                .read_usable(euid)
                .is_some_and(|held| held.fingerprint() != used.fingerprint());
            if newer {
                Renewal::Newer
            } else {
                Renewal::Refused
            }
        } else {
            // Replaced, not rewritten: the file is only ever made new, private (under the
            // lock, so no other process of ours is between the two).
            let secs = now
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let _ = fs::remove_file(&self.renewed);
            let written = sys::create_private_file(&self.renewed)
                .and_then(|mut file| file.write_all(format!("{secs}\n").as_bytes()));
            if let Err(e) = written {
                log::warn!("cannot record a renewal in {}: {e}", self.renewed.display());
            }
            Renewal::Claimed
        };
        drop(lock);
        outcome
    }

    /// Drops the file's token: the one `used`, if the file still holds it, or whatever it
    /// holds when `used` is `None`. Under the lock, so a fresh token written meanwhile stays.
    pub(crate) fn forget(&self, used: Option<&AccessToken>) {
        let Some(euid) = self.prepare_dir(false) else {
            return;
        };
        let lock = self.lock();
        let drop_it = match used {
            None => true,
            Some(used) => self
                .read(euid)
                .is_some_and(|held| held.fingerprint() == used.fingerprint()),
        };
        if drop_it {
            match fs::remove_file(&self.file) {
                Ok(()) => log::debug!(
                    "token dropped from the shared cache {}",
                    self.file.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "cannot remove the shared token cache {}: {e}",
                    self.file.display()
                ),
            }
        }
        drop(lock);
    }

    /// Creates the directory if asked and missing, and checks that it is ours alone.
    /// The effective uid when it is; `None` (logged, unless it is simply missing and was
    /// not to be created) when the cache must not be used.
    fn prepare_dir(&self, create: bool) -> Option<u32> {
        if create {
            if let Err(e) = sys::create_private_dir(&self.dir) {
                log::warn!(
                    "cannot create the token cache directory {}: {e}; tokens stay in memory",
                    self.dir.display()
                );
                return None;
            }
        }
        let meta = match fs::metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return None,
            Err(e) => {
                log::warn!(
                    "cannot use the token cache directory {}: {e}",
                    self.dir.display()
                );
                return None;
            }
        };
        if !meta.is_dir() {
            log::warn!(
                "the token cache directory {} is not a directory; tokens stay in memory",
                self.dir.display()
            );
            return None;
        }
        let Some(euid) = sys::effective_uid(&self.dir) else {
            log::warn!(
                "cannot tell who this process runs as; the token cache {} is not used",
                self.dir.display()
            );
            return None;
        };
        if let Some(why) = sys::refusal(&meta, euid).or_else(|| sys::parents_refusal(&self.dir)) {
            let message = format!(
                "refusing the token cache directory {}: {why}; tokens stay in memory",
                self.dir.display()
            );
            if self.refusal_warned.swap(true, Ordering::Relaxed) {
                log::debug!("{message}");
            } else {
                log::warn!("{message}");
            }
            return None;
        }
        if create && !self.swept.swap(true, Ordering::Relaxed) {
            sweep::leftovers(&self.dir);
        }
        Some(euid)
    }

    /// The file's token if it is there, trusted, well-formed, ours, and usable now.
    fn read_usable(&self, euid: u32) -> Option<AccessToken> {
        let token = self.read(euid)?;
        if token.is_usable_now() {
            Some(token)
        } else {
            log::debug!(
                "token {} in the shared cache has expired",
                token.fingerprint()
            );
            None
        }
    }

    /// The file's token if it is there, trusted, well-formed and ours, usable or not.
    fn read(&self, euid: u32) -> Option<AccessToken> {
        let mut file = match sys::open_no_follow(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!(
                    "cannot open the shared token cache {}: {e}",
                    self.file.display()
                );
                return None;
            }
        };
        // Checked on the open file itself, so that what is checked is what is read.
        let refusal = match file.metadata() {
            Ok(meta) if !meta.is_file() => Some("it is not a regular file".to_owned()),
            Ok(meta) => sys::refusal(&meta, euid),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refusal {
            log::warn!(
                "refusing the shared token cache {}: {why}; not reading it",
                self.file.display()
            );
            return None;
        }
        let mut bytes = Vec::with_capacity(1024);
        if let Err(e) = (&mut file)
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
        {
            log::warn!(
                "cannot read the shared token cache {}: {e}",
                self.file.display()
            );
            return None;
        }
        match self.entry.open(&bytes, TokenSource::CacheDir) {
            Ok(token) => Some(token),
            Err(why) => {
                log::warn!(
                    "ignoring the shared token cache {}: {why}; it will be replaced",
                    self.file.display()
                );
                None
            }
        }
    }

    /// Replaces the file with one holding `token`: a private temp file in the same
    /// directory, written, synced and renamed over it.
    fn write(&self, token: &AccessToken) -> io::Result<()> {
        let bytes = self
            .entry
            .seal(token)
            .ok_or_else(|| io::Error::other("the system's random source failed"))?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{}.{}-{}-{:x}.tmp",
            &self.entry.name()[..32],
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            crate::jitter::u32()
        ));
        let written = (|| {
            let mut file = sys::create_private_file(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &self.file)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return written;
        }
        // So that the rename itself survives a crash; not worth failing over.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The exclusive lock on the lock file, waited for at most `lock_wait`. `None` (logged)
    /// when it could not be had: the caller then goes on without it.
    fn lock(&self) -> Option<File> {
        let mut file = match sys::open_lock_file(&self.lock) {
            Ok(f) => f,
            Err(e) => {
                log::warn!(
                    "cannot open the lock file {}: {e}; going on without the lock",
                    self.lock.display()
                );
                return None;
            }
        };
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                // The sweep of another process may have removed the file (under its lock)
                // since it was opened: a lock on a removed file excludes no one.
                Ok(()) if sys::is_still_at(&file, &self.lock) => return Some(file),
                Ok(()) => match sys::open_lock_file(&self.lock) {
                    Ok(again) => {
                        file = again;
                        continue;
                    }
                    Err(e) => {
                        log::warn!(
                            "cannot open the lock file {}: {e}; going on without the lock",
                            self.lock.display()
                        );
                        return None;
                    }
                },
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    log::warn!(
                        "cannot lock {}: {e}; going on without the lock",
                        self.lock.display()
                    );
                    return None;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "another process has held {} for over {} ms; going on without the lock",
                    self.lock.display(),
                    self.lock_wait.as_millis()
                );
                return None;
            }
            // A little jitter, so that waiters do not poll in step.
            let jittered = pause.mul_f64(0.5 + crate::jitter::fraction());
            std::thread::sleep(jittered.min(deadline - now));
            pause = (pause * 2).min(MAX_LOCK_PAUSE);
        }
    }
}

fn is_due(token: &AccessToken) -> bool {
    token.is_due_now()
}

// The file-system side: Unix, or elsewhere a stand-in that turns the shared cache off.
mod sweep;
#[cfg(unix)]
mod sys;
#[cfg(not(unix))]
#[path = "disk/sys_other.rs"]
mod sys;

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
        assert!(a.lock.ends_with(name.replace(TOKEN_SUFFIX, ".lock")));
    }
}
