//! The ureq agents: TLS roots, timeouts, proxies, body caps. One exchange per call: no
//! redirect is ever followed here, so the caller decides where a secret may go.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ureq::http::{HeaderName, HeaderValue, Method, Request, Uri};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::transport::{ConnectionDetails, Connector, DefaultConnector, Transport};
use ureq::{Agent, Proxy};

use crate::config::Config;
use crate::error::{Error, TransportFailure, TransportKind};
use crate::fork::PerProcess;
use crate::log;
use crate::pools::{Pools, POOL_COUNT};
use crate::proxy::{proxy_from_env, NoProxy};
use crate::resolve::CachingResolver;
use crate::retry::{self, Attempt};
use crate::url::is_loopback_host;

/// A response, headers lower-cased by ureq: its body read whole, or (`streamed`) written
/// out as it arrived and not kept.
#[derive(Clone, Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub streamed: bool,
}

/// One HTTP exchange to make.
pub(crate) struct Exchange<'a> {
    pub method: &'a Method,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<Payload<'a>>,
    /// This attempt's bound, instead of the client's `timeout_ms`.
    pub timeout: Option<Duration>,
}

/// What a request sends.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    Bytes(&'a [u8]),
    /// Read as it is sent, once (its `Content-Length`, if known, is among the headers).
    Stream(&'a crate::request::StreamBody),
}

/// What to do with a response body.
pub(crate) enum Read<'a> {
    /// Read it whole, at most this many bytes.
    Whole(usize),
    /// Write it to `out` as it arrives, unless `keep(status)` says the library consumes this
    /// response itself (a 401 to renew on, a 5xx to retry): that one is read whole, at most
    /// `limit` bytes.
    Stream {
        keep: &'a dyn Fn(u16) -> bool,
        limit: usize,
        out: &'a mut (dyn StreamOut + 'a),
    },
}

/// Where a streamed body goes: told the response's status and headers before its first byte.
pub(crate) trait StreamOut: std::io::Write {
    /// The status and headers of the response whose body follows; `true` when they were
    /// passed on (the exchange is final from here: no retry, even before a body byte).
    fn head(&mut self, status: u16, headers: &[(String, String)]) -> std::io::Result<bool>;
}

impl RawResponse {
    /// The first value of a header, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The wait a 408/429/5xx response asked for, if any: `Retry-After`, or on a 429
    /// `X-RateLimit-Reset`.
    pub fn server_wait(&self) -> Option<Duration> {
        let now = SystemTime::now();
        if let Some(wait) = self
            .header("retry-after")
            .and_then(|v| retry::parse_retry_after(v, now))
        {
            return Some(wait);
        }
        if self.status != 429 {
            return None;
        }
        self.header("x-ratelimit-reset")
            .and_then(|v| retry::parse_rate_limit_reset(v, now))
    }
}

/// Why an exchange gave no response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The body was larger than the limit.
    TooLarge,
    /// DNS, connect, TLS, I/O, timeout.
    Transport(TransportFailure),
    /// The writer of a streamed body refused more: the transfer was stopped.
    Aborted(std::io::ErrorKind),
}

impl Failure {
    /// What an attempt that got no response comes to: another attempt where one could
    /// succeed; the error, with the attempts counted, either way.
    /// `too_large` says what was too large.
    pub(crate) fn into_attempt<T>(
        self,
        attempts: u32,
        too_large: impl FnOnce() -> String,
    ) -> Attempt<T, Error> {
        match self {
            Failure::TooLarge => Attempt::Done(Err(Error::invalid_response(too_large()))),
            Failure::Aborted(kind) => Attempt::Done(Err(Error::aborted(kind))),
            Failure::Transport(mut t) => {
                t.attempts = attempts;
                let (retryable, reason) = (t.retryable, t.message.clone());
                let last = Err(Error::Transport(Box::new(t)));
                if retryable {
                    Attempt::Again {
                        reason,
                        asked: None,
                        last,
                    }
                } else {
                    Attempt::Done(last)
                }
            }
        }
    }
}

/// The HTTP agents of one client and its tenant clones (they share the connection pools).
pub(crate) struct Http {
    /// This process's agents: a child of a fork makes its own (see [`Agents::in_a_child`]).
    agents: PerProcess<Agents>,
    /// Hosts that are neither loopback nor on `NO_PROXY` go through `Agents::proxied`.
    no_proxy: NoProxy,
}

