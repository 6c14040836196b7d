//! The token cache shared between processes: one file per identity in `cache_dir`.
//!
//! It sits behind the in-memory cache: it is consulted only when the in-memory cache would
//! otherwise ask the token endpoint, so a usable token in memory never touches the disk.
//!
//! * The file is named after the identity (a SHA-256 of `token_url`, `client_id`,
//!   `audience` and `lwt_client_id`; never the secret) and holds the token, when the request
//!   that got it was sent (wall clock) and its lifetime. It is replaced whole (temp file,
//!   fsync, rename), so it is read without a lock.
//! * Whoever finds no usable, not-yet-due token in it takes an exclusive lock on a lock file
//!   beside it, reads it again (another process may have refreshed meanwhile), and fetches
//!   only if it still has to. The wait for the lock is bounded by the HTTP timeout; past it,
//!   the caller fetches without the lock. The lock is `flock`-style: it dies with its holder.
//! * The directory must be owned by the effective user and closed to group and others
//!   (it is created `0700`), and so must the file (written `0600`); anything else is refused,
//!   logged, and treated as absent. Corrupt, truncated, unknown-version or wrong-identity
//!   files are treated as absent and replaced on the next write.
//! * Only fingerprints and paths are logged, never a token.

#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::cache::Renewal;
use crate::config::Config;
use crate::error::Error;
use crate::log;
use crate::secret::SecretString;
use crate::token::{AccessToken, TokenType};

/// The file format written, and the only one read.
const FORMAT_VERSION: u64 = 1;
/// A cache file larger than this is not read (it cannot be one of ours).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The longest pause between two attempts to take the lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(25);

/// The shared cache of one identity.
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// `<dir>/<first 32 hex digits of the identity>.json`
    file: PathBuf,
    /// `<dir>/<first 32 hex digits of the identity>.lock`
    lock: PathBuf,
    /// `<dir>/<first 32 hex digits of the identity>.renewed`: when a 401/403 last forced a
    /// renewal, for every process of the identity.
    renewed: PathBuf,
    /// The identity's SHA-256 in hex, also stored in the file and checked on reading.
    identity: String,
    refresh_ratio: f64,
    /// How long to wait for another process's refresh before fetching without the lock.
    lock_wait: Duration,
}

/// The file's content, as read (its `version` is checked first, on its own).
#[derive(serde::Deserialize)]
struct Entry {
    identity: String,
    access_token: String,
    /// `DPoP` for a bound token; absent (older files too) for a bearer token.
    #[serde(default)]
    token_type: Option<String>,
    obtained_at: f64,
    lifetime: f64,
}

/// The file's content, as written.
#[derive(serde::Serialize)]
struct EntryOut<'a> {
    version: u64,
    identity: &'a str,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    obtained_at: f64,
    lifetime: f64,
}

