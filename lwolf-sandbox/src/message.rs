//! HTTP/1.1 messages as the sandbox reads and writes them: a request's head parsed by
//! `httparse`, its body framed by `Content-Length` or chunked (RFC 9112) and read whole
//! before its handler runs, and an answer as the bytes of one `write`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use super::MAX_BODY_BYTES;

/// The largest request head (request line and headers) read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Headers a request may carry.
const MAX_HEADERS: usize = 64;
/// How long a write may wait, and a connection between requests: idle this long, it is
/// closed.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// A request, head and body, must arrive whole within this once its first bytes have: a
/// client that trickles a byte at a time holds a thread no longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub(super) method: Method,
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
    pub(super) fn keep_alive(&self) -> bool {
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

/// Why a connection's next request cannot be served.
pub(super) enum Refusal {
    Io(io::Error),
    /// Answered with this status and reason, then the connection is closed.
    Status(u16, &'static str),
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        Refusal::Io(e)
    }
}

pub(super) struct Connection {
    pub(super) stream: TcpStream,
    /// Bytes read and not yet used: the start of the next request.
    buf: Vec<u8>,
    /// When the request being read must be whole ([`REQUEST_TIMEOUT`] after its first
    /// bytes); `None` between requests.
    deadline: Option<Instant>,
}

impl Connection {
    pub(super) fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buf: Vec::with_capacity(4096),
            deadline: None,
        }
    }

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
    pub(super) fn read_request(&mut self) -> Result<Option<(Request, bool)>, Refusal> {
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
pub(super) fn wire(reply: &Reply, keep_alive: bool, head_only: bool) -> Vec<u8> {
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
