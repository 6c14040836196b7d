//! The client: tokens on demand, and authenticated API requests.

#![forbid(unsafe_code)]

mod exchange;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::{Renewal, TokenCache};
use crate::config::Config;
use crate::disk::DiskCache;
use crate::entry::EntryKey;
use crate::error::Error;
use crate::fetch::fetch_token;
use crate::fleet::FleetCache;
use crate::http::Http;
use crate::log;
use crate::request::{Request, RequestBuilder};
use crate::response::Response;
use crate::shared::{self, SharedLayer};
use crate::token::{self, AccessToken, TokenType};
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

/// An API base URL and its origin, the only one the bearer token is sent to.
struct ApiBase {
    url: String,
    origin: Origin,
}

struct Inner {
    shared: Arc<Shared>,
    lwt_client_id: Option<String>,
    cache: TokenCache,
    /// The token cache shared with other processes, behind `cache`, when `cache_dir` is set.
    disk: Option<DiskCache>,
    /// The one shared with other hosts, behind `disk`, when `cache_url` is set.
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
            )
        };
        let from_fleet = || match &self.fleet {
            Some(fleet) => shared::get_or_fetch(fleet, serving, deadline, rejected, from_gateway),
            None => from_gateway(),
        };
        match &self.disk {
            Some(disk) => shared::get_or_fetch(disk, serving, deadline, rejected, from_fleet),
            None => from_fleet(),
        }
    }

    /// Drops `used` (or whatever they hold, for `None`) from the shared layers, the file
    /// first: a thread of ours reading it in between must not get it back.
    fn forget_shared(&self, used: Option<&AccessToken>) {
        if let Some(disk) = &self.disk {
            disk.forget(used);
        }
        if let Some(fleet) = &self.fleet {
            fleet.forget(used);
        }
    }
}

