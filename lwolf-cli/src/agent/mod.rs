//! `lwolf agent`: a local agent that holds the credential and hands out tokens (a Unix
//! socket, a named pipe on Windows), injects them (a loopback proxy), or writes them to a file (a sink), for tools
//! that cannot load the library. Names are those of the contract ("The agent").
//!
//! One thread accepts (on Unix polling the listeners and a signal pipe, with a bound on each
//! wait: `unix`, the socket's file in `unix_socket`; on Windows, a thread on the named pipe
//! and one blocked on the proxy's listener: `windows`), a thread serves each connection up to [`MAX_CONNECTIONS`](admission::MAX_CONNECTIONS), a thread
//! keeps the sink file. `socket` and `proxy` hold what each listener serves (`relay` the
//! proxy's answers, `upload` the bodies it streams), `peer` who may use the socket, `key`
//! the proxy's local key, `sink` the token file, `metrics` `/metrics`, `http` the HTTP both
//! speak.

mod admission;
mod http;
mod key;
mod metrics;
#[cfg(unix)]
mod peer;
mod private_file;
mod proxy;
mod relay;
mod request_body;
mod sink;
mod socket;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
mod unix_socket;
mod upload;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lwolf_auth::{Client, Error};

pub(crate) use crate::args::AgentOptions as Options;
use crate::output::Failure;
use admission::{spawn, Admission, Listener};

/// Tenants (`?tenant=`) whose clients are kept; another is refused until a reload.
const MAX_TENANTS: usize = 64;
/// How long a stopping agent waits for the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A request head must arrive whole within this; an idle keep-alive connection is closed
/// after it.
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// The first request of a connection must arrive within this: a connection that sends
/// nothing holds one of [`MAX_CONNECTIONS`](admission::MAX_CONNECTIONS) for no longer.
const FIRST_HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// A request body must arrive whole within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait between the sink's attempts while token fetches fail.
const SINK_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A write to a caller that does not read is given up after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the sink's thread looks at the token (a cached read; a refresh when due).
const SINK_INTERVAL: Duration = Duration::from_secs(1);
/// The largest request body the proxy forwards, by default (`--max-body-bytes`).
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How much the agent says on stderr: `-v` each refusal and reload, `-vv` each request (its
/// method, the path without its query, the status and the request id; never a header).
#[derive(Clone, Copy)]
pub(crate) struct Log(u8);

impl Log {
    pub(crate) fn info(self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "lwolf: agent: {message}");
    }
    pub(crate) fn debug(self, message: impl FnOnce() -> String) {
        if self.0 >= 1 {
            self.info(&message());
        }
    }
    pub(crate) fn trace(self, message: impl FnOnce() -> String) {
        if self.0 >= 2 {
            self.info(&message());
        }
    }
}

/// What the clients are: the agent's, rebuilt on SIGHUP, and one per tenant asked for.
struct Clients {
    main: Client,
    tenants: HashMap<String, Client>,
}

/// What every connection's thread shares.
pub(crate) struct Agent {
    /// Read on every request, written on a reload or a new tenant: readers never wait for
    /// each other.
    clients: RwLock<Clients>,
    pub(crate) key: Option<key::Key>,
    pub(crate) metrics: metrics::Metrics,
    #[cfg(unix)]
    pub(crate) peers: Option<peer::Policy>,
    /// The SIDs the pipe serves (its DACL's), checked again on each client.
    #[cfg(windows)]
    pub(crate) pipe_sids: Vec<String>,
    pub(crate) log: Log,
    pub(crate) max_body_bytes: usize,
    stopping: AtomicBool,
    /// Requests being answered now (not idle connections).
    busy: AtomicUsize,
    /// Connections open, per listener ([`Listener`]).
    connections: [AtomicUsize; 2],
}

