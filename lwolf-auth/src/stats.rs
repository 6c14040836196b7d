//! What a client has done, counted: for an operator who watches it (`Client::stats`,
//! `lwolf_client_stats`, the agent's `/metrics`). One set of counters per client and every
//! handle made from it; relaxed atomics, touched only off the cached-token path.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters, shared by a client and its handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub token_requests: AtomicU64,
    pub token_failures: AtomicU64,
    pub tokens_shared: AtomicU64,
    pub forced_renewals: AtomicU64,
    pub renewals_declined: AtomicU64,
    pub retries: AtomicU64,
    pub api_requests: AtomicU64,
    pub throttled: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a client has done since it was made, with its handles (tenants, APIs). Each field
/// maps onto an OpenTelemetry metric (the docs' "Watching a client" names them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests sent to the token endpoint, retries included.
    pub token_requests: u64,
    /// Token fetches that ended in an error.
    pub token_failures: u64,
    /// Tokens taken from `cache_dir` or `cache_url` instead of fetched.
    pub tokens_shared: u64,
    /// Renewals forced by an API's 401/403.
    pub forced_renewals: u64,
    /// 401/403 answers handed back without a renewal: within the 30 s bound, or a Transact
    /// 403 (a subscription key problem: a new token cannot help).
    pub renewals_declined: u64,
    /// Retries of token and API requests.
    pub retries: u64,
    /// API request attempts sent.
    pub api_requests: u64,
    /// API calls that waited their turn (`max_in_flight`, `max_requests_per_second`).
    pub throttled: u64,
    /// When the token cached for this handle expires, in Unix milliseconds; 0 when there is
    /// none.
    pub token_expires_at_ms: i64,
}

impl Counters {
    /// A snapshot, with `token_expires_at_ms` as given.
    pub(crate) fn snapshot(&self, token_expires_at_ms: i64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            token_requests: get(&self.token_requests),
            token_failures: get(&self.token_failures),
            tokens_shared: get(&self.tokens_shared),
            forced_renewals: get(&self.forced_renewals),
            renewals_declined: get(&self.renewals_declined),
            retries: get(&self.retries),
            api_requests: get(&self.api_requests),
            throttled: get(&self.throttled),
            token_expires_at_ms,
        }
    }
}