impl DiskCache {
    /// The shared cache for this identity, when `config` names a `cache_dir`. No I/O.
    pub(crate) fn new(config: &Config, lwt_client_id: Option<&str>) -> Option<DiskCache> {
        let dir = config.cache_dir.clone()?;
        // A DPoP-bound token is of use only to a process holding its key: shared only
        // between those (the key's thumbprint is part of the identity), and not at all when
        // the key was made by this process.
        let dpop_key = match &config.dpop {
            Some(key) if key.generated() => return None,
            Some(key) => Some(key.thumbprint()),
            None => None,
        };
        let identity = identity(
            &config.token_url,
            &config.client_id,
            &config.audience,
            lwt_client_id,
            dpop_key,
        );
        let stem = &identity[..32];
        Some(DiskCache {
            file: dir.join(format!("{stem}.json")),
            lock: dir.join(format!("{stem}.lock")),
            renewed: dir.join(format!("{stem}.renewed")),
            dir,
            identity,
            refresh_ratio: config.refresh_ratio,
            lock_wait: config.timeout,
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
        let last = fs::read_to_string(&self.renewed)
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
        if let Some(why) = sys::refusal(&meta, euid) {
            log::warn!(
                "refusing the token cache directory {}: {why}; tokens stay in memory",
                self.dir.display()
            );
            return None;
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
        let mut file = match File::open(&self.file) {
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
        let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
        if let Err(e) = (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
            log::warn!(
                "cannot read the shared token cache {}: {e}",
                self.file.display()
            );
            return None;
        }
        match self.parse(&bytes) {
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

    fn parse(&self, bytes: &[u8]) -> Result<AccessToken, &'static str> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err("it is too large");
        }
        #[derive(serde::Deserialize)]
        struct Version {
            version: u64,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|_| "it is corrupt or truncated")?;
        if version.version != FORMAT_VERSION {
            return Err("it is of an unknown version");
        }
        let entry: Entry =
            serde_json::from_slice(bytes).map_err(|_| "it is corrupt or truncated")?;
        // Moved, not copied, into a zeroing string.
        let value = SecretString::new(entry.access_token);
        if entry.identity != self.identity {
            return Err("it belongs to another identity");
        }
        if value.is_empty() || !value.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err("its token is malformed");
        }
        let valid_secs = |s: f64| (0.0..1e11).contains(&s);
        if !valid_secs(entry.obtained_at) || !valid_secs(entry.lifetime) || entry.lifetime == 0.0 {
            return Err("its times are malformed");
        }
        let token_type = match entry.token_type.as_deref() {
            None => TokenType::Bearer,
            Some("DPoP") => TokenType::Dpop,
            Some(_) => return Err("its token type is unknown"),
        };
        Ok(AccessToken::from_wall_clock(
            value,
            token_type,
            Duration::from_secs_f64(entry.lifetime),
            UNIX_EPOCH + Duration::from_secs_f64(entry.obtained_at),
            self.refresh_ratio,
            crate::jitter::fraction(),
        ))
    }

    /// Replaces the file with one holding `token`: a private temp file in the same
    /// directory, written, synced and renamed over it.
    fn write(&self, token: &AccessToken) -> io::Result<()> {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let entry = EntryOut {
            version: FORMAT_VERSION,
            identity: &self.identity,
            access_token: token.secret(),
            token_type: (token.token_type() == TokenType::Dpop).then_some("DPoP"),
            obtained_at: secs(token.obtained_at()),
            lifetime: token.lifetime().as_secs_f64(),
        };
        // Sized up front (escaping at most sextuples a byte) so that the buffer never
        // reallocates and leaves a stray copy of the token behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(
            256 + self.identity.len() + 6 * token.secret().len(),
        ));
        serde_json::to_writer(&mut *bytes, &entry).map_err(io::Error::other)?;
        bytes.push(b'\n');

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{}.{}-{}-{:x}.tmp",
            &self.identity[..32],
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
        let file = match sys::open_lock_file(&self.lock) {
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
                Ok(()) => return Some(file),
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

/// SHA-256 (hex) of the fields that make a token what it is, NUL-separated. The secret is
/// not among them: a rotated secret does not make the tokens it got invalid.
fn identity(
    token_url: &str,
    client_id: &str,
    audience: &str,
    lwt_client_id: Option<&str>,
    dpop_key: Option<&str>,
) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let parts = [token_url, client_id, audience, lwt_client_id.unwrap_or("")];
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(b"\0");
        }
        ctx.update(part.as_bytes());
    }
    if let Some(thumbprint) = dpop_key {
        ctx.update(b"\0dpop\0");
        ctx.update(thumbprint.as_bytes());
    }
    crate::token::hex(ctx.finish().as_ref())
}

// The file-system side: Unix, or elsewhere a stand-in that turns the shared cache off.
#[cfg(unix)]
mod sys;
#[cfg(not(unix))]
#[path = "disk/sys_other.rs"]
mod sys;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_separates_fields_and_ignores_the_secret() {
        let a = identity("https://t", "id", "aud", None, None);
        assert_eq!(a.len(), 64);
        assert_eq!(a, identity("https://t", "id", "aud", None, None));
        assert_ne!(a, identity("https://t", "id", "aud", Some("x"), None));
        // A DPoP key of its own: another identity.
        assert_ne!(a, identity("https://t", "id", "aud", None, Some("thumb")));
        // NUL separators: moving a character between fields changes the identity.
        assert_ne!(
            identity("https://t", "ida", "ud", None, None),
            identity("https://t", "id", "aud", None, None)
        );
        let config = Config::builder()
            .client_id("id")
            .client_secret("one")
            .build()
            .unwrap();
        let other = Config::builder()
            .client_id("id")
            .client_secret("two")
            .build()
            .unwrap();
        let (a, b) = (DiskCache::new(&config, None), DiskCache::new(&other, None));
        assert!(a.is_none() && b.is_none(), "no cache_dir, no disk cache");
        let config = Config::builder()
            .client_id("id")
            .client_secret("one")
            .cache_dir("/nonexistent")
            .build()
            .unwrap();
        let other = Config::builder()
            .client_id("id")
            .client_secret("two")
            .cache_dir("/nonexistent")
            .build()
            .unwrap();
        let (a, b) = (
            DiskCache::new(&config, None).unwrap(),
            DiskCache::new(&other, None).unwrap(),
        );
        assert_eq!(a.file(), b.file());
        let name = a.file().file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 32 + ".json".len());
        assert!(a.lock.ends_with(name.replace(".json", ".lock")));
    }

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let config = Config::builder()
            .client_id("id")
            .client_secret("secret")
            .cache_dir("/nonexistent")
            .build()
            .unwrap();
        let disk = DiskCache::new(&config, None).unwrap();
        let obtained = SystemTime::now() - Duration::from_secs(100);
        let json = |version: u64, identity: &str, token: &str, obtained_at: f64, lifetime: f64| {
            serde_json::to_vec(&EntryOut {
                version,
                identity,
                access_token: token,
                token_type: None,
                obtained_at,
                lifetime,
            })
            .unwrap()
        };
        let at = obtained.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let good = json(1, &disk.identity, "tok", at, 3600.0);
        let token = disk.parse(&good).unwrap();
        assert_eq!(token.secret(), "tok");
        assert_eq!(token.lifetime(), Duration::from_secs(3600));
        let drift = token
            .obtained_at()
            .duration_since(obtained)
            .unwrap_or_else(|e| e.duration());
        assert!(drift < Duration::from_millis(1));
        assert!(disk.parse(&good[..good.len() / 2]).is_err());
        assert!(disk.parse(b"").is_err());
        assert!(disk.parse(b"[1,2]").is_err());
        assert!(disk
            .parse(&json(2, &disk.identity, "tok", at, 3600.0))
            .is_err());
        assert!(disk
            .parse(&json(1, "someone-else", "tok", at, 3600.0))
            .is_err());
        assert!(disk
            .parse(&json(1, &disk.identity, "", at, 3600.0))
            .is_err());
        assert!(disk
            .parse(&json(1, &disk.identity, "a b", at, 3600.0))
            .is_err());
        assert!(disk
            .parse(&json(1, &disk.identity, "tok", at, 0.0))
            .is_err());
        assert!(disk
            .parse(&json(1, &disk.identity, "tok", -1.0, 60.0))
            .is_err());
    }
}