impl Agent {
    /// The agent's client (the Back Office API's handle).
    pub(crate) fn client(&self) -> Client {
        self.read().main.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Clients> {
        self.clients.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Clients> {
        self.clients.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The client of `tenant` (`None`: the agent's own), made on first use and kept.
    pub(crate) fn client_for(&self, tenant: Option<&str>) -> Result<Client, http::Refusal> {
        let Some(tenant) = tenant else {
            return Ok(self.client());
        };
        if tenant.is_empty()
            || tenant.len() > 128
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(http::Refusal::new(
                400,
                "tenant must be 1 to 128 letters, digits, '-', '_', '.' or ':'",
            ));
        }
        if let Some(client) = self.read().tenants.get(tenant) {
            return Ok(client.clone());
        }
        let mut clients = self.write();
        if let Some(client) = clients.tenants.get(tenant) {
            return Ok(client.clone());
        }
        if clients.tenants.len() >= MAX_TENANTS {
            return Err(http::Refusal::new(
                429,
                format!("the agent serves at most {MAX_TENANTS} tenants"),
            ));
        }
        let client = clients
            .main
            .for_tenant(tenant)
            .map_err(|e| http::Refusal::new(400, e.to_string()))?;
        clients.tenants.insert(tenant.to_owned(), client.clone());
        Ok(client)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The next request head of a connection, with the connection: the first within
    /// [`FIRST_HEAD_TIMEOUT`], each later one within [`HEAD_TIMEOUT`]. `None` once the peer
    /// left or went quiet, or sent a bad head (counted, answered, and the connection closed).
    pub(crate) fn next_head<S: http::Stream>(
        &self,
        mut conn: http::Conn<S>,
        first: bool,
    ) -> Option<(http::Conn<S>, http::Head)> {
        let wait = if first {
            FIRST_HEAD_TIMEOUT
        } else {
            HEAD_TIMEOUT
        };
        match conn.read_head(Instant::now() + wait) {
            Ok(head) => Some((conn, head)),
            Err(http::HeadError::Closed | http::HeadError::Gone) => None,
            Err(http::HeadError::Bad(refusal)) => {
                self.refuse(conn, metrics::Refused::Bad, &refusal);
                None
            }
        }
    }

    /// Counts a refusal, says it at `-v` (its status and our reason: nothing the caller
    /// sent), answers it and closes the connection.
    pub(crate) fn refuse<S: http::Stream>(
        &self,
        conn: http::Conn<S>,
        why: metrics::Refused,
        refusal: &http::Refusal,
    ) {
        self.metrics.refused(why);
        self.log
            .debug(|| format!("refused: {} {}", refusal.status, refusal.reason));
        conn.refuse(refusal);
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn connections(&self) -> usize {
        self.connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

pub(crate) struct Busy<'a>(&'a Agent);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An HTTP status for a library error that left no response: the request's fault (400),
/// the agent's settings (500), or the upstream's (502; 503 for a rate limit; 504 past the
/// deadline or when the last attempt timed out).
pub(crate) fn error_status(e: &Error) -> u16 {
    match e {
        Error::InvalidArgument(_) => 400,
        Error::Config(_) => 500,
        Error::Deadline(_) => 504,
        Error::Transport(failure) if failure.kind == lwolf_auth::TransportKind::Timeout => 504,
        Error::RateLimited(_) => 503,
        _ => 502,
    }
}

/// A library error as a JSON body: its message (which never holds a secret or a token) and
/// its status name.
pub(crate) fn error_json(e: &Error) -> Vec<u8> {
    let status = lwolf_auth_ffi::lwolf_status::from(e);
    serde_json::to_vec(&serde_json::json!({
        "error": e.to_string(),
        "status": status.name(),
    }))
    .unwrap_or_default()
}

/// Runs the agent until SIGTERM (or SIGINT): `make_client` makes the client, at start and
/// again on SIGHUP (which re-reads the secret files).
pub(crate) fn run(
    options: Options,
    make_client: &dyn Fn() -> Result<Client, Failure>,
    verbose: u8,
) -> Result<u8, Failure> {
    let log = Log(verbose);
    if options.socket.is_none() && options.proxy.is_none() && options.sink.is_none() {
        return Err(Failure::usage(
            "lwolf agent needs --socket PATH, --proxy 127.0.0.1:PORT or --sink FILE",
        ));
    }
    #[cfg(windows)]
    windows::check_options(&options)?;
    // Before any thread is started: taking the passed socket removes LISTEN_FDS and
    // LISTEN_PID from the environment.
    #[cfg(unix)]
    let passed = match &options.socket {
        Some(path) => unix_socket::Listener::inherited(path)?,
        None => None,
    };
    let client = make_client()?;
    #[cfg(unix)]
    let peers = match &options.socket {
        Some(_) => Some(peer::Policy::new(&options.allow)?),
        None => None,
    };
    let key = match options.proxy {
        Some(_) => {
            // Beside a Unix socket; a pipe has no folder to be beside.
            let socket_file = options.socket.as_ref().filter(|_| cfg!(unix));
            let path = match (&options.key_file, socket_file) {
                (Some(path), _) => path.clone(),
                (None, Some(socket)) => {
                    let mut name = socket.file_name().unwrap_or_default().to_os_string();
                    name.push(".key");
                    socket.with_file_name(name)
                }
                (None, None) => match client.cache_file().and_then(|f| f.parent()) {
                    Some(dir) => {
                        platform::create_private_dir(dir)?;
                        dir.join("agent.key")
                    }
                    None => {
                        return Err(Failure::usage(
                            "--proxy without --socket or a cache directory needs --key-file",
                        ))
                    }
                },
            };
            let key = key::Key::load_or_create(&path)?;
            log.info(&format!("the proxy's key is in {}", path.display()));
            Some(key)
        }
        None => None,
    };
    // Signals first: a SIGTERM (Ctrl+C on Windows) from here on stops the agent cleanly.
    let signals = platform::Signals::install()?;
    #[cfg(unix)]
    let unix = match &options.socket {
        Some(path) => Some(match passed {
            Some(passed) => {
                log.info(&format!("the socket {} is systemd's", path.display()));
                passed
            }
            None => unix_socket::Listener::bind(path, options.socket_group.as_deref())?,
        }),
        None => None,
    };
    #[cfg(windows)]
    let pipe = match &options.socket {
        Some(name) => Some(windows::bind_pipe(name, &options.allow)?),
        None => None,
    };
    let tcp = match options.proxy {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .map_err(|e| Failure::io(format!("cannot listen on {addr} for the proxy: {e}")))?,
        ),
        None => None,
    };
    let agent = Arc::new(Agent {
        clients: RwLock::new(Clients {
            main: client,
            tenants: HashMap::new(),
        }),
        key,
        metrics: metrics::Metrics::default(),
        #[cfg(unix)]
        peers,
        #[cfg(windows)]
        pipe_sids: pipe
            .as_ref()
            .map(|p| p.allowed_sids().to_vec())
            .unwrap_or_default(),
        log,
        max_body_bytes: options.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
        stopping: AtomicBool::new(false),
        busy: AtomicUsize::new(0),
        connections: [AtomicUsize::new(0), AtomicUsize::new(0)],
    });
    if let Some(path) = options.sink.clone() {
        let sink = sink::Sink {
            path,
            format: options.sink_format,
        };
        let agent = Arc::clone(&agent);
        std::thread::Builder::new()
            .name("lwolf-agent-sink".into())
            .spawn(move || keep_sink(&agent, &sink))
            .map_err(|e| Failure::io(format!("cannot start the sink's thread: {e}")))?;
    }
    let mut serving = Vec::new();
    #[cfg(unix)]
    if let Some(unix) = &unix {
        serving.push(format!("socket {}", unix.path.display()));
    }
    #[cfg(windows)]
    if let (Some(_), Some(name)) = (&pipe, &options.socket) {
        serving.push(format!("socket {}", name.display()));
    }
    if let Some(tcp) = &tcp {
        let addr = tcp
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        serving.push(format!("proxy http://{addr}"));
    }
    if let Some(sink) = &options.sink {
        serving.push(format!("sink {}", sink.display()));
    }
    log.info(&format!("serving: {}", serving.join(", ")));
    platform::notify_systemd("READY=1");

    #[cfg(unix)]
    platform::accept_until_stopped(&agent, &signals, unix.as_ref(), tcp.as_ref(), make_client);
    #[cfg(windows)]
    platform::accept_until_stopped(&agent, &signals, pipe, tcp.as_ref())?;

    // Stop accepting, then give the requests in flight their bound.
    agent.stopping.store(true, Ordering::SeqCst);
    platform::notify_systemd("STOPPING=1");
    #[cfg(unix)]
    drop(unix);
    drop(tcp);
    log.info("stopping: no new connections; finishing the requests in flight");
    let until = Instant::now() + SHUTDOWN_GRACE;
    while agent.busy.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = agent.busy.load(Ordering::SeqCst);
    if left > 0 {
        log.info(&format!(
            "stopped with {left} request(s) unfinished after {} s",
            SHUTDOWN_GRACE.as_secs()
        ));
    } else {
        log.info("stopped");
    }
    Ok(0)
}

/// SIGHUP: a new client from the settings (the secret files read again), swapped in; the
/// old one stays if the new one cannot be made.
#[cfg(unix)]
fn reload(agent: &Agent, make_client: &dyn Fn() -> Result<Client, Failure>) {
    match make_client() {
        Ok(client) => {
            let mut clients = agent.write();
            clients.main = client;
            clients.tenants.clear();
            drop(clients);
            agent.metrics.reloaded();
            agent
                .log
                .info("SIGHUP: settings and secret files read again");
        }
        Err(failure) => agent.log.info(&format!(
            "SIGHUP: the settings could not be read again; keeping the current ones: {}",
            failure.message
        )),
    }
}

/// The sink's thread: the token written at start and whenever it changes.
fn keep_sink(agent: &Agent, sink: &sink::Sink) {
    let mut written: Option<String> = None;
    let mut failing = false;
    // After a failed fetch, the next one waits twice as long, up to a minute: a revoked
    // secret must not turn into a token request every second for as long as the agent runs.
    let mut wait = SINK_INTERVAL;
    while !agent.stopping() {
        match agent.client().token() {
            Ok(token) => {
                failing = false;
                wait = SINK_INTERVAL;
                if written.as_deref() != Some(token.fingerprint()) {
                    match sink.write(&token) {
                        Ok(()) => {
                            written = Some(token.fingerprint().to_owned());
                            agent.metrics.sink_written();
                            agent.log.debug(|| {
                                format!(
                                    "sink {}: token {} written",
                                    sink.path.display(),
                                    token.fingerprint()
                                )
                            });
                        }
                        Err(e) => agent.log.info(&format!(
                            "cannot write the sink {}: {e}",
                            sink.path.display()
                        )),
                    }
                }
            }
            Err(e) => {
                if !failing {
                    agent.log.info(&format!("no token for the sink: {e}"));
                } else {
                    wait = (wait * 2).min(SINK_BACKOFF_MAX);
                }
                failing = true;
            }
        }
        let until = Instant::now() + wait;
        while !agent.stopping() && Instant::now() < until {
            std::thread::sleep(SINK_INTERVAL.min(until - Instant::now()));
        }
    }
}
