//! The client: tokens on demand, and authenticated API requests.

#![forbid(unsafe_code)]

mod exchange;
mod other_means;
mod sink;

pub use other_means::AuthHeaders;
pub use sink::ResponseSink;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::TokenCache;
use crate::config::Config;
use crate::disk::DiskCache;
use crate::entry::EntryKey;
use crate::error::Error;
use crate::fetch::fetch_token;
#[cfg(feature = "fleet")]
use crate::fleet::{FleetCache, FleetTarget};
use crate::http::Http;
use crate::log;
use crate::pace::Governors;
use crate::request::{Request, RequestBuilder};
use crate::response::Response;
use crate::shared::{self, SharedLayer};
use crate::stats::{Counters, Stats};
use crate::token::AccessToken;
use crate::url::Origin;

/// A token client for one identity (client id + customer instance).
///
/// Cheap to clone and safe to share across threads: clones share the token cache.
/// Creating one does no network I/O; the first [`token`](Client::token) or request fetches.
///
/// ```no_run
/// let client = lwolf_auth::Client::new(
///     lwolf_auth::Config::builder()
///         .client_id("my-client")
///         .client_secret("my-secret")
///         .build()?,
/// );
/// let response = client.get("/v1/transactions").send()?;
/// println!("{} {}", response.status(), response.text());
/// # Ok::<(), lwolf_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Where this handle's API requests go: the config's `api_base_url`, or another one
    /// given to [`Client::for_api`] (which shares `inner`, so the token).
    api: Arc<ApiBase>,
}

/// Whether an API's `status` may renew the token: a 401 always; a 403 unless it is the
/// Transact API's, whose 403 means a missing or refused subscription key (a new token
/// cannot help).
fn renews_on(transact: bool, status: u16) -> bool {
    match status {
        401 => true,
        403 => !transact,
        _ => false,
    }
}

/// An API base URL and its origin, the only one the bearer token is sent to.
struct ApiBase {
    url: String,
    origin: Origin,
    /// Under `transact_base_url`: the Transact API's rules (a 403 never renews; a
    /// subscription key is required).
    transact: bool,
}

struct Inner {
    shared: Arc<Shared>,
    lwt_client_id: Option<String>,
    cache: TokenCache,
    /// The token cache shared with other processes, behind `cache`, when `cache_dir` is set.
    disk: Option<DiskCache>,
    /// The one shared with other hosts, behind `disk`, when `cache_url` is set.
    #[cfg(feature = "fleet")]
    fleet: Option<FleetCache>,
}

impl Inner {
    /// A new token, from the first layer that has one: the shared cache file, the fleet
    /// cache, the token endpoint (memory → file → Redis → gateway). Only reached when memory
    /// has no token to hand out, or its token is due. Never inlined: the layers stay out of
    /// the cached-token path's code.
    #[inline(never)]
    fn fetch(&self) -> Result<AccessToken, Error> {
        let config = &self.shared.config;
        // The whole call's bound: the waits for other processes' fetches included.
        let deadline = Instant::now() + config.deadline;
        let serving = self.cache.peek().is_some();
        let rejected = self.cache.rejected();
        let rejected = rejected.as_deref();
        let from_gateway = || {
            fetch_token(
                &self.shared.http,
                config,
                self.lwt_client_id.as_deref(),
                deadline,
                &self.shared.counters,
            )
        };
        #[cfg(feature = "fleet")]
        let from_fleet = || match &self.fleet {
            Some(fleet) => shared::get_or_fetch(fleet, serving, deadline, rejected, from_gateway),
            None => from_gateway(),
        };
        #[cfg(not(feature = "fleet"))]
        let from_fleet = from_gateway;
        let outcome = match &self.disk {
            Some(disk) => shared::get_or_fetch(disk, serving, deadline, rejected, from_fleet),
            None => from_fleet(),
        };
        match &outcome {
            Ok(token) if token.source() != crate::token::TokenSource::TokenEndpoint => {
                Counters::bump(&self.shared.counters.tokens_shared)
            }
            Err(_) => Counters::bump(&self.shared.counters.token_failures),
            Ok(_) => {}
        }
        outcome
    }