/// What tenant clients share: the settings and the connection pool.
struct Shared {
    config: Config,
    http: Http,
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
        });
        Client::with_shared(Arc::new(Shared { config, http }), lwt_client_id, api)
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
        let entry = (config.cache_dir.is_some() || config.cache_url.is_some())
            .then(|| EntryKey::new(config, lwt_client_id.as_deref()))
            .flatten()
            .map(Arc::new);
        let disk = entry.as_ref().and_then(|e| DiskCache::new(config, e));
        let fleet = entry.as_ref().and_then(|e| FleetCache::new(config, e));
        Client {
            api,
            inner: Arc::new(Inner {
                shared,
                lwt_client_id,
                cache: TokenCache::new(refresh_backoff, wait_bound),
                disk,
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
        Ok(Client {
            inner: Arc::clone(&self.inner),
            api: Arc::new(ApiBase {
                url: api_base_url.trim_end_matches('/').to_owned(),
                origin,
            }),
        })
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

    /// `read` applied to a usable token, obtained as [`token`](Client::token) does. On the
    /// cached path `read` runs under the cache's lock (no `Arc` clone): keep it to a copy.
    pub(crate) fn with_token<R>(&self, read: impl FnOnce(&AccessToken) -> R) -> Result<R, Error> {
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

    /// What a request sent by other means (libcurl, another HTTP library) must carry to
    /// `url` with `method`: the `Authorization` value (`Bearer <token>`, or `DPoP <token>` for
    /// a DPoP-bound token) and, for a DPoP-bound token, a new `DPoP` proof for `method` and
    /// `url` (with `ath` and the last nonce `url`'s origin gave). Fetches a token if need be.
    /// The values are secrets: send them, never log them.
    ///
    /// `url` must be on an origin the token may go to, as for [`send`](Self::send): this
    /// handle's API, or one of the vendor's two APIs as configured (`api_base_url`,
    /// `transact_base_url`). Any other URL is [`Error::InvalidArgument`], and nothing is
    /// fetched for it.
    pub fn auth_headers(&self, method: &str, url: &str) -> Result<AuthHeaders, Error> {
        crate::http::parse_method(method)?;
        self.token_origin(url)?;
        let token = self.token()?;
        let dpop = match (&self.inner.shared.config.dpop, token.token_type()) {
            (Some(key), TokenType::Dpop) => Some(key.proof(method, url, Some(token.secret()))?),
            _ => None,
        };
        let scheme = token.token_type().as_str();
        let mut authorization = zeroize::Zeroizing::new(String::with_capacity(
            scheme.len() + 1 + token.secret().len(),
        ));
        authorization.push_str(scheme);
        authorization.push(' ');
        authorization.push_str(token.secret());
        Ok(AuthHeaders {
            authorization,
            dpop,
        })
    }

    /// A server answered 401 to a request sent by other means to this handle's API with
    /// `token` (as [`auth_headers`](Self::auth_headers) gave it, scheme and all, or the bare
    /// token): see [`reject_token_at`](Self::reject_token_at).
    pub fn reject_token(&self, token: &str) -> bool {
        self.answered(&self.api.origin, 401, token)
    }

    /// The server at `url` answered `status` to a request sent by other means with `token`
    /// (as [`auth_headers`](Self::auth_headers) gave it, scheme and all, or the bare token).
    /// True when the request should be sent once more with [`auth_headers`](Self::auth_headers)
    /// again: the token was renewed (the API's rules allowing: a 401, or a 403 of an API
    /// other than the Transact API, at most once per 30 s for this identity and API), or a
    /// newer token is in service already. False when the answer stands: another status, a
    /// renewal was forced less than 30 s ago, or `token` is empty or was never this
    /// client's (a request that did not carry our token must not cost an issued one).
    ///
    /// `url` must be on an origin the token may go to, as for `auth_headers`.
    pub fn reject_token_at(&self, url: &str, status: u16, token: &str) -> Result<bool, Error> {
        let origin = self.token_origin(url)?;
        Ok(self.answered(&origin, status, token))
    }

    fn answered(&self, origin: &Origin, status: u16, token: &str) -> bool {
        if !self.renews_on(origin, status) {
            return false;
        }
        let token = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("DPoP "))
            .unwrap_or(token)
            .trim();
        if token.is_empty() {
            return false;
        }
        let Some(current) = self.cached_token() else {
            // Nothing cached: the next token() fetches anyway, if the token was ours.
            return self.inner.cache.held_before(&token::fingerprint(token));
        };
        if current.secret() != token {
            // A token this client held before: the one in service now is newer. Anything
            // else was never ours.
            return self.inner.cache.held_before(&token::fingerprint(token));
        }
        match self.claim_renewal(&current, origin) {
            Renewal::Refused => false,
            Renewal::Newer => true,
            Renewal::Claimed => {
                self.inner.forget_shared(Some(&current));
                self.inner.cache.reject(&current);
                true
            }
        }
    }

    /// Whether `status` from the API at `origin` may renew the token: a 401 always; a 403
    /// unless it is the Transact API's, whose 403 means a missing or refused subscription
    /// key (a new token cannot help).
    pub(crate) fn renews_on(&self, origin: &Origin, status: u16) -> bool {
        match status {
            401 => true,
            403 => *origin != self.config().transact_origin,
            _ => false,
        }
    }

    /// The origin of `url` if the token may go there: this handle's API, or one of the
    /// vendor's two APIs as configured.
    fn token_origin(&self, url: &str) -> Result<Origin, Error> {
        let origin =
            Origin::of(url).map_err(|why| Error::invalid_argument(format!("url {why}")))?;
        if origin == self.api.origin || self.config().is_vendor_api(&origin) {
            Ok(origin)
        } else {
            Err(Error::invalid_argument(
                "url is not on an API origin of this client; the token is not sent there",
            ))
        }
    }

    /// Keeps the `DPoP-Nonce` a server at `url` answered with (to a request sent by other
    /// means), for the next proof to that origin. Does nothing with `dpop` off.
    pub fn dpop_nonce(&self, url: &str, nonce: &str) {
        if let Some(key) = &self.inner.shared.config.dpop {
            key.remember_nonce(url, nonce);
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
        self.exchange(request, Some(out))
    }
}

/// What a request sent by other means must carry: see [`Client::auth_headers`]. `Debug`
/// shows neither value.
pub struct AuthHeaders {
    authorization: zeroize::Zeroizing<String>,
    dpop: Option<String>,
}

impl AuthHeaders {
    /// The `Authorization` header's value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The `DPoP` header's value, for a DPoP-bound token.
    pub fn dpop(&self) -> Option<&str> {
        self.dpop.as_deref()
    }
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("dpop", &self.dpop.is_some())
            .finish_non_exhaustive()
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
