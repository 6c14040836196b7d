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
//!   Every list (transactions, offices, employees) takes OData's `$filter` (`field eq 'x'`, `ne`, `gt`, `ge`,
//!   `lt`, `le`, joined by `and`), `$orderby` (`field [asc|desc]`), `$top` and `$skip`.
//!   `/backoffice/v1/tiers/{id}` answers with an `ETag`, and takes a `PATCH` only with an
//!   `If-Match` of the current one (`412` for a stale one, `428` without).
//! * `/transact-workflow/v1/…` stands in for the Transact API: a bearer token *and*
//!   `lw-subscription-key` on every call, else `403` in the API's error shape;
//!   `GET /transact-workflow/v1/transactions`, and
//!   `GET /transact-workflow/v1/documents/{id}?size=N`: a PDF-typed body of N bytes (at most
//!   64 MiB).
//! * `GET /_sandbox/stats` (no token needed) reports the counters as JSON, for tests in
//!   other languages; `/_sandbox/echo` answers with what it was sent (method, decoded query,
//!   headers but the credentials, body length).
//!
//! ```
//! use lwolf_auth::Client;
//! use lwolf_sandbox::Sandbox;
//!
//! let sandbox = Sandbox::start()?;
//! let client = Client::new(sandbox.config_builder().build()?);
//! let response = client.get("/v1/transactions").send()?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(sandbox.tokens_issued(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It never logs the secret or a token, and answers hostile input (bad UTF-8, bad JSON,
//! bodies over 64 KiB) with `400`.

#![forbid(unsafe_code)]

mod api;
mod assertion;
pub mod cli;
mod dpop;
mod http;
mod message;
mod oauth;
mod server;
mod transact;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use lwolf_auth::ConfigBuilder;
use lwolf_auth::SecretString;
use server::State;

/// The client id a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
/// The client secret a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";
/// The `lw-subscription-key` the Transact stand-in accepts unless told otherwise.
pub const DEFAULT_SUBSCRIPTION_KEY: &str = "sandbox-subscription-key";
/// The token lifetime a sandbox grants unless told otherwise: 24 hours, as the vendor's.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(86_400);
/// The largest request body the sandbox reads; a larger one is answered with `400`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Issued tokens kept before expired ones are swept out.
const SWEEP_ABOVE: usize = 10_000;
/// Transactions created with `POST` that are kept (later ones are echoed, not stored).
const MAX_CREATED: usize = 1_000;
/// The issuer claim of sandbox tokens.
const ISSUER: &str = "lwolf-sandbox";

/// At most `max` characters, control characters dropped: what a client sent, made fit for
/// a log line or an error body.
pub(crate) fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// `N` bytes from the system's random source (tokens, ids, nonces).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source failed");
    bytes
}

/// 64 random bits.
pub(crate) fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes())
}

/// Configures and starts a [`Sandbox`]. Make one with [`Sandbox::builder`].
#[derive(Clone)]
pub struct SandboxBuilder {
    client_id: String,
    client_secret: SecretString,
    subscription_key: SecretString,
    token_ttl: Duration,
    rate_limit: Option<u32>,
    client_public_key_pem: Option<String>,
    dpop_nonce: bool,
    api_latency: Duration,
    token_latency: Duration,
    port: u16,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            subscription_key: DEFAULT_SUBSCRIPTION_KEY.into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            rate_limit: None,
            client_public_key_pem: None,
            dpop_nonce: false,
            api_latency: Duration::ZERO,
            token_latency: Duration::ZERO,
            port: 0,
        }
    }
}

