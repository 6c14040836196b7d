//! A local stand-in for the vendor's gateway and Back Office API, for tests and demos.
//!
//! [`Sandbox::start`] binds `127.0.0.1` (port 0 unless [`SandboxBuilder::port`] says
//! otherwise), serves on a few threads of its own, and shuts down when dropped.
//!
//! * `POST /oauth/token` behaves as the vendor's token guide describes (an Auth0 tenant):
//!   JSON or form-encoded bodies, credentials in the body or as HTTP Basic
//!   (RFC 6749 §2.3.1), the same error bodies and statuses, an optional rate limit.
//! * `/backoffice/v1/transactions`, `/backoffice/v1/transactions/{id}`,
//!   `/backoffice/v1/offices` and `/backoffice/v1/employees` answer with sample data to
//!   requests that carry a bearer token it issued, and `401` with
//!   `WWW-Authenticate: Bearer error="invalid_token"` to those that don't.
//!   `POST /backoffice/v1/transactions` stores and echoes a new transaction. Answers to a
//!   token issued for an `lwt_client_id` carry it in `X-Sandbox-Lwt-Client-Id`.
//! * `GET /_sandbox/stats` (no token needed) reports the counters as JSON, for tests in
//!   other languages.
//!
//! ```
//! use lwolf_auth::{sandbox::Sandbox, Client};
//!
//! let sandbox = Sandbox::start()?;
//! let client = Client::new(sandbox.config_builder().build()?);
//! let response = client.get("/v1/transactions")?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(sandbox.tokens_issued(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It never logs the secret or a token, and answers hostile input (bad UTF-8, bad JSON,
//! bodies over 64 KiB) with `400`.

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tiny_http::{Method, Request, Server};

use crate::config::{ConfigBuilder, DEFAULT_AUDIENCE};
use crate::secret::SecretString;

/// The client id a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
/// The client secret a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";
/// The token lifetime a sandbox grants unless told otherwise: 24 hours, as the vendor's.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(86_400);
/// The largest request body the sandbox reads; a larger one is answered with `400`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Threads taking requests off the server's queue.
const WORKERS: usize = 4;
/// How long a dropped sandbox waits for a worker that is busy with a request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Issued tokens kept before expired ones are swept out.
const SWEEP_ABOVE: usize = 10_000;
/// Transactions created with `POST` that are kept (later ones are echoed, not stored).
const MAX_CREATED: usize = 1_000;
/// The issuer claim of sandbox tokens.
const ISSUER: &str = "lwolf-sandbox";

/// Configures and starts a [`Sandbox`]. Make one with [`Sandbox::builder`].
#[derive(Clone)]
pub struct SandboxBuilder {
    client_id: String,
    client_secret: SecretString,
    token_ttl: Duration,
    rate_limit: Option<u32>,
    port: u16,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            rate_limit: None,
            port: 0,
        }
    }
}

impl fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("token_ttl", &self.token_ttl)
            .field("rate_limit", &self.rate_limit)
            .field("port", &self.port)
            .finish()
    }
}

impl SandboxBuilder {
    /// The client id the token endpoint accepts (default `sandbox-client`).
    pub fn client_id(mut self, v: impl Into<String>) -> Self {
        self.client_id = v.into();
        self
    }

    /// The client secret the token endpoint accepts (default `sandbox-secret`).
    pub fn client_secret(mut self, v: impl Into<String>) -> Self {
        self.client_secret = SecretString::new(v.into());
        self
    }

    /// How long issued tokens are accepted (default 24 hours). It is reported as
    /// `expires_in` in whole seconds, rounded down, and at least 1; the API stops accepting
    /// a token after exactly this duration.
    pub fn token_ttl(mut self, v: Duration) -> Self {
        self.token_ttl = v;
        self
    }

    /// At most this many token requests within any one second (default: no limit). More
    /// are answered `429` with `Retry-After: 1`. `0` rejects every token request.
    pub fn rate_limit(mut self, max_token_requests_per_second: u32) -> Self {
        self.rate_limit = Some(max_token_requests_per_second);
        self
    }

