//! The fleet cache (`cache_url`): one token per identity per lifetime for the processes of
//! many hosts, through Redis, following the protocol of `shared.rs`.
//!
//! * The entry (`crate::entry`: its key named by an HMAC, its value sealed) is read; a
//!   usable token that is not due is used, and no lock is taken.
//! * Else the process takes the fleet's lock of the identity, `SET <entry>:lock <random>
//!   NX PX <deadline_ms>` (as long as its fetch may take, retries included), reads again,
//!   fetches, writes the token (`SET … PX` its usable time, so Redis drops it when it is of
//!   no more use), and frees the lock if it is still its own.
//! * A process that finds the lock taken polls for the holder's token until its own
//!   deadline less one attempt's time, and fetches itself past that; a holder that dies
//!   (SIGKILL) costs the others at most that wait.
//!
//! Redis is kept out of the way: a connection lives for one such exchange, and each
//! exchange with the server is bounded as a whole (`wire.rs`: [`IO_TIMEOUT`], or
//! `timeout_ms` if shorter), name resolution included. A server that fails (refused, slow,
//! wrong password, not Redis at all, out of memory, a reply too large) is logged and left
//! alone for a minute ([`target::RETRY_AFTER`]), the process going to the token endpoint as
//! if there were no `cache_url`. The cost of a bad server is thus bounded: one failed
//! exchange (at most [`IO_TIMEOUT`]) per process per minute. A value that does not open is
//! logged, ignored and replaced.

#![forbid(unsafe_code)]

mod target;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redis::FromRedisValue;

use crate::cache::Renewal;
use crate::config::Config;
use crate::entry::EntryKey;
use crate::log;
use crate::shared::{lock_wait_until, Lock, SharedLayer};
use crate::token::{AccessToken, TokenSource};

pub(crate) use target::FleetTarget;
use wire::{Conn, WireError};

/// The most any one exchange with Redis may take (connect, TLS, AUTH; one command).
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
    /// `lwolf-auth:<entry name>`, and the same with `:lock`.
    key: String,
    lock_key: String,
    io_timeout: Duration,
    /// The limit of one attempt: what a waiter keeps back for its own fetch.
    timeout: Duration,
    /// The lock's expiry: as long as a holder's fetch may take.
    lock_expiry: Duration,
}

impl FleetCache {
    /// The fleet cache on `target` of the identity whose entry is `entry`. No I/O.
    pub(crate) fn new(
        config: &Config,
        target: &Arc<FleetTarget>,
        entry: &Arc<EntryKey>,
    ) -> FleetCache {
        let entry = Arc::clone(entry);
        let key = format!("lwolf-auth:{}", entry.name());
        FleetCache {
            target: Arc::clone(target),
            lock_key: format!("{key}:lock"),
            key,
            entry,
            io_timeout: IO_TIMEOUT.min(config.timeout),
            timeout: config.timeout,
            lock_expiry: config.deadline,
        }
    }

    /// `<entry>:renewed:<tag of origin>`: when a 401/403 of the API at `origin` last forced
    /// a renewal, for the whole fleet.
    fn renewed_key(&self, origin: &str) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, origin.as_bytes());
        format!(
            "{}:renewed:{}",
            self.key,
            crate::token::hex(&digest.as_ref()[..8])
        )
    }

    /// The entry's value as it is, `None` when there is none or the exchange failed.
    fn get(&self, session: &mut Session) -> Option<Vec<u8>> {
        session
            .run("reading the token", redis::cmd("GET").arg(&self.key))
            .flatten()
    }
}

impl SharedLayer for FleetCache {
    type Session = Session;
    type Guard = String;

    fn describe(&self) -> String {
        format!("the fleet cache {}", self.target.shown())
    }