/// The agents of one process.
#[derive(Clone)]
struct Agents {
    direct: Arc<Pools>,
    /// When the environment names a proxy.
    proxied: Option<Arc<Pools>>,
    make: Arc<AgentMaker>,
}

impl Agents {
    /// A child of a fork makes agents of its own. The parent's stay behind the parent's
    /// lock, which the child never releases, so they are never used or dropped there: their
    /// pooled connections are the parent's, and closing one in the child could end (over
    /// TLS, with a close_notify) a session the parent still uses. The child's copies of those
    /// sockets stay open until it exits; the server times them out.
    fn in_a_child(&self) -> Agents {
        self.make.agents()
    }
}

/// Idle connections each of the [`POOL_COUNT`] pools keeps for one host (ureq's own
/// default is 3): one per thread settled there, and one more. A client so keeps at most 32
/// for one host and 64 in all (twice that with a proxy). A pool holds them until its next
/// request or ureq's idle timeout, whichever comes later.
const IDLE_CONNECTIONS_PER_HOST: usize = 2;
/// Idle connections each pool keeps in all (ureq's own default is 10).
const IDLE_CONNECTIONS: usize = 4;

/// One connector for all the agents of a process: one TLS configuration (its roots read
/// once) and one TLS session cache, whichever pool a connection is made for. ureq's TLS
/// connector keeps the configuration of the first agent that connects through it, so the
/// agents that share one must have the same TLS settings (they do: `AgentMaker::tls`).
#[derive(Clone, Debug)]
struct SharedConnector(Arc<DefaultConnector>);

impl Connector for SharedConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        self.0.connect(details, chained)
    }
}

/// What the agents are made of.
struct AgentMaker {
    tls: TlsConfig,
    timeout: Duration,
    user_agent: String,
    proxy: Option<Proxy>,
}

impl AgentMaker {
    fn agents(self: &Arc<Self>) -> Agents {
        // A resolver and a connector per set of agents: their caches (and locks) belong to
        // one process too.
        let resolver = CachingResolver::default();
        let connector = SharedConnector(Arc::new(DefaultConnector::default()));
        let pools = |proxy: Option<Proxy>| {
            let (make, resolver, connector) =
                (Arc::clone(self), resolver.clone(), connector.clone());
            Arc::new(Pools::new(POOL_COUNT, move || {
                make.agent(proxy.clone(), connector.clone(), resolver.clone())
            }))
        };
        Agents {
            direct: pools(None),
            proxied: self.proxy.clone().map(|p| pools(Some(p))),
            make: Arc::clone(self),
        }
    }

    fn agent(
        &self,
        proxy: Option<Proxy>,
        connector: SharedConnector,
        resolver: CachingResolver,
    ) -> Agent {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.timeout))
            .user_agent(self.user_agent.as_str())
            .allow_non_standard_methods(true)
            .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_HOST)
            .max_idle_connections(IDLE_CONNECTIONS)
            .tls_config(self.tls.clone())
            .proxy(proxy)
            .build();
        Agent::with_parts(config, connector, resolver)
    }
}

