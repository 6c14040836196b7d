//! The sandbox's HTTP/1.1 server: a thread per connection, connections kept alive, heads
//! parsed by `httparse`. Each request's body is read before its handler runs, and its
//! answer goes out in one `write`.
//!
//! It replaces tiny_http 0.12, whose connection pool could queue a new connection behind
//! busy ones (a lost wake-up in its task pool) and leave it unanswered until one of them
//! closed: a client pool keeping more than 3 connections alive then saw requests hang.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::MAX_BODY_BYTES;

/// Connections served at once; one more is answered `503` and closed.
const MAX_CONNECTIONS: usize = 1024;
/// The largest request head (request line and headers) read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Headers a request may carry.
const MAX_HEADERS: usize = 64;
/// How long a write may wait, and a connection between requests: idle this long, it is
/// closed.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// A request, head and body, must arrive whole within this once its first bytes have: a
/// client that trickles a byte at a time holds a thread no longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for handlers that are still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A request method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Other(String),
}

impl Method {
    fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request, its body already read (or refused).
pub(crate) struct Request {
    method: Method,
    url: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    minor_version: u8,
    headers: Vec<(String, String)>,
    body: Result<Vec<u8>, &'static str>,
}

impl Request {
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// The request target as sent: path and query.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Every header as sent, names in their own case.
    pub(crate) fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of a header, any case.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body, taken (a second call finds it empty), or why it was refused.
    pub(crate) fn take_body(&mut self) -> Result<Vec<u8>, &'static str> {
        match &mut self.body {
            Ok(body) => Ok(std::mem::take(body)),
            Err(why) => Err(why),
        }
    }

    /// Whether the client wants the connection kept after the answer.
    fn keep_alive(&self) -> bool {
        match self.header("Connection").map(str::to_ascii_lowercase) {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => self.minor_version >= 1,
        }
    }
}

/// An answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

/// What answers requests.
pub(crate) type Handler = dyn Fn(&mut Request) -> Reply + Send + Sync;

/// A running server. [`Server::stop`] (or dropping it) closes the listener and every
/// connection.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    stopping: AtomicBool,
    /// A handle on each open connection, to shut it down when the server stops.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Connections accepted, which is also the next one's id.
    next_id: AtomicU64,
    handler: Box<Handler>,
}

impl Server {
    /// Serves `listener` on a thread of its own, a thread per connection.
    pub(crate) fn start(listener: TcpListener, handler: Box<Handler>) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            handler,
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("lwolf-sandbox-accept".into())
                .spawn(move || accept(&listener, &shared))?
        };
        Ok(Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.shared.next_id.load(Ordering::SeqCst)
    }

    /// Stops accepting, shuts every connection down (a client that went silent mid-body
    /// is let go at once), and waits up to 2 s for handlers still running.
    pub(crate) fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // `accept` wakes for a connection: make one, which it drops.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        // The wake-up connection may fail (no descriptors): then the thread is left behind.
        let until = Instant::now() + SHUTDOWN_GRACE;
        while !acceptor.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if acceptor.is_finished() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        loop {
            for stream in self.shared.open.lock().values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            if self.shared.open.lock().is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                log::warn!("a handler is still busy with a request; not waiting");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was taken: go on.
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let registered = {
            let mut open = shared.open.lock();
            match stream.try_clone() {
                Ok(handle) if open.len() < MAX_CONNECTIONS => {
                    open.insert(id, handle);
                    true
                }
                _ => false,
            }
        };
        if !registered {
            refuse_busy(stream);
            continue;
        }
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("lwolf-sandbox-conn".into())
            .spawn(move || {
                serve(stream, &conn_shared);
                conn_shared.open.lock().remove(&id);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            if let Some(stream) = shared.open.lock().remove(&id) {
                refuse_busy(stream);
            }
        }
    }
}

fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let reply = Reply {
        status: 503,
        headers: vec![("Retry-After", "1".into())],
        body: Vec::new(),
    };
    let _ = stream.write_all(&wire(&reply, false, false));
}