    fn session(&self) -> Option<Session> {
        if !self.target.may_try() {
            return None;
        }
        match self.target.connect(self.io_timeout) {
            Ok(conn) => Some(Session {
                target: Arc::clone(&self.target),
                conn: Some(conn),
                down: false,
                bound: self.io_timeout,
            }),
            Err(e) => {
                self.target.failed("connecting", &e);
                None
            }
        }
    }

    fn read(&self, session: &mut Session) -> Option<AccessToken> {
        let value = self.get(session)?;
        match self.entry.open(&value, TokenSource::CacheUrl) {
            Ok(token) if token.is_usable_now() => {
                log::debug!(
                    "token {} read from the fleet cache {}",
                    token.fingerprint(),
                    self.target.shown()
                );
                Some(token)
            }
            Ok(_) => None,
            Err(why) => {
                log::warn!(
                    "ignoring the fleet cache's entry in {}: {why}; it will be replaced",
                    self.target.shown()
                );
                None
            }
        }
    }

    fn lock(
        &self,
        session: &mut Session,
        until: Instant,
        wanted: &dyn Fn(&AccessToken) -> bool,
        found: &mut Option<AccessToken>,
    ) -> Lock<String> {
        let holder = holder_id();
        let wait_until = lock_wait_until(until, self.timeout);
        let expiry_ms = self.lock_expiry.as_millis().max(1) as u64;
        let mut pause = FIRST_PAUSE;
        loop {
            let taken: Option<Option<String>> = session.run(
                "taking the lock",
                redis::cmd("SET")
                    .arg(&self.lock_key)
                    .arg(&holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(expiry_ms),
            );
            match taken {
                None => return Lock::Without,
                Some(Some(_)) => return Lock::Held(holder),
                Some(None) => {}
            }
            let now = Instant::now();
            if now >= wait_until {
                log::warn!(
                    "another process of the fleet still holds the token lock; fetching \
                     without it"
                );
                return Lock::Without;
            }
            // A little jitter, so that waiters do not poll in step.
            std::thread::sleep(
                pause
                    .mul_f64(0.5 + crate::jitter::fraction())
                    .min(wait_until - now),
            );
            pause = (pause * 2).min(MAX_PAUSE);
            match self.read(session).filter(|t| wanted(t)) {
                Some(token) if !token.is_due_now() => {
                    log::debug!(
                        "token {} fetched by another process of the fleet",
                        token.fingerprint()
                    );
                    return Lock::Served(token);
                }
                Some(token) => *found = Some(token),
                None if session.is_down() => return Lock::Without,
                None => {}
            }
        }
    }

    fn write(&self, session: &mut Session, token: &AccessToken) {
        let usable_ms = token
            .usable_until()
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_millis() as u64);
        let Some(value) = self.entry.seal(token).filter(|_| usable_ms > 0) else {
            return;
        };
        let written: Option<()> = session.run(
            "writing the token",
            redis::cmd("SET")
                .arg(&self.key)
                .arg(value)
                .arg("PX")
                .arg(usable_ms),
        );
        if written.is_some() {
            log::debug!(
                "token {} saved to the fleet cache {}",
                token.fingerprint(),
                self.target.shown()
            );
        }
    }

    fn unlock(&self, session: &mut Session, holder: String) {
        let _: Option<i64> = session.run(
            "freeing the lock",
            redis::cmd("EVAL")
                .arg(DELETE_IF_UNCHANGED)
                .arg(1)
                .arg(&self.lock_key)
                .arg(&holder),
        );
    }

    fn forget(&self, used: Option<&AccessToken>) {
        let Some(mut session) = self.session() else {
            return;
        };
        let Some(value) = self.get(&mut session) else {
            return;
        };
        let held = self.entry.open(&value, TokenSource::CacheUrl).ok();
        if let (Some(used), Some(held)) = (used, &held) {
            if used.fingerprint() != held.fingerprint() {
                return;
            }
        }
        let dropped: Option<i64> = session.run(
            "dropping the token",
            redis::cmd("EVAL")
                .arg(DELETE_IF_UNCHANGED)
                .arg(1)
                .arg(&self.key)
                .arg(&value),
        );
        if dropped == Some(1) {
            log::debug!("token dropped from the fleet cache {}", self.target.shown());
        }
    }