    /// The port to listen on, on 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds the port and starts serving. Fails only if the port cannot be bound or a
    /// thread cannot be started.
    pub fn start(self) -> io::Result<Sandbox> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))?;
        let addr = listener.local_addr()?;
        let server = Server::from_listener(listener, None)
            .map_err(|e| io::Error::other(format!("sandbox server: {e}")))?;
        let server = Arc::new(server);
        let state = Arc::new(State {
            client_id: self.client_id,
            client_secret: self.client_secret,
            token_ttl: self.token_ttl,
            rate_limit: self.rate_limit,
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
            recent_token_requests: Mutex::new(VecDeque::new()),
            created: Mutex::new(Vec::new()),
            next_transaction: AtomicU64::new(1006),
            random_counter: AtomicU64::new(0),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let mut sandbox = Sandbox {
            state,
            server,
            stopping,
            workers: Vec::with_capacity(WORKERS),
            addr,
        };
        for i in 0..WORKERS {
            let server = Arc::clone(&sandbox.server);
            let state = Arc::clone(&sandbox.state);
            let stopping = Arc::clone(&sandbox.stopping);
            // On failure `sandbox` is dropped, which stops the workers already started.
            let handle = std::thread::Builder::new()
                .name(format!("lwolf-sandbox-{i}"))
                .spawn(move || worker(&server, &state, &stopping))?;
            sandbox.workers.push(handle);
        }
        log::debug!("lwolf-sandbox: listening on {addr}");
        Ok(sandbox)
    }
}