impl fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("subscription_key", &self.subscription_key)
            .field("token_ttl", &self.token_ttl)
            .field("rate_limit", &self.rate_limit)
            .field("client_public_key", &self.client_public_key_pem.is_some())
            .field("dpop_nonce", &self.dpop_nonce)
            .field("api_latency", &self.api_latency)
            .field("token_latency", &self.token_latency)
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

    /// The `lw-subscription-key` the Transact stand-in accepts (default
    /// `sandbox-subscription-key`).
    pub fn subscription_key(mut self, v: impl Into<String>) -> Self {
        self.subscription_key = SecretString::new(v.into());
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

    /// Accepts `private_key_jwt` assertions signed by the private half of `pem`, a PEM
    /// `PUBLIC KEY` (what `lwolf jwk` prints). Unset by default: secrets only. A PEM that
    /// holds no RSA public key is an error at [`start`](Self::start).
    pub fn client_public_key(mut self, pem: impl Into<String>) -> Self {
        self.client_public_key_pem = Some(pem.into());
        self
    }

    /// Asks every DPoP proof (token endpoint and APIs) for a nonce: a proof without it is
    /// answered `use_dpop_nonce` with a `DPoP-Nonce` header, as Auth0 may. Off by default.
    pub fn dpop_nonce(mut self, on: bool) -> Self {
        self.dpop_nonce = on;
        self
    }

    /// How long every API answer (Back Office and Transact) takes (default 0), so that tests
    /// of a client's pace see its requests overlap; the sandbox counts how many are in
    /// flight at once ([`Sandbox::api_in_flight_peak`]).
    pub fn api_latency(mut self, v: Duration) -> Self {
        self.api_latency = v;
        self
    }

    /// How long every answer of the token endpoint takes (default 0), counted as a token
    /// request when it arrives: for tests of what a caller does while a fetch is in flight
    /// (an event loop that keeps turning, a context's deadline).
    pub fn token_latency(mut self, v: Duration) -> Self {
        self.token_latency = v;
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
        let client_public_key = match &self.client_public_key_pem {
            Some(pem) => Some(assertion::rsa_public_key_of_pem(pem).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the client public key is not a PEM RSA PUBLIC KEY",
                )
            })?),
            None => None,
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_public_key,
            issuer: format!("http://{addr}/"),
            dpop_nonce: self
                .dpop_nonce
                .then(|| format!("nonce-{:016x}", crate::random_u64())),
            seen_jtis: Mutex::new(Default::default()),
            subscription_key: self.subscription_key,
            token_ttl: self.token_ttl,
            rate_limit: self.rate_limit,
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_latency: self.api_latency,
            token_latency: self.token_latency,
            api_in_flight: AtomicU64::new(0),
            api_in_flight_peak: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
            recent_token_requests: Mutex::new(VecDeque::new()),
            created: Mutex::new(Vec::new()),
            next_transaction: AtomicU64::new(1006),
            tiers: Mutex::new(api::sample_tiers()),
        });
        let handler_state = Arc::clone(&state);
        let server = http::Server::start(
            listener,
            Box::new(move |request: &mut message::Request| server::handle(&handler_state, request)),
        )?;
        log::debug!("listening on {addr}");
        Ok(Sandbox {
            state,
            server,
            addr,
        })
    }
}

/// A running sandbox gateway and API on 127.0.0.1. Stops when dropped.
///
/// Dropping it closes the listener and every connection (a client that went silent
/// mid-body is let go at once) and waits up to 2 seconds for answers being made.
///
/// `Debug` shows the URL, client id and counters, never the secret.
pub struct Sandbox {
    state: Arc<State>,
    server: http::Server,
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

    /// The base of the Transact stand-in: [`url`](Self::url) + `/transact-workflow`, for
    /// [`Client::for_api`](lwolf_auth::Client::for_api).
    pub fn transact_base_url(&self) -> String {
        format!("{}/transact-workflow", self.url())
    }

    /// The `lw-subscription-key` the Transact stand-in accepts.
    pub fn subscription_key(&self) -> &str {
        self.state.subscription_key.expose()
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

    /// A [`ConfigBuilder`] with the client id, secret, token URL, API base URL and
    /// subscription key of this sandbox already set.
    pub fn config_builder(&self) -> ConfigBuilder {
        lwolf_auth::Config::builder()
            .client_id(self.client_id())
            .client_secret(self.client_secret())
            .token_url(self.token_url())
            .api_base_url(self.api_base_url())
            .subscription_key(self.subscription_key())
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
            self.subscription_key().to_owned(),
            self.transact_base_url(),
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

    /// Requests received under `/backoffice` and `/transact-workflow`, whatever their
    /// outcome.
    pub fn api_requests(&self) -> u64 {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far: how well clients keep theirs alive.
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }

    /// The most API requests (Back Office and Transact) that were in flight at once.
    pub fn api_in_flight_peak(&self) -> u64 {
        self.state.api_in_flight_peak.load(Ordering::SeqCst)
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
            .field("api_in_flight_peak", &self.api_in_flight_peak())
            .finish()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// The variables [`Sandbox::shell_exports`] sets, in its order.
pub(crate) const EXPORTED: [&str; 6] = [
    "LWOLF_TOKEN_URL",
    "LWOLF_API_BASE_URL",
    "LWOLF_CLIENT_ID",
    "LWOLF_CLIENT_SECRET",
    "LWOLF_SUBSCRIPTION_KEY",
    // Not a configuration key: where programs find the Transact stand-in.
    "LWOLF_TRANSACT_BASE_URL",
];

/// `s` as one POSIX shell word: as it is when that is safe, else in single quotes.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
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
}
