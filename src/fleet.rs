//! The fleet cache (`cache_url`): one token per identity per lifetime for the processes of
//! many hosts, through Redis.
//!
//! It sits behind memory and the `cache_dir`: it is asked only when both would otherwise
//! send a process to the token endpoint. Then:
//!
//! * the entry (`crate::entry`: its key named by an HMAC, its value sealed) is read; a
//!   usable token that is not due is used, and no lock is taken;
//! * else the process takes the fleet's lock of the identity, `SET <entry>:lock <random>
//!   NX PX <timeout_ms>`, reads again, fetches, writes the token (`SET … PX` its usable
//!   time, so Redis drops it when it is of no more use), and frees the lock if it is still
//!   its own;
//! * a process that finds the lock taken polls for the holder's token for at most
//!   `timeout_ms`, and fetches itself past that; a holder that dies (SIGKILL) costs the
//!   others at most the lock's expiry, the same bound.
//!
//! Redis is never in the way: a connection lives for one such exchange, every step is
//! bounded by [`IO_TIMEOUT`] (or `timeout_ms`, if shorter), and any failure (refused,
//! slow, wrong password, not Redis at all, out of memory) is logged and leaves the process
//! to the token endpoint as if there were no `cache_url`, skipping the server for a minute
//! ([`target::RETRY_AFTER`]). A value that does not open is logged, ignored and replaced.

#![forbid(unsafe_code)]

mod target;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redis::Connection;

use crate::cache::Renewal;
use crate::config::Config;
use crate::entry::EntryKey;
use crate::error::Error;
use crate::log;
use crate::token::{AccessToken, TokenSource};

pub(crate) use target::FleetTarget;

/// The most any one Redis step may take (connect, TLS, AUTH, one command).
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// The first pause of a process waiting for the lock's holder; later ones double.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Deletes `KEYS[1]` only if it still holds `ARGV[1]`: a holder that outlived its lock's
/// expiry must not free the next holder's lock, and a rejected token's removal must not take
/// a newer token with it.
const DELETE_IF_UNCHANGED: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// One identity's entry in the fleet cache.
pub(crate) struct FleetCache {
    target: Arc<FleetTarget>,
    entry: Arc<EntryKey>,
    /// `lwolf-auth:<entry name>`, and the same with `:lock` and `:renewed`.
    key: String,
    lock_key: String,
    renewed_key: String,
    io_timeout: Duration,
    /// How long to wait for another process's token, and the lock's expiry.
    lock_wait: Duration,
}

impl FleetCache {
    /// The fleet cache of the identity whose entry is `entry`, when `config` names a
    /// `cache_url`. No I/O.
    pub(crate) fn new(config: &Config, entry: &Arc<EntryKey>) -> Option<FleetCache> {
        let target = Arc::clone(config.cache_url.as_ref()?);
        let entry = Arc::clone(entry);
        let key = format!("lwolf-auth:{}", entry.name());
        Some(FleetCache {
            target,
            lock_key: format!("{key}:lock"),
            renewed_key: format!("{key}:renewed"),
            key,
            entry,
            io_timeout: IO_TIMEOUT.min(config.timeout),
            lock_wait: config.timeout,
        })
    }