impl Http {
    pub(crate) fn new(config: &Config) -> Http {
        let roots = if config.extra_roots.is_empty() {
            RootCerts::WebPki
        } else {
            let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned());
            let extra = config
                .extra_roots
                .iter()
                .map(|der| Certificate::from_der(der).to_owned());
            RootCerts::Specific(Arc::new(bundled.chain(extra).collect()))
        };
        let (proxy, no_proxy) = match proxy_from_env(|name| std::env::var(name).ok()) {
            Some((proxy, no_proxy)) => (Some(proxy), no_proxy),
            None => (None, NoProxy::default()),
        };
        let make = Arc::new(AgentMaker {
            tls: TlsConfig::builder().root_certs(roots).build(),
            timeout: config.timeout,
            user_agent: config.user_agent.clone(),
            proxy,
        });
        Http {
            agents: PerProcess::new(make.agents(), Agents::in_a_child),
            no_proxy,
        }
    }

    /// Makes one exchange and reads the response body as `read` says.
    pub(crate) fn send(&self, x: &Exchange<'_>, read: Read<'_>) -> Result<RawResponse, Failure> {
        let started = std::time::Instant::now();
        let outcome = self.exchange(x, read);
        if log::enabled(log::Level::Trace) {
            // The URL without its query, which is the caller's data.
            let url = x.url.split(['?', '#']).next().unwrap_or_default();
            let took = started.elapsed().as_millis();
            match &outcome {
                Ok(r) => log::trace!("{} {url}: {} in {took} ms", x.method, r.status),
                Err(Failure::Transport(t)) => {
                    log::trace!("{} {url}: {} after {took} ms", x.method, t.message)
                }
                Err(Failure::TooLarge) => {
                    log::trace!("{} {url}: body over the limit after {took} ms", x.method)
                }
                Err(Failure::Aborted(kind)) => {
                    log::trace!(
                        "{} {url}: the writer stopped ({kind}) after {took} ms",
                        x.method
                    )
                }
            }
        }
        outcome
    }

    fn exchange(&self, x: &Exchange<'_>, read: Read<'_>) -> Result<RawResponse, Failure> {
        let invalid = |what| Failure::Transport(transport(TransportKind::Io, what, false, None));
        let uri: Uri = x.url.parse().map_err(|_| invalid("invalid URL"))?;
        // Which host a transport failure was with: a process talks to two or more.
        let authority = uri.authority().map_or("", |a| a.as_str()).to_owned();
        let at_host = |mut t: TransportFailure| {
            t.message = format!("{} ({authority})", t.message);
            Failure::Transport(t)
        };
        // Loopback never goes through a proxy: local development and tests stay local.
        let agents = self.agents.get().lock.lock().clone();
        let pools = match (&agents.proxied, uri.host()) {
            (Some(proxied), Some(host))
                if !is_loopback_host(host) && !self.no_proxy.matches(host) =>
            {
                proxied
            }
            _ => &agents.direct,
        };
        // Counted in flight until the response has been read and its connection is back.
        let taken = pools.take();
        let agent = taken.agent;
        let mut builder = Request::builder().method(x.method.clone()).uri(uri);
        for (name, value) in x.headers {
            let value =
                HeaderValue::from_str(value).map_err(|_| invalid("invalid header value"))?;
            builder = builder.header(*name, value);
        }
        let result = match x.body {
            Some(Payload::Bytes(bytes)) => builder.body(bytes).map(|r| run(agent, x.timeout, r)),
            Some(Payload::Stream(stream)) => {
                let mut reader = stream.take().ok_or_else(|| {
                    invalid("a request body read from a reader can be sent only once")
                })?;
                builder
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map(|r| run(agent, x.timeout, r))
            }
            None => builder.body(()).map(|r| run(agent, x.timeout, r)),
        };
        let mut response = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(at_host(from_ureq(e))),
            Err(_) => return Err(invalid("invalid request")),
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let read_whole = |response: &mut ureq::http::Response<ureq::Body>, limit: usize| {
            response
                .body_mut()
                .with_config()
                .limit(limit as u64)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => Failure::TooLarge,
                    e => at_host(from_ureq(e)),
                })
        };
        let (body, streamed) = match read {
            Read::Whole(limit) => (read_whole(&mut response, limit)?, false),
            Read::Stream { keep, limit, .. } if keep(status) => {
                (read_whole(&mut response, limit)?, false)
            }
            Read::Stream { out, .. } => {
                let passed_on = out
                    .head(status, &headers)
                    .map_err(|e| Failure::Aborted(e.kind()))?;
                let reader = &mut response.body_mut().as_reader();
                stream(reader, out, passed_on).map_err(|f| match f {
                    Failure::Transport(t) => at_host(t),
                    other => other,
                })?;
                (Vec::new(), true)
            }
        };
        Ok(RawResponse {
            status,
            headers,
            body,
            streamed,
        })
    }
}

/// The bound for an attempt whose own limit is `limit` (`own`: set on the request, not the
/// agent's `timeout_ms`) and whose call must end by `deadline`: `None` when the agent's
/// own timeout already is that bound, which spares ureq a per-request configuration on the
/// common path. Never zero, which ureq would take as no bound.
pub(crate) fn attempt_timeout(
    limit: Duration,
    own: bool,
    deadline: std::time::Instant,
) -> Option<Duration> {
    let left = deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_millis(1));
    (own || left < limit).then(|| left.min(limit))
}

/// Runs `request` on `agent`, bounded by `timeout` instead of the agent's own when given.
fn run<B: ureq::AsSendBody>(
    agent: &Agent,
    timeout: Option<Duration>,
    request: Request<B>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    match timeout {
        Some(t) => agent.run(
            agent
                .configure_request(request)
                .timeout_global(Some(t))
                .build(),
        ),
        None => agent.run(request),
    }
}

/// The size of the pieces a streamed body is copied in.
const COPY_PIECE: usize = 64 * 1024;

