//! A scriptable loopback HTTP/1.1 server for the integration tests, built on raw
//! `std::net::TcpListener` so that it can misbehave on purpose (resets, hangs, truncated
//! and oversized bodies), plus shared helpers.
//!
//! Every accepted connection is served on its own thread, request after request
//! (keep-alive). Each request is recorded in a shared log and answered by the next action of
//! the script, or by the default action when the script is empty. Dropping the server sets a
//! shutdown flag that every handler watches (reads time out every 50 ms, delays and hangs
//! sleep in small steps), wakes the accept loop with a self-connection, and joins every thread.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lwolf_auth::{Config, ConfigBuilder, Error};

/// The client secret every test uses; it must never show up in any error or `Debug` output.
pub const SECRET: &str = "s3cr3t-DO-NOT-LEAK";
/// Every token the test servers issue contains this, so leaks are easy to spot.
pub const TOKEN_MARK: &str = "TKN-";
pub const CLIENT_ID: &str = "test-client";
pub const TOKEN_PATH: &str = "/oauth/token";

/// A directory for one test's files, removed on drop, even when the test fails.
pub use crate::temp_dir::TempDir;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Arrival order on this server, from 0.
    pub index: usize,
    /// Which accepted connection carried it, from 0.
    pub conn: usize,
    pub method: String,
    /// The request target as sent (`/path?query`, or `host:port` for CONNECT).
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request had been read whole.
    pub at: Instant,
    pub wall: SystemTime,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.text()))
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        let text = self.text();
        if text.is_empty() {
            return Vec::new();
        }
        text.split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k), form_decode(v))
            })
            .collect()
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii hex");
                out.push(u8::from_str_radix(hex, 16).expect("valid percent escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 after decoding")
}

// ---------------------------------------------------------------------------------------------
// Actions

/// What the server does with one request.
#[derive(Clone)]
pub enum Action {
    /// Answer, possibly after a delay.
    Respond(Reply),
    /// Close the connection without answering.
    Reset,
    /// Accept and never answer, until the server is dropped.
    Hang,
    /// Send the status line and headers announcing `declared` body bytes, send `sent` of
    /// them, then close.
    Truncated {
        status: u16,
        declared: usize,
        sent: usize,
    },
    /// Send the status line and headers announcing `declared` body bytes, send `sent` of
    /// them, then neither send more nor close, until the server is dropped.
    Stall {
        status: u16,
        declared: usize,
        sent: usize,
    },
    /// Answer `status` with a body of `len` bytes (streamed, announced in Content-Length).
    Oversized { status: u16, len: usize },
    /// Write these bytes as they are (garbage instead of HTTP, say), then close.
    Raw(Vec<u8>),
    /// Send the status line and headers announcing `declared` body bytes, then reset the
    /// connection (RST, not FIN: `SO_LINGER` 0).
    ResetAfterHeaders { status: u16, declared: usize },
    /// Send the status line and headers announcing `declared` body bytes, then one body
    /// byte every `every`, until all are sent, the peer goes away or the server is dropped.
    Drip {
        status: u16,
        declared: usize,
        every: Duration,
    },
    /// Decide per request.
    Dynamic(Arc<dyn Fn(&Request) -> Action + Send + Sync>),
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Action {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Action {
        Action::Respond(Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        })
    }

    /// `status` with `body` as `application/json`.
    pub fn json(status: u16, body: impl Into<String>) -> Action {
        Action::body(status, body.into().into_bytes()).header("Content-Type", "application/json")
    }