/// A running sandbox gateway and API on 127.0.0.1. Stops when dropped.
///
/// Dropping it stops the listener and joins the worker threads; a worker still blocked on
/// a client that stopped sending mid-body is waited for up to 2 seconds, then left behind.
///
/// `Debug` shows the URL, client id and counters, never the secret.
pub struct Sandbox {
    state: Arc<State>,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Sandbox {
    /// A builder with every setting at its default.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// Starts a sandbox with the default settings on a free port.
    pub fn start() -> io::Result<Sandbox> {
        SandboxBuilder::default().start()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint: [`url`](Self::url) + `/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.url())
    }

    /// The base of API requests: [`url`](Self::url) + `/backoffice`.
    pub fn api_base_url(&self) -> String {
        format!("{}/backoffice", self.url())
    }

    /// The port the sandbox listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The client id the token endpoint accepts.
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The client secret the token endpoint accepts.
    pub fn client_secret(&self) -> &str {
        self.state.client_secret.expose()
    }

    /// A [`ConfigBuilder`] with the client id, secret, token URL and API base URL of this
    /// sandbox already set.
    pub fn config_builder(&self) -> ConfigBuilder {
        crate::Config::builder()
            .client_id(self.client_id())
            .client_secret(self.client_secret())
            .token_url(self.token_url())
            .api_base_url(self.api_base_url())
    }

    /// The `LWOLF_*` settings that point a client at this sandbox, as shell commands
    /// (`export LWOLF_TOKEN_URL=…`, one a line, values quoted where a shell needs it), for
    /// `eval "$(…)"`. They hold the sandbox's own made-up secret: printing it is the point.
    pub fn shell_exports(&self) -> String {
        let values = [
            self.token_url(),
            self.api_base_url(),
            self.client_id().to_owned(),
            self.client_secret().to_owned(),
        ];
        EXPORTED
            .iter()
            .zip(values)
            .map(|(name, value)| format!("export {name}={}\n", shell_quote(&value)))
            .collect()
    }

    /// Requests received on `/oauth/token`, whatever their outcome.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Requests received under `/backoffice`, whatever their outcome.
    pub fn api_requests(&self) -> u64 {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// Makes every token issued so far invalid: the API answers `401` to them. Tokens
    /// issued afterwards are valid as usual.
    pub fn expire_tokens(&self) {
        self.state.tokens.lock().clear();
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("url", &self.url())
            .field("client_id", &self.state.client_id)
            .field("client_secret", &self.state.client_secret)
            .field("token_ttl", &self.state.token_ttl)
            .field("rate_limit", &self.state.rate_limit)
            .field("token_requests", &self.token_requests())
            .field("tokens_issued", &self.tokens_issued())
            .field("api_requests", &self.api_requests())
            .finish()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Each unblock wakes one `recv`; a worker that wakes with the flag set leaves.
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        // A worker stuck reading the body of a client that went silent cannot be woken:
        // wait a while for it, then leave it behind rather than hang the caller.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for handle in self.workers.drain(..) {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                log::warn!("lwolf-sandbox: a worker is still busy with a request; not waiting");
            }
        }
        // The last `Arc<Server>` goes with `self`: tiny_http then closes the listener.
    }
}

/// What the workers share.
struct State {
    client_id: String,
    client_secret: SecretString,
    token_ttl: Duration,
    rate_limit: Option<u32>,
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    api_requests: AtomicU64,
    /// Valid tokens, by value.
    tokens: Mutex<HashMap<String, Issued>>,
    /// When the token requests admitted within the last second arrived.
    recent_token_requests: Mutex<VecDeque<Instant>>,
    /// Transactions created with `POST`.
    created: Mutex<Vec<Value>>,
    next_transaction: AtomicU64,
    random_counter: AtomicU64,
}

/// An issued token's bookkeeping.
struct Issued {
    expires: Instant,
    /// Echoed on API answers as `X-Sandbox-Lwt-Client-Id`, so tests can tell tenants apart.
    lwt_client_id: Option<String>,
}

fn worker(server: &Server, state: &State, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => {
                // A bug must not take the worker down: the request, dropped by the
                // unwinding, is answered 500 by tiny_http.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle(state, request)
                }));
                if outcome.is_err() {
                    log::error!("lwolf-sandbox: a request handler panicked");
                }
            }
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                log::warn!("lwolf-sandbox: {e}");
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
            }
        }
    }
}

/// An answer, before it becomes a tiny_http response.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

fn handle(state: &State, mut request: Request) {
    let url = request.url().to_owned();
    let path = url.split(['?', '#']).next().unwrap_or("");
    let method = request.method().clone();
    let reply = if path == "/oauth/token" {
        token_endpoint(state, &mut request)
    } else if path == "/backoffice" || path.starts_with("/backoffice/") {
        api(state, &mut request, &path["/backoffice".len()..])
    } else if path == "/_sandbox/stats" {
        if matches!(method, Method::Get | Method::Head) {
            Reply::json(
                200,
                &json!({
                    "token_requests": state.token_requests.load(Ordering::SeqCst),
                    "tokens_issued": state.tokens_issued.load(Ordering::SeqCst),
                    "api_requests": state.api_requests.load(Ordering::SeqCst),
                }),
            )
            .with("Cache-Control", "no-store")
        } else {
            api_error(state, 405, "method_not_allowed", "method not allowed").with("Allow", "GET")
        }
    } else {
        api_error(state, 404, "not_found", "no such resource")
    };
    // The path only: a query string could carry anything.
    log::debug!(
        "lwolf-sandbox: {} {} -> {}",
        method,
        truncate(path, 100),
        reply.status
    );
    respond(request, reply);
}

/// Writes the whole response in one `write`: tiny_http's own `respond` writes through a
/// 1 KiB buffer, and the second segment of a larger answer then waits for a delayed ACK
/// (Nagle), which costs about 40 ms per request on a kept-alive connection.
fn respond(request: Request, reply: Reply) {
    let head_only = *request.method() == Method::Head;
    let connection = header(&request, "Connection").map(str::to_ascii_lowercase);
    let close = match &connection {
        Some(c) if c.contains("close") => true,
        Some(c) if c.contains("keep-alive") => false,
        _ => *request.http_version() < (1, 1),
    };
    let mut out = Vec::with_capacity(256 + reply.body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\nServer: lwolf-sandbox\r\nDate: {}\r\n",
            reply.status,
            reason(reply.status),
            httpdate::fmt_http_date(SystemTime::now())
        )
        .as_bytes(),
    );
    for (name, value) in &reply.headers {
        // Values may echo what a client sent: nothing that could end the header.
        if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    // Any unread body is drained here (tiny_http does it when the request is dropped), so
    // the next request on the connection starts where it should.
    let mut writer = request.into_writer();
    if let Err(e) = writer.write_all(&out).and_then(|()| writer.flush()) {
        log::debug!("lwolf-sandbox: could not send a response: {e}");
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------
// The token endpoint.

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
    .with("Cache-Control", "no-store")
    .with("Pragma", "no-cache")
}

fn token_endpoint(state: &State, request: &mut Request) -> Reply {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    if *request.method() != Method::Post {
        return oauth_error(405, "invalid_request", "method not allowed: use POST")
            .with("Allow", "POST");
    }
    if !admit(state) {
        return oauth_error(429, "too_many_requests", "Rate limit exceeded")
            .with("Retry-After", "1");
    }
    let params = match token_params(request) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let get = |name: &str| params.get(name).map(String::as_str);

    // Client authentication: HTTP Basic, or the body; not both (RFC 6749 §2.3).
    let basic = match header(request, "Authorization") {
        Some(value) if has_scheme(value, "basic") => match parse_basic(&value[6..]) {
            Some(pair) => Some(pair),
            None => return oauth_error(400, "invalid_request", "malformed Basic authorization"),
        },
        _ => None,
    };
    let (client_id, client_secret) = match &basic {
        Some((id, secret)) => {
            if get("client_secret").is_some() {
                return oauth_error(
                    400,
                    "invalid_request",
                    "more than one client authentication method",
                );
            }
            if get("client_id").is_some_and(|body_id| body_id != id) {
                return oauth_error(
                    400,
                    "invalid_request",
                    "client_id in the body differs from the Basic authorization",
                );
            }
            (id.as_str(), secret.as_str())
        }
        None => ("", ""),
    };

    let grant_type = match get("grant_type") {
        Some(g) => g,
        None => return missing("grant_type"),
    };
    if grant_type != "client_credentials" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {}", truncate(grant_type, 100)),
        );
    }
    let (client_id, client_secret) = if basic.is_some() {
        (client_id, client_secret)
    } else {
        match (get("client_id"), get("client_secret")) {
            (None, _) => return missing("client_id"),
            (_, None) => return missing("client_secret"),
            (Some(id), Some(secret)) => (id, secret),
        }
    };
    let audience = match get("audience") {
        Some(a) => a,
        None => return missing("audience"),
    };
    let lwt_client_id = match get("lwt_client_id") {
        Some("") => return oauth_error(400, "invalid_request", "lwt_client_id must not be empty"),
        other => other,
    };

    let id_ok = constant_time_eq(client_id.as_bytes(), state.client_id.as_bytes());
    let secret_ok = constant_time_eq(
        client_secret.as_bytes(),
        state.client_secret.expose().as_bytes(),
    );
    if !(id_ok && secret_ok) {
        let reply = oauth_error(401, "access_denied", "Unauthorized");
        return if basic.is_some() {
            reply.with("WWW-Authenticate", "Basic realm=\"lwolf-sandbox\"")
        } else {
            reply
        };
    }
    if audience != DEFAULT_AUDIENCE {
        return oauth_error(
            403,
            "access_denied",
            &format!(
                "Service not enabled within domain: {}",
                truncate(audience, 200)
            ),
        );
    }

    let (token, expires_in) = issue(state, client_id, audience, lwt_client_id);
    Reply::json(
        200,
        &json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }),
    )
    .with("Cache-Control", "no-store")
    .with("Pragma", "no-cache")
}

fn missing(name: &str) -> Reply {
    oauth_error(
        400,
        "invalid_request",
        &format!("missing parameter: {name}"),
    )
}

/// Whether one more token request fits the rate limit; if it does, it is counted.
fn admit(state: &State) -> bool {
    let Some(limit) = state.rate_limit else {
        return true;
    };
    let now = Instant::now();
    let mut recent = state.recent_token_requests.lock();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        recent.pop_front();
    }
    if recent.len() >= limit as usize {
        return false;
    }
    recent.push_back(now);
    true
}

/// The token request's parameters, from a JSON or form-encoded body.
fn token_params(request: &mut Request) -> Result<HashMap<String, String>, Reply> {
    let body = read_body(request).map_err(|why| oauth_error(400, "invalid_request", why))?;
    let content_type = header(request, "Content-Type")
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|_| oauth_error(400, "invalid_request", "malformed JSON body"))?;
            let Value::Object(map) = value else {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "the body must be a JSON object",
                ));
            };
            let mut params = HashMap::new();
            for (key, value) in map {
                match value {
                    Value::String(s) => {
                        params.insert(key, s);
                    }
                    Value::Null => {}
                    _ => {
                        return Err(oauth_error(
                            400,
                            "invalid_request",
                            &format!("parameter {} must be a string", truncate(&key, 50)),
                        ))
                    }
                }
            }
            Ok(params)
        }
        "application/x-www-form-urlencoded" => {
            let mut params = HashMap::new();
            for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
                let (key, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                let (Some(key), Some(value)) = (form_decode(key), form_decode(value)) else {
                    return Err(oauth_error(400, "invalid_request", "malformed form body"));
                };
                // RFC 6749 §3.2: parameters must not be repeated.
                if params.insert(key.clone(), value).is_some() {
                    return Err(oauth_error(
                        400,
                        "invalid_request",
                        &format!("repeated parameter: {}", truncate(&key, 50)),
                    ));
                }
            }
            Ok(params)
        }
        _ => Err(oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret).
fn parse_basic(encoded: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let id = form_decode(&raw[..colon])?;
    let secret = form_decode(&raw[colon + 1..])?;
    Some((id, secret))
}

/// Reverses application/x-www-form-urlencoded; `None` for a bad escape or bad UTF-8.
fn form_decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Makes, records and counts a new token; returns it with its `expires_in`.
fn issue(
    state: &State,
    client_id: &str,
    audience: &str,
    lwt_client_id: Option<&str>,
) -> (String, u64) {
    let expires_in = state.token_ttl.as_secs().max(1);
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = Map::new();
    claims.insert("iss".into(), ISSUER.into());
    claims.insert("sub".into(), client_id.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), iat.saturating_add(expires_in).into());
    if let Some(id) = lwt_client_id {
        claims.insert("lwt_client_id".into(), id.into());
    }
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(&Value::Object(claims)).unwrap_or_default());
    let mut signature = [0u8; 32];
    for chunk in signature.chunks_mut(8) {
        chunk.copy_from_slice(&random_u64(state).to_le_bytes());
    }
    let token = format!("{header}.{payload}.{}", b64.encode(signature));

    let now = Instant::now();
    let expires = now
        .checked_add(state.token_ttl)
        .unwrap_or(now + DEFAULT_TOKEN_TTL);
    {
        let mut tokens = state.tokens.lock();
        if tokens.len() >= SWEEP_ABOVE {
            tokens.retain(|_, t| t.expires > now);
        }
        tokens.insert(
            token.clone(),
            Issued {
                expires,
                lwt_client_id: lwt_client_id.map(str::to_owned),
            },
        );
    }
    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    (token, expires_in)
}

/// 64 unpredictable-enough bits: std's randomly keyed SipHash over a counter and the time.
/// Not cryptographic, and it need not be: sandbox tokens only have to be distinct.
fn random_u64(state: &State) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(state.random_counter.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

// ---------------------------------------------------------------------------------------
// The API.

fn api_error(state: &State, status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "id": uuid_like(state),
            "code": code,
            "message": message,
            "details": [],
        }),
    )
}

fn uuid_like(state: &State) -> String {
    let a = random_u64(state);
    let b = random_u64(state);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn unauthorized(state: &State, message: &str) -> Reply {
    api_error(state, 401, "invalid_token", message)
        .with("WWW-Authenticate", "Bearer error=\"invalid_token\"")
}

/// The customer instance of the request's bearer token, or why the token is not accepted.
fn check_bearer(state: &State, request: &Request) -> Result<Option<String>, &'static str> {
    let value = header(request, "Authorization").ok_or("missing bearer token")?;
    if !has_scheme(value, "bearer") {
        return Err("the Authorization header is not a bearer token");
    }
    let token = value[7..].trim();
    let tokens = state.tokens.lock();
    match tokens.get(token) {
        None => Err("the token is not valid"),
        Some(t) if Instant::now() >= t.expires => Err("the token has expired"),
        Some(t) => Ok(t.lwt_client_id.clone()),
    }
}

fn api(state: &State, request: &mut Request, path: &str) -> Reply {
    state.api_requests.fetch_add(1, Ordering::SeqCst);
    let tenant = match check_bearer(state, request) {
        Ok(tenant) => tenant,
        Err(why) => return unauthorized(state, why),
    };
    let reply = api_resource(state, request, path);
    match tenant {
        Some(id) => reply.with("X-Sandbox-Lwt-Client-Id", id),
        None => reply,
    }
}

fn api_resource(state: &State, request: &mut Request, path: &str) -> Reply {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    let get = matches!(method, Method::Get | Method::Head);
    let not_allowed = |allow: &str| {
        api_error(state, 405, "method_not_allowed", "method not allowed").with("Allow", allow)
    };
    match segments.as_slice() {
        ["v1", "transactions"] => match method {
            _ if get => {
                let mut data = sample_transactions();
                data.extend(state.created.lock().iter().cloned());
                list(data)
            }
            Method::Post => create_transaction(state, request),
            _ => not_allowed("GET, HEAD, POST"),
        },
        ["v1", "transactions", id] => {
            if !get {
                return not_allowed("GET, HEAD");
            }
            let found = sample_transactions()
                .into_iter()
                .chain(state.created.lock().iter().cloned())
                .find(|t| t.get("id").and_then(Value::as_str) == Some(*id));
            match found {
                Some(t) => Reply::json(200, &t),
                None => api_error(
                    state,
                    404,
                    "not_found",
                    &format!("transaction {} not found", truncate(id, 100)),
                ),
            }
        }
        ["v1", "offices"] if get => list(sample_offices()),
        ["v1", "employees"] if get => list(sample_employees()),
        ["v1", "offices"] | ["v1", "employees"] => not_allowed("GET, HEAD"),
        _ => api_error(state, 404, "not_found", "no such resource"),
    }
}

fn list(data: Vec<Value>) -> Reply {
    let total = data.len();
    Reply::json(
        200,
        &json!({ "data": data, "total": total, "page": 1, "pageSize": total.max(25) }),
    )
}

fn create_transaction(state: &State, request: &mut Request) -> Reply {
    let body = match read_body(request) {
        Ok(b) => b,
        Err(why) => return api_error(state, 400, "invalid_request", why),
    };
    let mut transaction = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return api_error(
                state,
                400,
                "invalid_request",
                "the body must be a JSON object",
            )
        }
        Err(_) => return api_error(state, 400, "invalid_request", "malformed JSON body"),
    };
    let id = format!(
        "txn-{}",
        state.next_transaction.fetch_add(1, Ordering::SeqCst)
    );
    transaction.insert("id".into(), Value::String(id.clone()));
    let transaction = Value::Object(transaction);
    {
        let mut created = state.created.lock();
        if created.len() < MAX_CREATED {
            created.push(transaction.clone());
        }
    }
    Reply::json(201, &transaction).with("Location", format!("/backoffice/v1/transactions/{id}"))
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// The body, or why it is refused: over [`MAX_BODY_BYTES`] or unreadable.
fn read_body(request: &mut Request) -> Result<Vec<u8>, &'static str> {
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err("request body larger than 64 KiB");
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|_| "the request body could not be read")?;
    if body.len() > MAX_BODY_BYTES {
        return Err("request body larger than 64 KiB");
    }
    Ok(body)
}

/// The first value of a header, any case.
fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether `value` is `<scheme> <credentials>`, the scheme in any case.
fn has_scheme(value: &str, scheme: &str) -> bool {
    value.len() > scheme.len()
        && value.as_bytes()[scheme.len()] == b' '
        && value[..scheme.len()].eq_ignore_ascii_case(scheme)
}

/// At most `max` characters, control characters dropped.
/// The variables [`Sandbox::shell_exports`] sets, in its order.
const EXPORTED: [&str; 4] = [
    "LWOLF_TOKEN_URL",
    "LWOLF_API_BASE_URL",
    "LWOLF_CLIENT_ID",
    "LWOLF_CLIENT_SECRET",
];

/// For a program that prints [`Sandbox::shell_exports`] and then serves until killed (the
/// `sandbox` example, `lwolf sandbox`): starts `program` with `args` in a process group of
/// its own, with no standard input or error, waits until it has printed its settings, and
/// returns them with `export LWOLF_SANDBOX_PID=…` added, for `eval`. It goes on serving
/// until that process is killed.
#[cfg(unix)]
pub fn start_detached<I, S>(program: &std::path::Path, args: I) -> io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut exports = String::new();
    let mut seen = 0;
    for line in io::BufReader::new(stdout).lines() {
        let line = line?;
        seen += usize::from(line.starts_with("export LWOLF_"));
        exports.push_str(&line);
        exports.push('\n');
        if seen == EXPORTED.len() {
            exports.push_str(&format!("export LWOLF_SANDBOX_PID={}\n", child.id()));
            return Ok(exports);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(io::Error::other("the sandbox exited before it was ready"))
}

/// `s` as one POSIX shell word: as it is when that is safe, else in single quotes.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

// ---------------------------------------------------------------------------------------
// Sample data.

fn sample_transactions() -> Vec<Value> {
    vec![
        json!({
            "id": "txn-1001",
            "number": "2024-0142",
            "status": "closed",
            "type": "sale",
            "property_type": "single_family",
            "address": {
                "street": "1420 Maple Avenue", "city": "Austin", "state": "TX",
                "postal_code": "78704", "country": "US"
            },
            "list_price": 699000,
            "price": 685000,
            "currency": "USD",
            "list_date": "2024-03-02",
            "close_date": "2024-05-17",
            "office_id": "off-10",
            "agents": [
                { "employee_id": "emp-201", "name": "Dana Whitfield", "side": "listing", "commission_pct": 3.0 },
                { "employee_id": "emp-204", "name": "Marcus Oyelaran", "side": "selling", "commission_pct": 2.5 }
            ]
        }),
        json!({
            "id": "txn-1002",
            "number": "2024-0157",
            "status": "pending",
            "type": "sale",
            "property_type": "condo",
            "address": {
                "street": "88 Harbor View Drive, Unit 12B", "city": "San Diego", "state": "CA",
                "postal_code": "92101", "country": "US"
            },
            "list_price": 845000,
            "price": 830000,
            "currency": "USD",
            "list_date": "2024-04-11",
            "close_date": "2024-07-01",
            "office_id": "off-20",
            "agents": [
                { "employee_id": "emp-202", "name": "Priya Raman", "side": "listing", "commission_pct": 2.75 }
            ]
        }),
        json!({
            "id": "txn-1003",
            "number": "2024-0163",
            "status": "active",
            "type": "listing",
            "property_type": "townhouse",
            "address": {
                "street": "305 Cedar Ridge Lane", "city": "Round Rock", "state": "TX",
                "postal_code": "78664", "country": "US"
            },
            "list_price": 425000,
            "price": null,
            "currency": "USD",
            "list_date": "2024-05-20",
            "close_date": null,
            "office_id": "off-10",
            "agents": [
                { "employee_id": "emp-203", "name": "Tom Brennan", "side": "listing", "commission_pct": 3.0 }
            ]
        }),
        json!({
            "id": "txn-1004",
            "number": "2024-0171",
            "status": "closed",
            "type": "lease",
            "property_type": "apartment",
            "address": {
                "street": "2200 Lakeshore Boulevard, Apt 4", "city": "Austin", "state": "TX",
                "postal_code": "78741", "country": "US"
            },
            "list_price": 2400,
            "price": 2350,
            "currency": "USD",
            "list_date": "2024-05-28",
            "close_date": "2024-06-14",
            "office_id": "off-10",
            "agents": [
                { "employee_id": "emp-204", "name": "Marcus Oyelaran", "side": "both", "commission_pct": 8.0 }
            ]
        }),
        json!({
            "id": "txn-1005",
            "number": "2024-0178",
            "status": "cancelled",
            "type": "sale",
            "property_type": "single_family",
            "address": {
                "street": "17 Willow Court", "city": "Carlsbad", "state": "CA",
                "postal_code": "92008", "country": "US"
            },
            "list_price": 1275000,
            "price": 1240000,
            "currency": "USD",
            "list_date": "2024-02-15",
            "close_date": null,
            "office_id": "off-20",
            "agents": [
                { "employee_id": "emp-202", "name": "Priya Raman", "side": "listing", "commission_pct": 2.5 },
                { "employee_id": "emp-201", "name": "Dana Whitfield", "side": "selling", "commission_pct": 2.5 }
            ]
        }),
    ]
}

fn sample_offices() -> Vec<Value> {
    vec![
        json!({
            "id": "off-10",
            "name": "Lone Star Realty - South Congress",
            "address": {
                "street": "1701 South Congress Avenue", "city": "Austin", "state": "TX",
                "postal_code": "78704", "country": "US"
            },
            "phone": "+1-512-555-0142",
            "broker_of_record": "emp-201"
        }),
        json!({
            "id": "off-20",
            "name": "Pacific Coast Homes - Downtown",
            "address": {
                "street": "600 West Broadway, Suite 300", "city": "San Diego", "state": "CA",
                "postal_code": "92101", "country": "US"
            },
            "phone": "+1-619-555-0188",
            "broker_of_record": "emp-202"
        }),
    ]
}

fn sample_employees() -> Vec<Value> {
    vec![
        json!({
            "id": "emp-201", "first_name": "Dana", "last_name": "Whitfield",
            "email": "dana.whitfield@example.com", "role": "broker",
            "license_number": "TX-0612345", "office_id": "off-10", "active": true
        }),
        json!({
            "id": "emp-202", "first_name": "Priya", "last_name": "Raman",
            "email": "priya.raman@example.com", "role": "broker",
            "license_number": "CA-02098765", "office_id": "off-20", "active": true
        }),
        json!({
            "id": "emp-203", "first_name": "Tom", "last_name": "Brennan",
            "email": "tom.brennan@example.com", "role": "agent",
            "license_number": "TX-0698765", "office_id": "off-10", "active": true
        }),
        json!({
            "id": "emp-204", "first_name": "Marcus", "last_name": "Oyelaran",
            "email": "marcus.oyelaran@example.com", "role": "agent",
            "license_number": "TX-0654321", "office_id": "off-10", "active": false
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_quote("http://127.0.0.1:80/x"),
            "http://127.0.0.1:80/x"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b$c"), "'a b$c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a+b%26c%3Dd").as_deref(), Some("a b&c=d"));
        assert_eq!(form_decode(b"%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode(b"%ZZ"), None);
        assert_eq!(form_decode(b"%4"), None);
        assert_eq!(form_decode(b"%FF"), None);
    }

    #[test]
    fn basic_parsing() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%3Aid:s%26cret");
        assert_eq!(
            parse_basic(&encoded),
            Some(("my:id".to_owned(), "s&cret".to_owned()))
        );
        assert_eq!(parse_basic("!!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(parse_basic(&no_colon), None);
    }

    #[test]
    fn scheme_matching() {
        assert!(has_scheme("Bearer abc", "bearer"));
        assert!(has_scheme("bAsIc abc", "basic"));
        assert!(!has_scheme("Bearer", "bearer"));
        assert!(!has_scheme("Bearerabc", "bearer"));
        assert!(!has_scheme("Beaé abc", "bearer"));
    }

    #[test]
    fn uuid_shape() {
        let s = Sandbox::start().unwrap();
        let id = uuid_like(&s.state);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
    }
}