thread_local! {
    /// Each thread's copy buffer, kept between responses: zeroing a new 64 KiB for every
    /// answer was a measurable part of a small request's cost (the agent's proxy).
    static COPY_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Copies a body to `out` in pieces. Once anything was written (`committed`: the head
/// already was) the exchange is final: a failure after that is not worth a retry (the
/// caller has half a response).
fn stream(
    body: &mut dyn std::io::Read,
    out: &mut dyn std::io::Write,
    committed: bool,
) -> Result<(), Failure> {
    // Taken, not borrowed: a writer that streams another response on this thread (a C
    // callback calling the library) gets a buffer of its own.
    let mut buf = COPY_BUFFER.with(std::cell::Cell::take);
    if buf.len() < COPY_PIECE {
        buf = vec![0u8; COPY_PIECE];
    }
    let copied = copy(body, out, committed, &mut buf);
    COPY_BUFFER.with(|kept| kept.set(buf));
    copied
}

fn copy(
    body: &mut dyn std::io::Read,
    out: &mut dyn std::io::Write,
    committed: bool,
    buf: &mut [u8],
) -> Result<(), Failure> {
    let mut written = committed;
    loop {
        let n = match body.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                    TransportKind::Timeout
                } else {
                    TransportKind::Io
                };
                let mut t = transport(kind, &format!("i/o error: {}", e.kind()), !written, None);
                t.source = Some(Arc::new(e));
                return Err(Failure::Transport(t));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| Failure::Aborted(e.kind()))?;
        written = true;
    }
    out.flush().map_err(|e| Failure::Aborted(e.kind()))
}

fn transport(
    kind: TransportKind,
    message: &str,
    retryable: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
) -> TransportFailure {
    TransportFailure {
        kind,
        message: message.to_owned(),
        attempts: 1,
        retryable,
        source,
    }
}

fn from_ureq(e: ureq::Error) -> TransportFailure {
    use TransportKind::*;
    let (kind, message, retryable) = match &e {
        ureq::Error::Timeout(_) => (Timeout, "timeout".to_owned(), true),
        ureq::Error::ConnectionFailed => (Connect, "connection failed".to_owned(), true),
        ureq::Error::HostNotFound => (Dns, "host not found".to_owned(), true),
        // ureq hands rustls failures during the handshake (an untrusted certificate, a
        // wrong name) back as `Io(InvalidData)` wrapping the rustls error, not as
        // `Error::Rustls`: they are TLS errors, and trying again cannot fix them.
        ureq::Error::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData && io.get_ref().is_some() =>
        {
            let inner = io.get_ref().map(|e| e.to_string()).unwrap_or_default();
            (Tls, format!("tls: {inner}"), false)
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (Timeout, "timeout".to_owned(), true)
        }
        ureq::Error::Io(io) => (Io, format!("i/o error: {}", io.kind()), true),
        ureq::Error::Protocol(p) => (Io, format!("malformed http response: {p}"), true),
        ureq::Error::BodyStalled => (Timeout, "response body stalled".to_owned(), true),
        ureq::Error::Tls(m) => (Tls, format!("tls: {m}"), false),
        ureq::Error::Rustls(r) => (Tls, format!("tls: {r}"), false),
        ureq::Error::ConnectProxyFailed(m) => (Proxy, format!("proxy: {m}"), true),
        ureq::Error::LargeResponseHeader(..) => {
            (Io, "response headers too large".to_owned(), false)
        }
        other => (Io, other.to_string(), false),
    };
    transport(kind, &message, retryable, Some(Arc::new(e)))
}

/// Parses an HTTP method: a token (RFC 9110 `tchar`s), sent as given. Methods are case
/// sensitive: `get` is not `GET` (and is neither retried nor redirected as one).
pub(crate) fn parse_method(method: &str) -> Result<Method, Error> {
    Method::from_bytes(method.as_bytes())
        .map_err(|_| Error::invalid_argument("method is not an HTTP method token"))
}

/// Whether `s` is a header name (an HTTP token, RFC 9110 `tchar`s).
pub(crate) fn is_header_name(s: &str) -> bool {
    HeaderName::from_bytes(s.as_bytes()).is_ok()
}

/// Whether `s` may be a header value as given: no control character but tab (so no CR, LF
/// or NUL that could end the header).
pub(crate) fn is_field_value(s: &str) -> bool {
    HeaderValue::from_bytes(s.as_bytes()).is_ok()
}

/// Methods that may be sent again after a 429/5xx or a lost connection.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}