    /// A usable token: the fleet's if it holds one that is not due, else from `fetch`
    /// (under the fleet's lock, or after waiting for its holder), written for the others.
    /// `serving`: as for `DiskCache::get_or_fetch`.
    pub(crate) fn get_or_fetch(
        &self,
        serving: bool,
        fetch: impl FnOnce() -> Result<AccessToken, Error>,
    ) -> Result<AccessToken, Error> {
        let Some(mut redis) = self.session() else {
            return fetch();
        };
        let mut found = match redis.read(self) {
            Some(token) if !token.is_due_now() => return Ok(token),
            other => other,
        };
        let holder = holder_id();
        let locked = self.lock(&mut redis, &holder, &mut found);
        let outcome = match locked {
            Lock::Served(token) => return Ok(token),
            Lock::Held => match redis.read(self) {
                // Written between the first read and the lock.
                Some(token) if !token.is_due_now() => Ok(token),
                other => {
                    found = other.or(found);
                    self.fetch_and_write(&mut redis, fetch)
                }
            },
            Lock::Without => self.fetch_and_write(&mut redis, fetch),
        };
        if matches!(locked, Lock::Held) {
            redis.run("freeing the lock", |conn| {
                redis::cmd("EVAL")
                    .arg(DELETE_IF_UNCHANGED)
                    .arg(1)
                    .arg(&self.lock_key)
                    .arg(&holder)
                    .query::<i64>(conn)
            });
        }
        match outcome {
            Err(e) => match found {
                Some(token) if !serving && token.is_usable_now() => {
                    log::warn!(
                        "refresh failed ({e}); serving token {} from the fleet cache",
                        token.fingerprint()
                    );
                    Ok(token)
                }
                _ => Err(e),
            },
            ok => ok,
        }
    }

    /// Takes the fleet's lock, or waits for its holder's token (at most `lock_wait`).
    fn lock(&self, redis: &mut Session<'_>, holder: &str, found: &mut Option<AccessToken>) -> Lock {
        let deadline = Instant::now() + self.lock_wait;
        let expiry_ms = self.lock_wait.as_millis().max(1) as u64;
        let mut pause = FIRST_PAUSE;
        loop {
            let taken = redis.run("taking the lock", |conn| {
                redis::cmd("SET")
                    .arg(&self.lock_key)
                    .arg(holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(expiry_ms)
                    .query::<Option<String>>(conn)
            });
            match taken {
                None => return Lock::Without,
                Some(Some(_)) => return Lock::Held,
                Some(None) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "another process of the fleet has held the token lock for over {} ms; \
                     fetching without it",
                    self.lock_wait.as_millis()
                );
                return Lock::Without;
            }
            // A little jitter, so that waiters do not poll in step.
            std::thread::sleep(
                pause
                    .mul_f64(0.5 + crate::jitter::fraction())
                    .min(deadline - now),
            );
            pause = (pause * 2).min(MAX_PAUSE);
            match redis.read(self) {
                Some(token) if !token.is_due_now() => {
                    log::debug!(
                        "token {} fetched by another process of the fleet",
                        token.fingerprint()
                    );
                    return Lock::Served(token);
                }
                Some(token) => *found = Some(token),
                None if redis.is_down() => return Lock::Without,
                None => {}
            }
        }
    }