    /// Drops `used` (or whatever they hold, for `None`) from the shared layers, the file
    /// first: a thread of ours reading it in between must not get it back.
    fn forget_shared(&self, used: Option<&AccessToken>) {
        if let Some(disk) = &self.disk {
            disk.forget(used);
        }
        #[cfg(feature = "fleet")]
        if let Some(fleet) = &self.fleet {
            fleet.forget(used);
        }
    }
}

/// What every handle of a client shares (tenants, other APIs): the settings, the connection
/// pool, the fleet's server, the pace of each API, and the counters.
struct Shared {
    config: Config,
    http: Http,
    #[cfg(feature = "fleet")]
    fleet: Option<Arc<FleetTarget>>,
    /// `None` without `max_in_flight` and `max_requests_per_second`.
    governors: Option<Governors>,
    counters: Counters,
    /// When a Transact 403 was last logged: at most one warning a minute.
    transact_warned: crate::fork::PerProcess<Option<crate::clock::Mono>>,
}

// A client must stay shareable across threads; this fails to compile if it stops being so.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Client>();
};

impl Client {
    /// A client for `config`. No network I/O happens here.
    pub fn new(config: Config) -> Client {
        let http = Http::new(&config);
        let lwt_client_id = config.lwt_client_id.clone();
        let api = Arc::new(ApiBase {
            url: config.api_base_url.clone(),
            origin: config.api_origin.clone(),
            transact: config.is_transact_url(&config.api_base_url),
        });
        #[cfg(feature = "fleet")]
        let fleet = config.cache_url.as_ref().map(|url| {
            Arc::new(FleetTarget::new(
                Arc::clone(url),
                Arc::clone(&config.extra_roots),
            ))
        });
        let shared = Shared {
            governors: Governors::new(config.pace),
            config,
            http,
            #[cfg(feature = "fleet")]
            fleet,
            counters: Counters::default(),
            transact_warned: crate::fork::PerProcess::new(None, crate::fork::cloned),
        };
        Client::with_shared(Arc::new(shared), lwt_client_id, api)
    }

    /// A client configured from the `LWOLF_*` environment variables.
    pub fn from_env() -> Result<Client, Error> {
        Ok(Client::new(Config::from_env()?))
    }

    /// A client of its own identity (token cache, shared file) on `shared`'s settings,
    /// sending to `api`.
    fn with_shared(
        shared: Arc<Shared>,
        lwt_client_id: Option<String>,
        api: Arc<ApiBase>,
    ) -> Client {
        let refresh_backoff = shared.config.backoff();
        let config = &shared.config;
        let wait_bound = config.deadline;
        // Derived once for both shared layers, and only when there is one; none at all for a
        // DPoP key made by this process, whose tokens are of use to no other.
        #[cfg(feature = "fleet")]
        let fleet_target = shared.fleet.as_ref();
        #[cfg(not(feature = "fleet"))]
        let fleet_target: Option<()> = None;
        let entry = (config.cache_dir.is_some() || fleet_target.is_some())
            .then(|| EntryKey::new(config, lwt_client_id.as_deref()))
            .flatten()
            .map(Arc::new);
        let disk = entry.as_ref().and_then(|e| DiskCache::new(config, e));
        #[cfg(feature = "fleet")]
        let fleet = entry
            .as_ref()
            .zip(fleet_target)
            .map(|(e, target)| FleetCache::new(config, target, e));
        Client {
            api,
            inner: Arc::new(Inner {
                shared,
                lwt_client_id,
                cache: TokenCache::new(refresh_backoff, wait_bound),
                disk,
                #[cfg(feature = "fleet")]
                fleet,
            }),
        }
    }

    /// A client for another customer instance: the same settings and connection pool,
    /// its own token. Either client may outlive the other.
    pub fn for_tenant(&self, lwt_client_id: &str) -> Result<Client, Error> {
        if lwt_client_id.is_empty() {
            return Err(Error::invalid_argument("lwt_client_id must not be empty"));
        }
        // The same API as this handle's (one made by `for_api` keeps its base).
        Ok(Client::with_shared(
            Arc::clone(&self.inner.shared),
            Some(lwt_client_id.to_owned()),
            Arc::clone(&self.api),
        ))
    }

