//! The token state machine: one token, at most one request in flight, refresh ahead.
//!
//! A caller that finds a usable token never waits on the network: if the token is due,
//! the first such caller starts its refresh on a short-lived thread (inline where no thread
//! can be started) while everyone keeps getting the current one. Callers with no usable token wait for the one request in flight and share its
//! outcome; after a failure, until the shared backoff has passed, they get that failure at
//! once (a loop of callers must not hammer a failing gateway). The lock is never held
//! across I/O.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::clock::{self, Mono};
use crate::error::Error;
use crate::fork::PerProcess;
use crate::log;
use crate::retry::Backoff;
use crate::token::AccessToken;

/// At most one renewal forced by a 401/403 per identity and API origin in this long.
pub(crate) const RENEWAL_INTERVAL: Duration = Duration::from_secs(30);
/// How many of the tokens this cache held last are remembered (by fingerprint), so that a
/// 401 to one of them is told from a 401 to a token that was never ours.
const REMEMBERED: usize = 4;

/// What a 401/403 may do about the token it was sent with.
pub(crate) enum Renewal {
    /// Drop it and fetch another: this identity's renewal for the interval.
    Claimed,
    /// One was forced less than [`RENEWAL_INTERVAL`] ago: hand the answer back.
    Refused,
    /// It is no longer the cached token: send the one in service, no fetch needed.
    Newer,
}

pub(crate) struct TokenCache {
    /// The state and, signalled when a request finishes, its condition variable: a child of
    /// a fork gets its own (see `crate::fork`), with the token kept and nothing in flight.
    state: PerProcess<State>,
    /// After a failed request, the next refresh waits this backoff (shared by all callers).
    refresh_backoff: Backoff,
    /// The longest a caller waits for the request in flight (`deadline_ms`).
    wait_bound: Duration,
}

#[derive(Clone, Default)]
struct State {
    current: Option<AccessToken>,
    /// A token request is under way (in this process).
    in_flight: bool,
    /// Bumped each time a request finishes, so waiters know theirs did.
    generation: u64,
    /// The outcome of the latest request, for the callers that waited on it.
    last_outcome: Option<Result<AccessToken, Error>>,
    /// Failed refreshes in a row, and when the next refresh may be tried.
    failures: u32,
    retry_not_before: Option<Mono>,
    /// When a 401/403 of each API origin last forced a renewal.
    forced_renewals: Vec<(String, Mono)>,
    /// The fingerprints of the tokens held before the current one, newest first.
    previous: Vec<String>,
    /// The fingerprint of the last token an API rejected: never taken from a shared layer
    /// again.
    rejected: Option<String>,
}

impl State {
    /// Remembers `old`, a token this cache no longer holds.
    fn remember(&mut self, old: &AccessToken) {
        if self
            .previous
            .first()
            .is_some_and(|f| f == old.fingerprint())
        {
            return;
        }
        self.previous.insert(0, old.fingerprint().to_owned());
        self.previous.truncate(REMEMBERED);
    }

    /// The state a child of a fork starts with: a request the parent had in flight never
    /// finishes there.
    fn in_a_child(&self) -> State {
        State {
            in_flight: false,
            ..self.clone()
        }
    }
}

impl TokenCache {
    pub(crate) fn new(refresh_backoff: Backoff, wait_bound: Duration) -> TokenCache {
        TokenCache {
            state: PerProcess::new(State::default(), State::in_a_child),
            refresh_backoff,
            wait_bound,
        }
    }