/// Requests on one connection, one after another, until either side closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut conn = Connection {
        stream,
        buf: Vec::with_capacity(4096),
        deadline: None,
    };
    while !shared.stopping.load(Ordering::SeqCst) {
        let (mut request, body_complete) = match conn.read_request() {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return,
            Err(Refusal::Io(e)) => {
                log::debug!("connection ended: {e}");
                return;
            }
            Err(Refusal::Status(status, why)) => {
                log::debug!("refused a request: {why}");
                let reply = Reply {
                    status,
                    headers: vec![("Content-Type", "text/plain".into())],
                    body: why.as_bytes().to_vec(),
                };
                if conn.stream.write_all(&wire(&reply, false, false)).is_ok() {
                    linger(&conn.stream);
                }
                return;
            }
        };
        let keep_alive = request.keep_alive() && body_complete;
        let head_only = request.method == Method::Head;
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (shared.handler)(&mut request)
        }))
        .unwrap_or_else(|_| {
            log::error!("a request handler panicked");
            Reply {
                status: 500,
                headers: Vec::new(),
                body: Vec::new(),
            }
        });
        if let Err(e) = conn.stream.write_all(&wire(&reply, keep_alive, head_only)) {
            log::debug!("could not send a response: {e}");
            return;
        }
        if !keep_alive {
            if !body_complete {
                linger(&conn.stream);
            }
            return;
        }
    }
}

