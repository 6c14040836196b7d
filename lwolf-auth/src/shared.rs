//! The caches shared with other processes, and the one protocol both follow: the host's
//! `cache_dir` (`disk.rs`) and the fleet's `cache_url` (`fleet.rs`).
//!
//! A layer is asked only when the layers before it (memory, then the directory) would send
//! the process to the token endpoint. Then:
//!
//! 1. read the entry: a usable token that is not due is used as it is;
//! 2. else take the layer's lock of the identity (waiting, at most until the call can still
//!    make one attempt of its own, for the holder, whose token may arrive meanwhile);
//! 3. read again (another process may have written while we waited), and only if it still
//!    has to, fetch (from the next layer), write the token for the others, free the lock.
//!
//! A token the API rejected in this process is never taken from a layer again, even if the
//! layer still serves it (a layer whose removal failed, or a hostile Redis). Failures of a
//! layer are its own to log; the caller then goes on as if it were not there.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::cache::Renewal;
use crate::error::Error;
use crate::log;
use crate::token::AccessToken;

/// One shared layer: how to reach it for one exchange, and the steps of the protocol.
pub(crate) trait SharedLayer {
    /// One exchange with the layer (an open directory, a connection).
    type Session;
    /// A held lock.
    type Guard;

    /// How the logs name the layer (`the shared cache /var/cache/x`).
    fn describe(&self) -> String;
    /// A session, or `None` (logged by the layer) when the layer cannot be used now.
    fn session(&self) -> Option<Self::Session>;
    /// The entry's token, if it opens and is usable now.
    fn read(&self, session: &mut Self::Session) -> Option<AccessToken>;
    /// Takes the lock, waiting at most until `until`; a token the holder wrote meanwhile
    /// (that `wanted` accepts) ends the wait, and one that is due but usable goes to `found`.
    fn lock(
        &self,
        session: &mut Self::Session,
        until: Instant,
        wanted: &dyn Fn(&AccessToken) -> bool,
        found: &mut Option<AccessToken>,
    ) -> Lock<Self::Guard>;
    /// Writes `token` for the others.
    fn write(&self, session: &mut Self::Session, token: &AccessToken);
    /// Frees a lock of ours.
    fn unlock(&self, session: &mut Self::Session, guard: Self::Guard);
    /// Drops the entry's token: `used`, if it still holds it, or whatever it holds.
    fn forget(&self, used: Option<&AccessToken>);
    /// What a 401/403 from the API at `origin` to `used` may do, for every process of the
    /// layer: see [`Renewal`].
    fn claim_renewal(&self, used: &AccessToken, origin: &str, interval: Duration) -> Renewal;
}

/// What taking a layer's lock came to.
pub(crate) enum Lock<G> {
    /// Ours: fetch, write, free it.
    Held(G),
    /// Its holder wrote this token while we waited (a layer that polls while it waits).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    Served(AccessToken),
    /// Not had (the wait ran out, or the layer failed): fetch anyway.
    Without,
}

/// A usable token from `layer`, else from `fetch` (under the layer's lock), written back.
///
/// `serving` says whether the caller still has a usable token of its own: if it has none and
/// `fetch` fails, a token of the layer that is due but still usable is handed out rather
/// than the error (a failed refresh is no error while a token is servable); if it has one,
/// the error goes back, so that the caller keeps its token and backs off. `rejected` is
/// the fingerprint of a token the API turned away, never to be taken from the layer.
pub(crate) fn get_or_fetch<L: SharedLayer>(
    layer: &L,
    serving: bool,
    until: Instant,
    rejected: Option<&str>,
    fetch: impl FnOnce() -> Result<AccessToken, Error>,
) -> Result<AccessToken, Error> {
    let Some(mut session) = layer.session() else {
        return fetch();
    };
    let wanted = |token: &AccessToken| Some(token.fingerprint()) != rejected;
    let read = |session: &mut L::Session| layer.read(session).filter(wanted);
    let mut found = match read(&mut session) {
        Some(token) if !token.is_due_now() => return Ok(token),
        other => other,
    };
    let outcome = match layer.lock(&mut session, until, &wanted, &mut found) {
        Lock::Served(token) => return Ok(token),
        Lock::Held(guard) => {
            // Another process may have written while we waited for the lock.
            let outcome = match read(&mut session) {
                Some(token) if !token.is_due_now() => {
                    log::debug!(
                        "token {} refreshed by another process, read from {}",
                        token.fingerprint(),
                        layer.describe()
                    );
                    Ok(token)
                }
                other => {
                    found = other.or(found);
                    fetch_and_write(layer, &mut session, fetch)
                }
            };
            layer.unlock(&mut session, guard);
            outcome
        }
        Lock::Without => fetch_and_write(layer, &mut session, fetch),
    };
    match outcome {
        Err(e) => match found {
            Some(token) if !serving && token.is_usable_now() => {
                log::warn!(
                    "refresh failed ({e}); serving token {} from {}",
                    token.fingerprint(),
                    layer.describe()
                );
                Ok(token)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

fn fetch_and_write<L: SharedLayer>(
    layer: &L,
    session: &mut L::Session,
    fetch: impl FnOnce() -> Result<AccessToken, Error>,
) -> Result<AccessToken, Error> {
    let token = fetch()?;
    layer.write(session, &token);
    Ok(token)
}

/// How long a caller waits for another process's fetch before it fetches itself: until its
/// own deadline, less what one attempt of its own needs (`timeout`), but never less than
/// half of what is left. A holder that is alive and fetching finishes within its own
/// deadline, so single flight holds through a slow gateway; one that died (or hangs) costs
/// the others this wait, and they still have time to fetch.
pub(crate) fn lock_wait_until(deadline: Instant, timeout: Duration) -> Instant {
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    now + left.saturating_sub(timeout).max(left / 2)
}