    /// `read` applied to a usable token: the cached one, or one fetched with `fetch`. A
    /// token that is due is refreshed by `refresh_elsewhere` (which starts the refresh on
    /// another thread, to call [`refresh`](Self::refresh), and says whether it could), else
    /// inline with `fetch`. On the hot path (a cached token, not due) `read` runs under the
    /// lock, which spares the C ABI an `Arc` clone and drop per call: it must be short and
    /// must not call back into this cache.
    pub(crate) fn get_with<R>(
        &self,
        fetch: impl FnOnce() -> Result<AccessToken, Error>,
        refresh_elsewhere: impl FnOnce() -> bool,
        read: impl FnOnce(&AccessToken) -> R,
    ) -> Result<R, Error> {
        // The clocks are read before the lock, to keep the critical section to a few loads:
        // they cost more than the rest of the hot path. No I/O happens under this lock, so
        // the wait for it is far shorter than any token's safety margin.
        let mut now = Mono::now();
        let now_wall = clock::wall_now();
        let shared = self.state.get();
        let mut state = shared.lock.lock();
        if let Some(token) = &state.current {
            if token.is_usable(now, now_wall) && !token.is_due(now, now_wall) {
                return Ok(read(token));
            }
            // Due (or past use): the clocks again, now that the lock is held. The wait for it
            // may have eaten into what little is left of a due token, and a token is never
            // handed out past its time.
            now = Mono::now();
            if token.is_usable(now, clock::wall_now()) {
                let backing_off = state.retry_not_before.is_some_and(|t| now < t);
                // `state.in_flight` takes the borrow of `state` the token holds.
                let token = token.clone();
                if backing_off || state.in_flight {
                    return Ok(read(&token));
                }
                state.in_flight = true;
                let generation = state.generation;
                drop(state);
                log::debug!("token {} due for refresh", token.fingerprint());
                if refresh_elsewhere() {
                    // Starting the thread may have taken the token's last moments.
                    if token.is_usable_now() {
                        return Ok(read(&token));
                    }
                    return self.outcome_after(generation, read);
                }
                return match self.fetch_and_publish(fetch) {
                    Ok(fresh) => Ok(read(&fresh)),
                    Err(e) => {
                        self.log_failed_refresh(&e);
                        if token.is_usable_now() {
                            Ok(read(&token))
                        } else {
                            Err(e)
                        }
                    }
                };
            }
        }
        let in_flight = state.in_flight;
        if !in_flight && state.retry_not_before.is_some_and(|t| now < t) {
            if let Some(Err(failure)) = &state.last_outcome {
                return Err(failure.clone());
            }
        }
        if in_flight {
            let generation = state.generation;
            drop(state);
            return self.outcome_after(generation, read);
        }
        state.in_flight = true;
        drop(state);
        self.fetch_and_publish(fetch).map(|token| read(&token))
    }

    /// `read` applied to the outcome of the request in flight when the generation was
    /// `generation`, once it has finished; [`Error::Deadline`] if it has not within the
    /// caller's deadline (the request may be waiting on another process, or a slow layer).
    fn outcome_after<R>(
        &self,
        generation: u64,
        read: impl FnOnce(&AccessToken) -> R,
    ) -> Result<R, Error> {
        let until = Instant::now() + self.wait_bound;
        let shared = self.state.get();
        let mut state = shared.lock.lock();
        while state.generation == generation {
            if shared.changed.wait_until(&mut state, until).timed_out()
                && state.generation == generation
            {
                return Err(Error::deadline(
                    "the token request in flight did not finish within deadline_ms",
                ));
            }
        }
        let outcome = match &state.last_outcome {
            Some(outcome) => outcome.clone(),
            None => Err(Error::internal("token request finished without an outcome")),
        };
        drop(state);
        outcome.map(|token| read(&token))
    }

    /// The refresh that `get_with` asked `refresh_elsewhere` to run: the flight is already
    /// this one's.
    pub(crate) fn refresh(&self, fetch: impl FnOnce() -> Result<AccessToken, Error>) {
        if let Err(e) = self.fetch_and_publish(fetch) {
            self.log_failed_refresh(&e);
        }
    }

    fn log_failed_refresh(&self, e: &Error) {
        match self.peek() {
            Some(kept) => log::warn!(
                "refresh failed ({e}); still serving token {}",
                kept.fingerprint()
            ),
            None => log::warn!("refresh failed ({e}); the token expired meanwhile"),
        }
    }