    /// `Claimed` unless a process forced a renewal for the API at `origin` within
    /// `interval`; then `Newer` if the fleet holds another usable token, else `Refused`.
    /// Without Redis, `Claimed` (the local bounds still apply). A claim refused while the
    /// fleet still holds the very token that was rejected, one had before that claim, is
    /// `Claimed` too: an honest fleet replaced it in that renewal, so a server that keeps
    /// it (or refuses every claim) must not pin a rejected token until it expires: the
    /// renewal is made locally, within this process's own bound.
    fn claim_renewal(&self, used: &AccessToken, origin: &str, interval: Duration) -> Renewal {
        let Some(mut session) = self.session() else {
            return Renewal::Claimed;
        };
        let key = self.renewed_key(origin);
        let now_ms = unix_ms(SystemTime::now());
        let claimed: Option<Option<String>> = session.run(
            "claiming a renewal",
            redis::cmd("SET")
                .arg(&key)
                .arg(now_ms)
                .arg("NX")
                .arg("PX")
                .arg(interval.as_millis() as u64),
        );
        match claimed {
            None | Some(Some(_)) => Renewal::Claimed,
            Some(None) => {
                // When the renewal that holds the claim was made: the token it fetched was
                // had after that. Garbage or nothing is no time at all.
                let claimed_at: Option<u64> = session
                    .run::<Option<String>>("reading a renewal", redis::cmd("GET").arg(&key))
                    .flatten()
                    .and_then(|v| v.parse().ok());
                match self.read(&mut session) {
                    Some(held) if held.fingerprint() != used.fingerprint() => Renewal::Newer,
                    // The renewal's own token, rejected too (a missing permission, say):
                    // the answer stands.
                    Some(held) if claimed_at.is_some_and(|t| unix_ms(held.obtained_at()) >= t) => {
                        Renewal::Refused
                    }
                    Some(_) => {
                        log::warn!(
                            "the fleet cache {} still serves a token the API rejected, older \
                             than the renewal it claims; renewing locally",
                            self.target.shown()
                        );
                        Renewal::Claimed
                    }
                    None => Renewal::Refused,
                }
            }
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This attempt's name on the lock: 128 bits from the system's random source (not
/// `jitter`'s), so no other process frees it.
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

/// One exchange's connection. At the first failure it is dropped and every later step
/// skipped; after a reply too large (a garbage entry, which the next write replaces) it is
/// dropped and a new one made for the next step.
pub(crate) struct Session {
    target: Arc<FleetTarget>,
    conn: Option<Conn>,
    down: bool,
    /// The bound of each exchange.
    bound: Duration,
}

impl Session {
    /// `cmd`'s answer; `None` once anything failed, which is logged the first time.
    fn run<T: FromRedisValue>(&mut self, doing: &str, cmd: &redis::Cmd) -> Option<T> {
        if self.down {
            return None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => match self.target.connect(self.bound) {
                Ok(conn) => self.conn.insert(conn),
                Err(e) => return self.fail("connecting", &e),
            },
        };
        match conn.run(cmd, self.bound) {
            Ok(answer) => {
                self.target.answered();
                Some(answer)
            }
            Err(WireError::Oversized) => {
                log::warn!(
                    "fleet cache {}: {doing}: the reply is too large (over {} bytes); \
                     ignored, and replaced when written",
                    self.target.shown(),
                    wire::MAX_REPLY_BYTES
                );
                self.conn = None;
                None
            }
            Err(e) => self.fail(doing, &e),
        }
    }

    fn fail<T>(&mut self, doing: &str, e: &WireError) -> Option<T> {
        self.target.failed(doing, e);
        self.conn = None;
        self.down = true;
        None
    }

    fn is_down(&self) -> bool {
        self.down
    }
}