    /// `status` with raw bytes.
    pub fn body(status: u16, body: impl Into<Vec<u8>>) -> Action {
        Action::Respond(Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        })
    }

    /// A 200 token response.
    pub fn token(token: &str, expires_in: u64) -> Action {
        Action::json(200, token_body(token, expires_in))
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Action {
        Action::status(status).header("Location", location)
    }

    /// Adds a header to a `Respond` action.
    pub fn header(mut self, name: &str, value: &str) -> Action {
        match &mut self {
            Action::Respond(r) => r.headers.push((name.to_owned(), value.to_owned())),
            _ => panic!("header() applies to Respond actions only"),
        }
        self
    }

    /// Delays a `Respond` action.
    pub fn after(mut self, delay: Duration) -> Action {
        match &mut self {
            Action::Respond(r) => r.delay = delay,
            _ => panic!("after() applies to Respond actions only"),
        }
        self
    }

    pub fn dynamic(f: impl Fn(&Request) -> Action + Send + Sync + 'static) -> Action {
        Action::Dynamic(Arc::new(f))
    }
}

/// The body of a token response.
pub fn token_body(token: &str, expires_in: u64) -> String {
    serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    })
    .to_string()
}

/// Answers every request with a new token `TKN-<prefix>-<n>` (n from 1) valid `expires_in` s.
pub fn issue_tokens(prefix: &str, expires_in: u64) -> Action {
    let counter = Arc::new(AtomicUsize::new(0));
    let prefix = prefix.to_owned();
    Action::dynamic(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Action::token(&format!("{TOKEN_MARK}{prefix}-{n}"), expires_in)
    })
}

/// Answers `POST /oauth/token` with `tokens`, and every other request with `other`.
pub fn route(tokens: Action, other: Action) -> Action {
    Action::dynamic(move |req| {
        if req.method == "POST" && req.path == TOKEN_PATH {
            tokens.clone()
        } else {
            other.clone()
        }
    })
}

/// The token [`issue_tokens`] hands out `n`-th (from 1).
pub fn issued(prefix: &str, n: usize) -> String {
    format!("{TOKEN_MARK}{prefix}-{n}")
}

// ---------------------------------------------------------------------------------------------
// The server

struct Entry {
    request: Request,
    /// When the answer had been written whole (never for resets, hangs, truncations).
    done: Option<Instant>,
}

struct Shared {
    script: Mutex<VecDeque<Action>>,
    default: Mutex<Action>,
    log: Mutex<Vec<Entry>>,
    shutdown: AtomicBool,
    connections: AtomicUsize,
    handlers: Mutex<Vec<JoinHandle<()>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// A plain-HTTP server on 127.0.0.1 answering with `default` when the script is empty.
    pub fn new(default: Action) -> Server {
        Server::start(default, None)
    }

    /// A server issuing fresh tokens (`TKN-t-1`, `TKN-t-2`, …, valid one hour) by default.
    pub fn tokens() -> Server {
        Server::new(issue_tokens("t", 3600))
    }

    /// An HTTPS server with the given rustls configuration.
    pub fn new_tls(default: Action, config: Arc<rustls::ServerConfig>) -> Server {
        Server::start(default, Some(config))
    }

    fn start(default: Action, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            log: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            handlers: Mutex::new(Vec::new()),
            tls,
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, shared))
        };
        Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>` (or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// `url()` + `/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url())
    }

    /// Queues actions, answered in order before the default takes over again.
    pub fn push(&self, action: Action) -> &Self {
        self.shared.script.lock().unwrap().push_back(action);
        self
    }

    pub fn push_n(&self, action: Action, n: usize) -> &Self {
        let mut script = self.shared.script.lock().unwrap();
        for _ in 0..n {
            script.push_back(action.clone());
        }
        self
    }

    pub fn set_default(&self, action: Action) {
        *self.shared.default.lock().unwrap() = action;
    }

    /// Every request seen so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// Requests whose path (without the query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    /// How many `POST /oauth/token` requests arrived.
    pub fn token_requests(&self) -> usize {
        self.requests_to(TOKEN_PATH)
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }

    /// The `index`-th request (from 0); panics when there is none.
    pub fn request(&self, index: usize) -> Request {
        let log = self.shared.log.lock().unwrap();
        match log.get(index) {
            Some(e) => e.request.clone(),
            None => panic!("no request #{index}: only {} arrived", log.len()),
        }
    }

    /// Whether the answer to the `index`-th request has been written whole.
    pub fn answered(&self, index: usize) -> bool {
        self.shared
            .log
            .lock()
            .unwrap()
            .get(index)
            .is_some_and(|e| e.done.is_some())
    }

    /// How many TCP connections were accepted (TLS handshakes included, failed or not).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived; panics after `limit`.
    pub fn wait_for_requests(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.request_count() < n {
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {n} requests, saw {}",
                self.request_count()
            );
            thread::sleep(ms(2));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so that the accept loop sees the flag.
        let woke = TcpStream::connect_timeout(&self.addr, secs(2)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woke {
                let _ = acceptor.join();
            }
        }
        let handlers: Vec<_> = std::mem::take(&mut *self.shared.handlers.lock().unwrap());
        for h in handlers {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for (conn_id, stream) in listener.incoming().enumerate() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_read_timeout(Some(ms(50)));
        let _ = stream.set_write_timeout(Some(secs(2)));
        let _ = stream.set_nodelay(true);
        let worker = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || serve_connection(stream, conn_id, &shared))
        };
        shared.handlers.lock().unwrap().push(worker);
    }
}