    /// Runs the one request in flight and publishes its outcome to everyone waiting.
    fn fetch_and_publish(
        &self,
        fetch: impl FnOnce() -> Result<AccessToken, Error>,
    ) -> Result<AccessToken, Error> {
        // The guard publishes on drop, so a panicking `fetch` still ends the flight and
        // no waiter hangs.
        let mut guard = FlightGuard {
            cache: self,
            outcome: Err(Error::internal("token request panicked")),
        };
        guard.outcome = fetch();
        guard.outcome.clone()
    }

    /// Drops the cached token, whatever it is. A failure's backoff keeps running: dropping
    /// a token does not make the gateway any better.
    pub(crate) fn invalidate(&self) {
        let mut state = self.state.get().lock.lock();
        if let Some(old) = state.current.take() {
            state.remember(&old);
        }
    }

    /// After the API at `origin` answered 401/403 to `used`: whether a renewal may be
    /// forced (and then this is it, for that origin and the interval), or a newer token is
    /// in service already.
    pub(crate) fn claim_renewal(&self, used: &AccessToken, origin: &str) -> Renewal {
        let now = Mono::now();
        let mut state = self.state.get().lock.lock();
        if !state.current.as_ref().is_some_and(|t| t.same_as(used)) {
            return Renewal::Newer;
        }
        let last = state.forced_renewals.iter_mut().find(|(o, _)| o == origin);
        match last {
            Some((_, at)) if now.saturating_since(*at) < RENEWAL_INTERVAL => Renewal::Refused,
            Some((_, at)) => {
                *at = now;
                Renewal::Claimed
            }
            None => {
                state.forced_renewals.push((origin.to_owned(), now));
                Renewal::Claimed
            }
        }
    }

    /// Drops `used`, which an API rejected, if it is still the cached token (a newer one is
    /// kept); it is never taken from a shared layer again.
    pub(crate) fn reject(&self, used: &AccessToken) {
        let mut state = self.state.get().lock.lock();
        state.rejected = Some(used.fingerprint().to_owned());
        if state.current.as_ref().is_some_and(|t| t.same_as(used)) {
            state.current = None;
            state.remember(used);
        }
    }

    /// Drops `used` if it is still the cached token (a newer one is kept).
    pub(crate) fn invalidate_if_current(&self, used: &AccessToken) -> bool {
        let mut state = self.state.get().lock.lock();
        if state.current.as_ref().is_some_and(|t| t.same_as(used)) {
            state.current = None;
            state.remember(used);
            return true;
        }
        false
    }

    /// The fingerprint of the last token an API rejected, if any.
    pub(crate) fn rejected(&self) -> Option<String> {
        self.state.get().lock.lock().rejected.clone()
    }

    /// Whether `fingerprint` is that of a token this cache held before the current one.
    pub(crate) fn held_before(&self, fingerprint: &str) -> bool {
        let state = self.state.get().lock.lock();
        state.previous.iter().any(|f| f == fingerprint)
    }

    /// The cached token if it is usable now; never fetches.
    pub(crate) fn peek(&self) -> Option<AccessToken> {
        let state = self.state.get().lock.lock();
        state
            .current
            .as_ref()
            .filter(|t| t.is_usable_now())
            .cloned()
    }
}

struct FlightGuard<'a> {
    cache: &'a TokenCache,
    outcome: Result<AccessToken, Error>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let shared = self.cache.state.get();
        let mut state = shared.lock.lock();
        match &self.outcome {
            Ok(token) => {
                if let Some(old) = state.current.replace(token.clone()) {
                    state.remember(&old);
                }
                state.failures = 0;
                state.retry_not_before = None;
            }
            Err(_) => {
                state.failures = state.failures.saturating_add(1);
                let wait = self.cache.refresh_backoff.ceiling(state.failures - 1);
                state.retry_not_before = Some(Mono::now() + wait);
            }
        }
        state.in_flight = false;
        state.generation = state.generation.wrapping_add(1);
        state.last_outcome = Some(self.outcome.clone());
        drop(state);
        shared.changed.notify_all();
    }
}
