//! The client: tokens on demand, and authenticated API requests.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ureq::http::Method;
use zeroize::Zeroizing;

use crate::cache::{Renewal, TokenCache, RENEWAL_INTERVAL};
use crate::config::Config;
use crate::disk::DiskCache;
use crate::error::Error;
use crate::fetch::fetch_token;
use crate::http::{attempt_timeout, is_idempotent, Exchange, Failure, Http, RawResponse, Read};
use crate::request::{Request, RequestBuilder};
use crate::response::Response;
use crate::retry::{self, is_retryable_status};
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
        let api = Arc::new(ApiBase {
            url: shared.config.api_base_url.clone(),
            origin: shared.config.api_origin.clone(),
        });
        Client {
            api,
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
        let tenant = Client::with_shared(
            Arc::clone(&self.inner.shared),
            Some(lwt_client_id.to_owned()),
        );
        // The same API as this handle's (one made by `for_api` keeps its base).
        Ok(Client {
            api: Arc::clone(&self.api),
            ..tenant
        })
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

    /// Drops the cached token; the next [`token`](Client::token) fetches a new one (unless a
    /// failed request's backoff is still running: then it gets that failure at once).
    /// With a `cache_dir`, the shared cache file's token is dropped too.
    pub fn invalidate(&self) {
        // The file first: a thread of ours reading it in between must not get it back.
        if let Some(disk) = &self.inner.disk {
            disk.forget(None);
        }
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

    fn exchange<'w>(
        &self,
        request: &Request,
        mut out: Option<&mut (dyn Write + 'w)>,
    ) -> Result<Response, Error> {
        let mut url = api_url(&self.api.url, &self.api.origin, &request.path_and_query())?;
        let deadline = Instant::now() + self.inner.shared.config.deadline;
        let mut method = request.method.clone();
        let mut body = request.body.as_ref();
        let mut token = self.token()?;
        let mut renewed = false;
        let mut redirects = 0;
        loop {
            let attempt = Attempt {
                method: &method,
                url: &url,
                request,
                body,
                deadline,
            };
            let resp = self.send_with_retries(&attempt, &mut token, out.as_deref_mut())?;
            if matches!(resp.status, 401 | 403) && !renewed && !resp.streamed {
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
                        return hand_back(resp, url, out);
                    }
                    // Another process of this identity renewed less than 30 s ago: its
                    // token, if the shared file holds a newer one (no token request), else
                    // the answer stands.
                    Renewal::Claimed
                        if self
                            .inner
                            .disk
                            .as_ref()
                            .is_some_and(|disk| !disk.claim_renewal(RENEWAL_INTERVAL)) =>
                    {
                        let newer = self
                            .inner
                            .disk
                            .as_ref()
                            .is_some_and(|disk| disk.holds_newer_than(&token));
                        if !newer {
                            log::debug!(
                                "lwolf-auth: api answered {} with token {}; another process \
                                 renewed less than {} s ago, so handing the answer back",
                                resp.status,
                                token.fingerprint(),
                                RENEWAL_INTERVAL.as_secs()
                            );
                            return hand_back(resp, url, out);
                        }
                        self.inner.cache.invalidate_if_current(&token);
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
            return hand_back(resp, url, out);
        }
    }

    /// One API exchange, retried on 408/429/5xx and lost connections for idempotent methods.
    /// A retry whose wait outlived `token` sends the token in service instead (fetching one
    /// if need be), so an expired token is never sent; `token` is then the one last sent.
    fn send_with_retries<'w>(
        &self,
        attempt: &Attempt<'_>,
        token: &mut AccessToken,
        mut out: Option<&mut (dyn Write + 'w)>,
    ) -> Result<RawResponse, Error> {
        let config = &self.inner.shared.config;
        let max_retries = if is_idempotent(attempt.method) {
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
        let what = RequestName(attempt.method);
        retry::run(
            &what,
            config.backoff(),
            max_retries,
            attempt.deadline,
            |attempts| {
                if attempts > 1 && !token.is_usable_now() {
                    match self.token() {
                        Ok(fresh) => *token = fresh,
                        Err(e) => return retry::Attempt::Done(Err(e)),
                    }
                }
                match self.send_once(attempt, token, out.as_deref_mut()) {
                    Ok(resp) if !resp.streamed && is_retryable_status(resp.status) => {
                        retry::Attempt::Again {
                            reason: format!("http status {}", resp.status),
                            asked: resp.server_wait(),
                            last: Ok(resp),
                        }
                    }
                    Ok(resp) => retry::Attempt::Done(Ok(resp)),
                    Err(failure) => failure.into_attempt(attempts, too_large),
                }
            },
        )
    }

    /// One attempt: `Authorization: Bearer`, `Accept`, `lw-subscription-key` when one is set,
    /// the request's own headers, and its body with its content type.
    fn send_once<'w>(
        &self,
        attempt: &Attempt<'_>,
        token: &AccessToken,
        out: Option<&mut (dyn Write + 'w)>,
    ) -> Result<RawResponse, Failure> {
        let mut authorization = Zeroizing::new(String::with_capacity(7 + token.secret().len()));
        authorization.push_str("Bearer ");
        authorization.push_str(token.secret());
        let config = &self.inner.shared.config;
        let request = attempt.request;
        let mut headers = vec![("authorization", authorization.as_str())];
        if request.header("accept").is_none() {
            headers.push(("accept", "application/json"));
        }
        if let Some(key) = &config.subscription_key {
            headers.push(("lw-subscription-key", key.expose()));
        }
        if let Some((_, content_type)) = attempt.body {
            if request.header("content-type").is_none() {
                headers.push(("content-type", content_type.as_str()));
            }
        }
        headers.extend(
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let exchange = Exchange {
            method: attempt.method,
            url: attempt.url,
            headers: &headers,
            body: attempt.body.map(|(bytes, _)| bytes.as_slice()),
            timeout: attempt_timeout(
                request.timeout.unwrap_or(config.timeout),
                request.timeout.is_some(),
                attempt.deadline,
            ),
        };
        let read = match out {
            None => Read::Whole(config.max_response_bytes),
            // What the client acts on itself is read, not streamed: renewals, retries,
            // redirects. If it is handed back after all, `hand_back` writes it out.
            Some(out) => Read::Stream {
                keep: &|status| {
                    matches!(status, 401 | 403 | 300..=399) || is_retryable_status(status)
                },
                limit: config.max_response_bytes,
                out,
            },
        };
        self.inner.shared.http.send(&exchange, read)
    }

    /// Where a 3xx points, if it may be followed: within the API's origin and the limit.
    fn same_origin_redirect(&self, resp: &RawResponse, url: &str, followed: u32) -> Option<String> {
        if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) || followed >= MAX_REDIRECTS {
            return None;
        }
        let next = resolve_location(url, resp.header("location")?)?;
        match Origin::of(&next) {
            Ok(origin) if origin == self.api.origin => Some(next),
            _ => {
                log::info!("lwolf-auth: not following a redirect to another origin");
                None
            }
        }
    }
}

/// One exchange of a request: where it goes now (a redirect may have changed the method and
/// dropped the body).
struct Attempt<'a> {
    method: &'a Method,
    url: &'a str,
    request: &'a Request,
    body: Option<&'a (Vec<u8>, String)>,
    /// The end of the whole call: no retry past it, no attempt longer than what is left.
    deadline: Instant,
}

/// The response to give the caller; with a writer, a body that was read rather than
/// streamed (a 401/403 or 5xx handed back) is written out now, so `out` always has it.
fn hand_back(
    mut resp: RawResponse,
    url: String,
    out: Option<&mut (dyn Write + '_)>,
) -> Result<Response, Error> {
    if let Some(out) = out {
        if !resp.streamed {
            out.write_all(&resp.body)
                .and_then(|()| out.flush())
                .map_err(|e| Error::aborted(e.kind()))?;
            resp.body = Vec::new();
            resp.streamed = true;
        }
    }
    Ok(Response { raw: resp, url })
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
            .field("api_base_url", &self.api.url)
            .field(
                "token",
                &self.cached_token().map(|t| t.fingerprint().to_owned()),
            )
            .finish()
    }
}