fn serve_connection(tcp: TcpStream, conn_id: usize, shared: &Shared) {
    match &shared.tls {
        None => {
            let mut conn = Conn::new(tcp.try_clone().expect("clone tcp stream"), tcp);
            serve(&mut conn, conn_id, shared);
        }
        Some(config) => {
            let Ok(session) = rustls::ServerConnection::new(Arc::clone(config)) else {
                return;
            };
            let raw = tcp.try_clone().expect("clone tcp stream");
            let mut conn = Conn::new(raw, rustls::StreamOwned::new(session, tcp));
            serve(&mut conn, conn_id, shared);
        }
    }
}

/// A connection: the (possibly TLS) stream, plus the raw socket for shutting it down.
struct Conn<S> {
    raw: TcpStream,
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    fn new(raw: TcpStream, stream: S) -> Self {
        Conn {
            raw,
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer. `false` on EOF, error or shutdown.
    fn fill(&mut self, shared: &Shared) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if shared.shutdown.load(Ordering::SeqCst) {
                return false;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return false,
            }
        }
    }

    /// Reads one request; `None` when the peer closed, or on shutdown or garbage.
    fn read_request(&mut self, shared: &Shared) -> Option<ParsedRequest> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > 1024 * 1024 || !self.fill(shared) {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let method = parts.next()?.to_owned();
        let path = parts.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked(shared)?
        } else {
            let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
            while self.buf.len() < len {
                if !self.fill(shared) {
                    return None;
                }
            }
            self.buf.drain(..len).collect()
        };
        Some(ParsedRequest {
            method,
            path,
            headers,
            body,
        })
    }

    fn read_line(&mut self, shared: &Shared) -> Option<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill(shared) {
                return None;
            }
        }
    }

    fn read_chunked(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(shared)?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line(shared)?.is_empty() {}
                return Some(body);
            }
            while self.buf.len() < size + 2 {
                if !self.fill(shared) {
                    return None;
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Writes all of `data`, giving up on shutdown or error.
    fn write_all(&mut self, data: &[u8], shared: &Shared) -> bool {
        for chunk in data.chunks(64 * 1024) {
            if shared.shutdown.load(Ordering::SeqCst) {
                return false;
            }
            if self.stream.write_all(chunk).is_err() {
                return false;
            }
        }
        self.stream.flush().is_ok()
    }

    fn close(&mut self) {
        let _ = self.stream.flush();
        let _ = self.raw.shutdown(Shutdown::Both);
    }
}

struct ParsedRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn serve<S: Read + Write>(conn: &mut Conn<S>, conn_id: usize, shared: &Shared) {
    while let Some(parsed) = conn.read_request(shared) {
        let (request, index) = {
            let mut log = shared.log.lock().unwrap();
            let index = log.len();
            let request = Request {
                index,
                conn: conn_id,
                method: parsed.method,
                path: parsed.path,
                headers: parsed.headers,
                body: parsed.body,
                at: Instant::now(),
                wall: SystemTime::now(),
            };
            log.push(Entry {
                request: request.clone(),
                done: None,
            });
            (request, index)
        };
        let mut action = {
            let next = shared.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| shared.default.lock().unwrap().clone())
        };
        while let Action::Dynamic(f) = action {
            action = f(&request);
        }
        let keep_going = match action {
            Action::Respond(reply) => {
                if !sleep_watching(reply.delay, shared) {
                    return;
                }
                let head_only = request.method == "HEAD";
                let ok = write_reply(conn, &reply, head_only, shared);
                if ok {
                    shared.log.lock().unwrap()[index].done = Some(Instant::now());
                }
                ok && !request
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            }
            Action::Reset => {
                conn.close();
                false
            }
            Action::Hang => {
                while !shared.shutdown.load(Ordering::SeqCst) {
                    thread::sleep(ms(10));
                }
                false
            }
            Action::Truncated {
                status,
                declared,
                sent,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
                    reason(status)
                );
                let _ = conn.write_all(head.as_bytes(), shared);
                let _ = conn.write_all(&vec![b'{'; sent.min(declared)], shared);
                thread::sleep(ms(20));
                conn.close();
                false
            }
            Action::Stall {
                status,
                declared,
                sent,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
                    reason(status)
                );
                let _ = conn.write_all(head.as_bytes(), shared);
                let _ = conn.write_all(&vec![b' '; sent.min(declared)], shared);
                while !shared.shutdown.load(Ordering::SeqCst) {
                    thread::sleep(ms(10));
                }
                false
            }
            Action::Oversized { status, len } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n",
                    reason(status)
                );
                let mut ok = conn.write_all(head.as_bytes(), shared);
                let chunk = vec![b' '; 64 * 1024];
                let mut left = len;
                while ok && left > 0 {
                    let n = left.min(chunk.len());
                    ok = conn.write_all(&chunk[..n], shared);
                    left -= n;
                }
                if ok {
                    shared.log.lock().unwrap()[index].done = Some(Instant::now());
                }
                conn.close();
                false
            }
            Action::Raw(bytes) => {
                let _ = conn.write_all(&bytes, shared);
                thread::sleep(ms(20));
                conn.close();
                false
            }
            Action::ResetAfterHeaders { status, declared } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
                    reason(status)
                );
                let _ = conn.write_all(head.as_bytes(), shared);
                thread::sleep(ms(20));
                // Without a shutdown (which would send a FIN first): the socket is closed
                // with linger 0 when `conn` is dropped by our caller, which sends a RST.
                set_linger_zero(&conn.raw);
                return;
            }
            Action::Drip {
                status,
                declared,
                every,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n",
                    reason(status)
                );
                let mut ok = conn.write_all(head.as_bytes(), shared);
                let mut sent = 0;
                while ok && sent < declared {
                    ok = sleep_watching(every, shared) && conn.write_all(b" ", shared);
                    sent += 1;
                }
                if ok {
                    shared.log.lock().unwrap()[index].done = Some(Instant::now());
                }
                false
            }
            Action::Dynamic(_) => unreachable!(),
        };
        if !keep_going {
            conn.close();
            return;
        }
    }
    conn.close();
}