/// Closes after an answer sent before the request was read whole. Closing a socket with
/// unread data resets it, and the reset can destroy the answer before the client reads
/// it: so the sending side is closed first and what the client still sends is read and
/// dropped, for a while.
fn linger(mut stream: &TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAIN: usize = 16 * 1024 * 1024;
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut chunk = [0u8; 8192];
    while drained < MAX_DRAIN {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Why a connection's next request cannot be served.
enum Refusal {
    Io(io::Error),
    /// Answered with this status and reason, then the connection is closed.
    Status(u16, &'static str),
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        Refusal::Io(e)
    }
}

struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet used: the start of the next request.
    buf: Vec<u8>,
    /// When the request being read must be whole ([`REQUEST_TIMEOUT`] after its first
    /// bytes); `None` between requests.
    deadline: Option<Instant>,
}

impl Connection {
    /// Reads more into `buf`; `false` at the end of the stream. Between requests a read
    /// waits [`IO_TIMEOUT`]; within one, what is left of its [`REQUEST_TIMEOUT`].
    fn fill(&mut self) -> io::Result<bool> {
        let wait = match self.deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => IO_TIMEOUT,
        };
        if wait.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(wait))?;
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next request and whether its body was read whole (if not, the connection
    /// closes after the answer); `None` when the client closed between requests.
    fn read_request(&mut self) -> Result<Option<(Request, bool)>, Refusal> {
        self.deadline = None;
        let (head_len, mut request, framing) = loop {
            if !self.buf.is_empty() && self.deadline.is_none() {
                self.deadline = Some(Instant::now() + REQUEST_TIMEOUT);
            }
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Refusal::Status(431, "request head too large"));
            }
            if !self.fill()? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Refusal::Status(400, "connection closed mid-head"))
                };
            }
        };
        self.buf.drain(..head_len);
        // A 1.0 client is never sent a 100 (RFC 9110, 10.1.1).
        let expects_continue = request.minor_version >= 1
            && request
                .header("Expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        let complete = match framing {
            Framing::Empty => true,
            Framing::Length(n) if n > MAX_BODY_BYTES => {
                request.body = Err("request body larger than 64 KiB");
                false
            }
            Framing::Length(n) => {
                self.send_continue(expects_continue)?;
                while self.buf.len() < n {
                    if !self.fill()? {
                        return Err(Refusal::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                request.body = Ok(self.buf.drain(..n).collect());
                true
            }
            Framing::Chunked => {
                self.send_continue(expects_continue)?;
                match self.read_chunked()? {
                    Some(body) => {
                        request.body = Ok(body);
                        true
                    }
                    None => {
                        request.body = Err("request body larger than 64 KiB");
                        false
                    }
                }
            }
        };
        self.deadline = None;
        Ok(Some((request, complete)))
    }

    fn send_continue(&mut self, expected: bool) -> io::Result<()> {
        if expected && self.buf.is_empty() {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        Ok(())
    }

    /// A chunked body, or `None` once it passes [`MAX_BODY_BYTES`].
    fn read_chunked(&mut self) -> Result<Option<Vec<u8>>, Refusal> {
        let mut body = Vec::new();
        loop {
            let (line, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((line, size))) => break (line, size),
                    Ok(httparse::Status::Partial) if self.buf.len() < 1024 => {
                        if !self.fill()? {
                            return Err(Refusal::Io(io::ErrorKind::UnexpectedEof.into()));
                        }
                    }
                    _ => return Err(Refusal::Status(400, "malformed chunked body")),
                }
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > MAX_BODY_BYTES - body.len() {
                return Ok(None);
            }
            if size == 0 {
                self.buf.drain(..line);
                return self.skip_trailers().map(|()| Some(body));
            }
            while self.buf.len() < line + size + 2 {
                if !self.fill()? {
                    return Err(Refusal::Io(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            if &self.buf[line + size..line + size + 2] != b"\r\n" {
                return Err(Refusal::Status(400, "malformed chunked body"));
            }
            body.extend_from_slice(&self.buf[line..line + size]);
            self.buf.drain(..line + size + 2);
        }
    }

    /// The trailer lines after the last chunk, up to the empty line.
    fn skip_trailers(&mut self) -> Result<(), Refusal> {
        loop {
            if let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") {
                self.buf.drain(..eol + 2);
                if eol == 0 {
                    return Ok(());
                }
                continue;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Refusal::Status(431, "trailers too large"));
            }
            if !self.fill()? {
                return Err(Refusal::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

/// How a request's body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

/// The request head at the start of `buf`, its length and its body's framing; `None` if
/// it is not all there yet.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Request, Framing)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Status(431, "too many headers"))
        }
        Err(_) => return Err(Refusal::Status(400, "malformed request head")),
    };
    let mut pairs = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| Refusal::Status(400, "a header value is not UTF-8"))?;
        pairs.push((h.name.to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: Method::parse(parsed.method.unwrap_or_default()),
        url: parsed.path.unwrap_or_default().to_owned(),
        minor_version: parsed.version.unwrap_or(1),
        headers: pairs,
        body: Ok(Vec::new()),
    };
    let framing = framing(&request)?;
    Ok(Some((head_len, request, framing)))
}

/// The body's framing (RFC 9112, 6.3): `Transfer-Encoding: chunked` or one
/// `Content-Length`; both at once, another coding or lengths that disagree are refused.
fn framing(request: &Request) -> Result<Framing, Refusal> {
    let named = |name: &'static str| {
        request
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let codings: Vec<&str> = named("Transfer-Encoding").collect();
    let lengths: Vec<&str> = named("Content-Length").collect();
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(Refusal::Status(
                400,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let chunked_only = codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked");
        return if chunked_only && request.minor_version >= 1 {
            Ok(Framing::Chunked)
        } else {
            Err(Refusal::Status(501, "transfer coding not supported"))
        };
    }
    let mut length = None;
    for value in lengths.iter().flat_map(|v| v.split(',')) {
        let value = value.trim();
        let n: usize = match value.parse() {
            Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(Refusal::Status(400, "malformed Content-Length")),
        };
        if length.is_some_and(|l| l != n) {
            return Err(Refusal::Status(400, "Content-Length values differ"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// The answer as bytes: status line, headers, `Content-Length`, body. Header values that
/// could end the header (they may echo what a client sent) are left out.
fn wire(reply: &Reply, keep_alive: bool, head_only: bool) -> Vec<u8> {
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
        if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    out
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
        412 => "Precondition Failed",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(usize, Request, Framing)>, u16> {
        parse_head(text.as_bytes()).map_err(|r| match r {
            Refusal::Status(status, _) => status,
            Refusal::Io(_) => 0,
        })
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let length = |t: &str| match head(t) {
            Ok(Some((_, _, Framing::Length(n)))) => Some(n),
            _ => None,
        };
        assert_eq!(
            length("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Some(5)
        );
        assert_eq!(
            length("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
            Some(5)
        );
        assert!(matches!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Some((_, _, Framing::Chunked)))
        ));
        assert!(matches!(head("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        for (text, status) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        ] {
            assert_eq!(head(text).err(), Some(status), "{text:?}");
        }
    }

    #[test]
    fn header_values_that_could_end_the_head_are_left_out() {
        let reply = Reply {
            status: 200,
            headers: vec![("X-A", "fine".into()), ("X-B", "bad\r\nX-C: 1".into())],
            body: b"hi".to_vec(),
        };
        let text = String::from_utf8(wire(&reply, true, false)).unwrap();
        assert!(text.contains("X-A: fine\r\n"));
        assert!(!text.contains("X-B") && !text.contains("X-C"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\nhi"));
        let closing = String::from_utf8(wire(&reply, false, true)).unwrap();
        assert!(closing.ends_with("Connection: close\r\n\r\n"));
    }
}