    /// A client for another API that takes the same tokens (the Transact API beside the Back
    /// Office API): the same identity, token cache, connection pool and settings, and
    /// `api_base_url` as its base (the same URL rules: `https://`, or `http://` to a
    /// loopback host). The bearer token goes only to each handle's own origin. Either
    /// client may outlive the other.
    pub fn for_api(&self, api_base_url: &str) -> Result<Client, Error> {
        let origin = Origin::check_allowed(api_base_url, "api_base_url")?;
        let url = api_base_url.trim_end_matches('/').to_owned();
        Ok(Client {
            inner: Arc::clone(&self.inner),
            api: Arc::new(ApiBase {
                transact: self.config().is_transact_url(&url),
                url,
                origin,
            }),
        })
    }

    /// A handle for the Transact API (`transact_base_url`): the same token, pool and caches
    /// as this client, `lw-subscription-key` on every call, and the Transact API's rules: a
    /// 401 renews the token (bounded), a 403 never does (it is about the subscription key; a
    /// warning says so, at most once a minute). Without a `subscription_key` its calls fail
    /// with [`Error::Config`] before anything is sent.
    ///
    /// ```no_run
    /// # let client = lwolf_auth::Client::from_env()?;
    /// let transact = client.transact();
    /// let closed = transact.get("/v1/transactions").query("$top", "5").send()?;
    /// # Ok::<(), lwolf_auth::Error>(())
    /// ```
    pub fn transact(&self) -> Client {
        let config = self.config();
        Client {
            inner: Arc::clone(&self.inner),
            api: Arc::new(ApiBase {
                url: config.transact_base_url.clone(),
                origin: config.transact_origin.clone(),
                transact: true,
            }),
        }
    }

    /// What this client and every handle made from it have done (tenants, APIs), and when
    /// this handle's token expires. Reading it costs a few loads; nothing is counted on the
    /// cached-token path.
    pub fn stats(&self) -> Stats {
        let expires = self.cached_token().map_or(0, |t| {
            t.expires_at()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        self.inner.shared.counters.snapshot(expires)
    }

    /// The base of this client's API requests.
    pub fn api_base_url(&self) -> &str {
        &self.api.url
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    /// The customer instance this client's tokens are for, if any.
    pub fn lwt_client_id(&self) -> Option<&str> {
        self.inner.lwt_client_id.as_deref()
    }

    /// A usable bearer token: the cached one (no I/O, no allocation), or a new one.
    ///
    /// A token that falls due is refreshed on a short-lived thread of its own while every
    /// caller keeps getting the current token at once; a failed refresh keeps it in service
    /// until it expires. Callers
    /// with no usable token share the outcome of one request.
    ///
    /// With a `cache_dir`, a token that is not in memory is looked for in the shared cache
    /// file before one is fetched, and a fetched one is written there for other processes.
    pub fn token(&self) -> Result<AccessToken, Error> {
        self.with_token(AccessToken::clone)
    }

    /// `read` applied to a usable token, obtained as [`token`](Client::token) does, without
    /// a clone: for copying the token where it must go (the C library copies it into its
    /// caller's buffer this way, with no allocation). On the cached path `read` runs under
    /// the cache's lock: keep it to a copy, and never call back into this client from it.
    pub fn with_token<R>(&self, read: impl FnOnce(&AccessToken) -> R) -> Result<R, Error> {
        let inner = &*self.inner;
        inner
            .cache
            .get_with(|| inner.fetch(), || self.refresh_in_background(), read)
    }

    /// Starts the refresh of a token that fell due on a thread of its own, gone when it is
    /// done; false (the caller refreshes inline) when no thread could be started.
    fn refresh_in_background(&self) -> bool {
        let inner = Arc::clone(&self.inner);
        let started = std::thread::Builder::new()
            .name("lwolf-refresh".to_owned())
            .spawn(move || inner.cache.refresh(|| inner.fetch()));
        match started {
            Ok(_) => true,
            Err(e) => {
                log::debug!("cannot start a refresh thread ({e}); refreshing inline");
                false
            }
        }
    }

    /// The shared token cache file of this client's identity, when `cache_dir` is set
    /// (whether or not it exists yet). The lock file beside it ends in `.lock`.
    pub fn cache_file(&self) -> Option<&Path> {
        self.inner.disk.as_ref().map(DiskCache::file)
    }

    /// The cached token if it is usable now, without fetching one.
    pub fn cached_token(&self) -> Option<AccessToken> {
        self.inner.cache.peek()
    }

    /// Drops the cached token; the next [`token`](Client::token) fetches a new one (unless a
    /// failed request's backoff is still running: then it gets that failure at once).
    /// With a `cache_dir`, the shared cache file's token is dropped too.
    pub fn invalidate(&self) {
        // The shared layers first: a thread of ours reading them in between must not get it
        // back.
        self.inner.forget_shared(None);
        self.inner.cache.invalidate();
    }

    /// A request of `method` to `path`, to build and send: `path` is appended to
    /// `api_base_url` (its path kept), or is an absolute URL on its origin (another origin is
    /// [`Error::InvalidArgument`]: the token goes nowhere else), and may carry a query.
    pub fn request(&self, method: &str, path: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, method, path)
    }

    /// A `GET` request to build and send: `client.get("/v1/offices").send()?`.
    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request("GET", path)
    }

    /// A `HEAD` request.
    pub fn head(&self, path: &str) -> RequestBuilder<'_> {
        self.request("HEAD", path)
    }