fn write_reply<S: Read + Write>(
    conn: &mut Conn<S>,
    reply: &Reply,
    head_only: bool,
    shared: &Shared,
) -> bool {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    conn.write_all(&bytes, shared)
}

/// Sleeps `d` in small steps; `false` if the server shut down meanwhile.
fn sleep_watching(d: Duration, shared: &Shared) -> bool {
    let end = Instant::now() + d;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(ms(10)));
    }
}

/// Makes closing `tcp` abortive: `SO_LINGER` with a zero timeout, so the kernel answers the
/// close with a RST. (std has no stable `set_linger`, and the crate has no libc dependency.)
#[cfg(target_os = "linux")]
fn set_linger_zero(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, a pointer to a live `struct linger` and its size.
    let rc = unsafe {
        setsockopt(
            tcp.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &linger,
            std::mem::size_of::<Linger>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER) failed");
}

/// Elsewhere: an ordinary close (the tests that need a RST are Linux-only in practice).
#[cfg(not(target_os = "linux"))]
fn set_linger_zero(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

// ---------------------------------------------------------------------------------------------
// Client helpers

/// A builder pointed at `server` for tokens (`/oauth/token`) and the API (`/backoffice`), with
/// short retries: 2 retries, 10 ms base, 100 ms max, 10 s per attempt.
pub fn builder(server: &Server) -> ConfigBuilder {
    builder_for(server, server)
}

/// Tokens from `tokens`, API requests to `api` (`/backoffice`).
pub fn builder_for(tokens: &Server, api: &Server) -> ConfigBuilder {
    Config::builder()
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .token_url(tokens.token_url())
        .api_base_url(format!("{}/backoffice", api.url()))
        .max_retries(2)
        .retry_base(ms(10))
        .retry_max(ms(100))
        .timeout(secs(10))
}

pub fn client(server: &Server) -> lwolf_auth::Client {
    lwolf_auth::Client::new(builder(server).build().expect("valid test config"))
}

/// Asserts that nothing secret shows in `text`: neither the client secret nor a token.
#[track_caller]
pub fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "client secret leaked into: {text}");
    assert!(!text.contains(TOKEN_MARK), "a token leaked into: {text}");
}