    fn fetch_and_write(
        &self,
        redis: &mut Session<'_>,
        fetch: impl FnOnce() -> Result<AccessToken, Error>,
    ) -> Result<AccessToken, Error> {
        let token = fetch()?;
        let usable_ms = token
            .usable_until()
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_millis() as u64);
        match self.entry.seal(&token) {
            Some(value) if usable_ms > 0 => {
                let written = redis.run("writing the token", |conn| {
                    redis::cmd("SET")
                        .arg(&self.key)
                        .arg(value)
                        .arg("PX")
                        .arg(usable_ms)
                        .query::<()>(conn)
                });
                if written.is_some() {
                    log::debug!(
                        "token {} saved to the fleet cache {}",
                        token.fingerprint(),
                        self.target.shown()
                    );
                }
            }
            _ => {}
        }
        Ok(token)
    }

    /// Drops the fleet's token: `used`, if the entry still holds it, or whatever it holds.
    pub(crate) fn forget(&self, used: Option<&AccessToken>) {
        let Some(mut redis) = self.session() else {
            return;
        };
        let value = redis.run("reading the token", |conn| {
            redis::cmd("GET")
                .arg(&self.key)
                .query::<Option<Vec<u8>>>(conn)
        });
        let Some(Some(value)) = value else {
            return;
        };
        let held = self.entry.open(&value, TokenSource::CacheUrl).ok();
        if let (Some(used), Some(held)) = (used, &held) {
            if used.fingerprint() != held.fingerprint() {
                return;
            }
        }
        let dropped = redis.run("dropping the token", |conn| {
            redis::cmd("EVAL")
                .arg(DELETE_IF_UNCHANGED)
                .arg(1)
                .arg(&self.key)
                .arg(&value)
                .query::<i64>(conn)
        });
        if dropped == Some(1) {
            log::debug!("token dropped from the fleet cache {}", self.target.shown());
        }
    }

    /// What a 401/403 to `used` may do, for the whole fleet: `Claimed` unless a process
    /// forced a renewal within `interval`; then `Newer` if the fleet holds another usable
    /// token, else `Refused`. Without Redis, `Claimed` (the local bounds still apply).
    pub(crate) fn claim_renewal(&self, used: &AccessToken, interval: Duration) -> Renewal {
        let Some(mut redis) = self.session() else {
            return Renewal::Claimed;
        };
        let claimed = redis.run("claiming a renewal", |conn| {
            redis::cmd("SET")
                .arg(&self.renewed_key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(interval.as_millis() as u64)
                .query::<Option<String>>(conn)
        });
        match claimed {
            None | Some(Some(_)) => Renewal::Claimed,
            Some(None) => match redis.read(self) {
                Some(held) if held.fingerprint() != used.fingerprint() => Renewal::Newer,
                _ => Renewal::Refused,
            },
        }
    }

    /// A connection for one exchange, unless the server failed within the last minute or
    /// fails now.
    fn session(&self) -> Option<Session<'_>> {
        if !self.target.may_try() {
            return None;
        }
        match self.target.connect(self.io_timeout) {
            Ok(conn) => Some(Session {
                target: &self.target,
                conn: Some(conn),
            }),
            Err(e) => {
                self.target.failed("connecting", &e);
                None
            }
        }
    }
}

/// This attempt's name on the lock: 128 bits from the system's random source (not
/// `jitter`'s, which the children of one fork would share), so no other process frees it.
fn holder_id() -> String {
    let mut id = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
        // No random source: still unique to this process and moment.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        id = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    crate::token::hex(&id)
}

/// What taking the lock came to.
enum Lock {
    /// Ours: fetch, write, free it.
    Held,
    /// Its holder wrote this token while we waited.
    Served(AccessToken),
    /// Not had (the wait ran out, or Redis failed): fetch anyway.
    Without,
}

/// One connection, dropped at the first failure (after which every step is skipped).
struct Session<'a> {
    target: &'a FleetTarget,
    conn: Option<Connection>,
}

impl Session<'_> {
    /// `command`'s answer; `None` once anything failed, which is logged the first time.
    fn run<T>(
        &mut self,
        doing: &str,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let conn = self.conn.as_mut()?;
        match command(conn) {
            Ok(answer) => {
                self.target.answered();
                Some(answer)
            }
            Err(e) => {
                self.target.failed(doing, &e);
                self.conn = None;
                None
            }
        }
    }

    fn is_down(&self) -> bool {
        self.conn.is_none()
    }

    /// The entry's token if it holds one that opens and is usable now.
    fn read(&mut self, fleet: &FleetCache) -> Option<AccessToken> {
        let value = self.run("reading the token", |conn| {
            redis::cmd("GET")
                .arg(&fleet.key)
                .query::<Option<Vec<u8>>>(conn)
        })??;
        match fleet.entry.open(&value, TokenSource::CacheUrl) {
            Ok(token) if token.is_usable_now() => {
                log::debug!(
                    "token {} read from the fleet cache {}",
                    token.fingerprint(),
                    fleet.target.shown()
                );
                Some(token)
            }
            Ok(_) => None,
            Err(why) => {
                log::warn!(
                    "ignoring the fleet cache's entry in {}: {why}; it will be replaced",
                    fleet.target.shown()
                );
                None
            }
        }
    }
}
