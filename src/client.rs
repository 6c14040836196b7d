//! The client: tokens on demand, and authenticated API requests.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ureq::http::Method;
use zeroize::Zeroizing;

use crate::cache::{Renewal, TokenCache, RENEWAL_INTERVAL};
use crate::config::Config;
use crate::disk::DiskCache;
use crate::error::Error;
use crate::fetch::fetch_token;
use crate::http::{is_idempotent, parse_method, Failure, Http, RawResponse};
use crate::response::Response;
use crate::retry::{self, is_retryable_status, Attempt};
use crate::token::AccessToken;
use crate::url::{api_url, resolve_location, Origin};

/// Redirects followed within the API's origin before the 3xx is handed back.
const MAX_REDIRECTS: u32 = 5;

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
/// let response = client.get("/v1/transactions")?;
/// println!("{} {}", response.status(), response.text());
/// # Ok::<(), lwolf_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    lwt_client_id: Option<String>,
    cache: TokenCache,
    /// The token cache shared with other processes, behind `cache`, when `cache_dir` is set.
    disk: Option<DiskCache>,
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
        Client::with_shared(Arc::new(Shared { config, http }), lwt_client_id)
    }

    /// A client configured from the `LWOLF_*` environment variables.
    pub fn from_env() -> Result<Client, Error> {
        Ok(Client::new(Config::from_env()?))
    }

    fn with_shared(shared: Arc<Shared>, lwt_client_id: Option<String>) -> Client {
        let refresh_backoff = shared.config.backoff();
        let disk = DiskCache::new(&shared.config, lwt_client_id.as_deref());
        Client {
            inner: Arc::new(Inner {
                shared,
                lwt_client_id,
                cache: TokenCache::new(refresh_backoff),
                disk,
            }),
        }
    }

    /// A client for another customer instance: the same settings and connection pool,
    /// its own token. Either client may outlive the other.
    pub fn for_tenant(&self, lwt_client_id: &str) -> Result<Client, Error> {
        if lwt_client_id.is_empty() {
            return Err(Error::invalid_argument("lwt_client_id must not be empty"));
        }
        Ok(Client::with_shared(
            Arc::clone(&self.inner.shared),
            Some(lwt_client_id.to_owned()),
        ))
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
    /// While one caller refreshes a token that is due, everyone else gets the current
    /// token at once; a failed refresh keeps it in service until it expires. Callers
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
        let fetch = || {
            let fetch = || {
                fetch_token(
                    &inner.shared.http,
                    &inner.shared.config,
                    inner.lwt_client_id.as_deref(),
                )
            };
            match &inner.disk {
                // Only reached when memory has no token to hand out, or its token is due.
                Some(disk) => disk.get_or_fetch(inner.cache.peek().is_some(), fetch),
                None => fetch(),
            }
        };
        inner.cache.get_with(fetch, read)
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

    /// Drops the cached token; the next [`token`](Client::token) fetches a new one.
    /// With a `cache_dir`, the shared cache file's token is dropped too.
    pub fn invalidate(&self) {
        // The file first: a thread of ours reading it in between must not get it back.
        if let Some(disk) = &self.inner.disk {
            disk.forget(None);
        }
        self.inner.cache.invalidate();
    }

    /// Sends `method` to `api_base_url` + `path` with the bearer token.
    ///
    /// `path` may also be an absolute URL on the same origin as `api_base_url`; another
    /// origin is [`Error::InvalidArgument`]. A body is sent as `application/json`.
    /// On a 401 or 403 the token is renewed and the request sent once more, at most once per
    /// 30 s for this identity (past that the 401/403 is handed back at once); 408, 429 and
    /// 5xx are retried for GET, HEAD, PUT, DELETE and OPTIONS. Every HTTP status is a
    /// [`Response`]; errors mean no response could be had.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, Error> {
        let mut method = parse_method(method)?;
        let shared = &*self.inner.shared;
        let mut url = api_url(&shared.config.api_base_url, &shared.config.api_origin, path)?;
        let mut body = body;
        let mut token = self.token()?;
        let mut renewed = false;
        let mut redirects = 0;
        loop {
            let resp = self.send_with_retries(&method, &url, &mut token, body)?;
            if matches!(resp.status, 401 | 403) && !renewed {
                renewed = true;
                // A 401/403 is not proof that the token is bad (a missing subscription key
                // or permission gets one too): renewing on each would cost an issued token
                // per call, so renewals are bounded, and past the bound the answer stands.
                match self.inner.cache.claim_renewal(&token) {
                    Renewal::Refused => {
                        log::debug!(
                            "lwolf-auth: api answered {} with token {}; renewed less than \
                             {} s ago, so handing the answer back",
                            resp.status,
                            token.fingerprint(),
                            RENEWAL_INTERVAL.as_secs()
                        );
                        return Ok(Response { raw: resp, url });
                    }
                    Renewal::Claimed => {
                        log::info!(
                            "lwolf-auth: api answered {} with token {}; renewing it",
                            resp.status,
                            token.fingerprint()
                        );
                        // The file first: a thread of ours reading it in between must not
                        // get it back.
                        if let Some(disk) = &self.inner.disk {
                            disk.forget(Some(&token));
                        }
                        self.inner.cache.invalidate_if_current(&token);
                    }
                    // Another caller renewed it already: send the newer token.
                    Renewal::Newer => {}
                }
                token = self.token()?;
                continue;
            }
            if let Some(next) = self.same_origin_redirect(&resp, &url, redirects) {
                redirects += 1;
                // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do).
                if resp.status == 303
                    || (matches!(resp.status, 301 | 302) && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            return Ok(Response { raw: resp, url });
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Response, Error> {
        self.request("GET", path, None)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Response, Error> {
        self.request("DELETE", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, json_body: &[u8]) -> Result<Response, Error> {
        self.request("POST", path, Some(json_body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, json_body: &[u8]) -> Result<Response, Error> {
        self.request("PUT", path, Some(json_body))
    }

    /// `POST path` with `value` serialized as JSON.
    pub fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<Response, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::invalid_argument(format!("body does not serialize: {e}")))?;
        self.post(path, &body)
    }

    /// One API exchange, retried on 408/429/5xx and lost connections for idempotent methods.
    /// A retry whose wait outlived `token` sends the token in service instead (fetching one
    /// if need be), so an expired token is never sent; `token` is then the one last sent.
    fn send_with_retries(
        &self,
        method: &Method,
        url: &str,
        token: &mut AccessToken,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, Error> {
        let config = &self.inner.shared.config;
        let max_retries = if is_idempotent(method) {
            config.max_retries
        } else {
            0
        };
        let too_large = || {
            format!(
                "response body larger than max_response_bytes ({})",
                config.max_response_bytes
            )
        };
        let what = RequestName(method);
        retry::run(&what, config.backoff(), max_retries, |attempts| {
            if attempts > 1 && !token.is_usable_now() {
                match self.token() {
                    Ok(fresh) => *token = fresh,
                    Err(e) => return Attempt::Done(Err(e)),
                }
            }
            match self.send_once(method, url, token, body) {
                Ok(resp) if is_retryable_status(resp.status) => Attempt::Again {
                    reason: format!("http status {}", resp.status),
                    asked: resp.server_wait(),
                    last: Ok(resp),
                },
                Ok(resp) => Attempt::Done(Ok(resp)),
                Err(failure) => failure.into_attempt(attempts, too_large),
            }
        })
    }

    /// One attempt: `Authorization: Bearer`, `Accept`, `lw-subscription-key` when one is set,
    /// and the body as JSON.
    fn send_once(
        &self,
        method: &Method,
        url: &str,
        token: &AccessToken,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, Failure> {
        let mut authorization = Zeroizing::new(String::with_capacity(7 + token.secret().len()));
        authorization.push_str("Bearer ");
        authorization.push_str(token.secret());
        let config = &self.inner.shared.config;
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(key) = &config.subscription_key {
            headers.push(("lw-subscription-key", key.expose()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.inner
            .shared
            .http
            .send(method, url, &headers, body, config.max_response_bytes)
    }

    /// Where a 3xx points, if it may be followed: within the API's origin and the limit.
    fn same_origin_redirect(&self, resp: &RawResponse, url: &str, followed: u32) -> Option<String> {
        if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) || followed >= MAX_REDIRECTS {
            return None;
        }
        let next = resolve_location(url, resp.header("location")?)?;
        match Origin::of(&next) {
            Ok(origin) if origin == self.inner.shared.config.api_origin => Some(next),
            _ => {
                log::info!("lwolf-auth: not following a redirect to another origin");
                None
            }
        }
    }
}

/// `GET request`, as the retry log names an API request.
struct RequestName<'a>(&'a Method);

impl fmt::Display for RequestName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} request", self.0)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.config();
        f.debug_struct("Client")
            .field("client_id", &config.client_id)
            .field("lwt_client_id", &self.inner.lwt_client_id)
            .field("token_url", &config.token_url)
            .field("api_base_url", &config.api_base_url)
            .field(
                "token",
                &self.cached_token().map(|t| t.fingerprint().to_owned()),
            )
            .finish()
    }
}