/// Asserts that neither `Display` nor `Debug` of `e` (nor of its sources) shows a secret.
#[track_caller]
pub fn check_error(e: &Error) {
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        assert_no_secret(&s.to_string());
        assert_no_secret(&format!("{s:?}"));
        source = s.source();
    }
}

/// The error of `r`, checked for leaks; panics on success.
#[track_caller]
pub fn err<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            check_error(&e);
            e
        }
    }
}

/// The value of `r`; panics (with the leak-checked error) on failure.
#[track_caller]
pub fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            check_error(&e);
            panic!("expected success, got {e:?}")
        }
    }
}

/// Seconds since the UNIX epoch, as a float.
/// A throwaway key of test-support/keys (made with openssl for the tests only).
pub fn test_key(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys")
        .join(name)
}

/// The base64 lines of a PEM key file of test-support/keys: none may appear in a message.
pub fn key_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(test_key(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

/// Polls `done` every few ms until it holds; panics saying `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (at most 10 s) until `client`'s cached token is `secret`: a refresh runs on a
/// thread of its own, so the caller that started it still got the old token.
pub fn wait_for_token(client: &lwolf_auth::Client, secret: &str) {
    wait_until(
        &format!("the cached token to become {secret}"),
        secs(10),
        || client.cached_token().is_some_and(|t| t.secret() == secret),
    );
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until the wall clock reaches `t` (plus a few ms).
pub fn sleep_until_wall(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        thread::sleep(d + ms(20));
    } else {
        thread::sleep(ms(20));
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A date as (year, month, day), for certificate validity.
pub type Ymd = (i32, u8, u8);

/// A throwaway CA and a server certificate for `localhost` and 127.0.0.1 signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
    /// The server's certificate and key, for servers that take them as files.
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        TestPki::with_server_cert(&["localhost", "127.0.0.1"], None)
    }

    /// Like [`TestPki::new`], with a server certificate for `names` only (a wrong name for
    /// 127.0.0.1, say), valid from `validity.0` to `validity.1` as (year, month, day) when
    /// given (in the past for an expired certificate).
    pub fn with_server_cert(names: &[&str], validity: Option<(Ymd, Ymd)>) -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lwolf-auth test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // Said outright (as corporate proxies' roots often do): Wine's certificate store
        // reports a root without it as good for nothing, and it is then not read.
        ca_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signed CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .expect("server cert signed by the CA");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone()], key)
            .expect("server config");
        TestPki {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }
}