    /// A `POST` request (not retried after a 5xx or a lost connection).
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request("POST", path)
    }

    /// A `PUT` request.
    pub fn put(&self, path: &str) -> RequestBuilder<'_> {
        self.request("PUT", path)
    }

    /// A `PATCH` request (not retried after a 5xx or a lost connection), as the Back Office
    /// API updates its records.
    pub fn patch(&self, path: &str) -> RequestBuilder<'_> {
        self.request("PATCH", path)
    }

    /// A `DELETE` request.
    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request("DELETE", path)
    }

    /// An `OPTIONS` request.
    pub fn options(&self, path: &str) -> RequestBuilder<'_> {
        self.request("OPTIONS", path)
    }

    /// Sends `request` with the bearer token and reads the response whole (at most
    /// `max_response_bytes`).
    ///
    /// It carries `Authorization: Bearer <token>`, `Accept: application/json` (unless the
    /// request has its own), `lw-subscription-key` when one is configured, and its body with
    /// its content type. On a 401 or 403 the token is renewed and the request sent once more,
    /// at most once per 30 s for this identity (past that the 401/403 is handed back at
    /// once); 408, 429, 5xx and lost connections are retried for GET, HEAD, PUT, DELETE and
    /// OPTIONS. Redirects within the origin are followed (at most 5). Every HTTP status is a
    /// [`Response`]; errors mean no response could be had.
    pub fn send(&self, request: &Request) -> Result<Response, Error> {
        self.exchange(request, None)
    }

    /// [`send`](Self::send), with the body of the response it hands back written to `out` as
    /// it arrives, never held whole (`max_response_bytes` does not apply); the returned
    /// response has the status and headers and an empty body. Responses the client consumes
    /// itself (a 401/403 it renews on, a 5xx it retries, a redirect it follows) do not reach
    /// `out`; once `out` has been written to, the exchange is final (never retried). A write
    /// error stops the transfer: [`Error::Aborted`].
    pub fn send_to(&self, request: &Request, out: &mut dyn Write) -> Result<Response, Error> {
        self.exchange(request, Some(&mut sink::BodyOnly(out)))
    }

    /// [`send_to`](Self::send_to), with `sink` told the head of the response (status,
    /// headers, URL, request id) before the first byte of its body: for relaying a response
    /// as it arrives (the `lwolf agent` proxy).
    pub fn send_streaming(
        &self,
        request: &Request,
        sink: &mut dyn ResponseSink,
    ) -> Result<Response, Error> {
        self.exchange(request, Some(sink))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.config();
        f.debug_struct("Client")
            .field("client_id", &config.client_id)
            .field("lwt_client_id", &self.inner.lwt_client_id)
            .field("token_url", &config.token_url)
            .field("api_base_url", &self.api.url)
            .field(
                "token",
                &self.cached_token().map(|t| t.fingerprint().to_owned()),
            )
            .finish()
    }
}
