//! The agent's side of HTTP/1.1: request heads read with `httparse` within a deadline for the
//! whole head (a peer that trickles a byte at a time is cut off), and answers written with
//! their framing. Request bodies are read in `request_body.rs`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The largest request head read.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a refused connection is drained before it is closed, and how much of it.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 1024 * 1024;
/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;

/// A connection the agent serves: a Unix or a TCP stream, or a pipe, with read and write
/// bounds.
pub(crate) trait Stream: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
}

#[cfg(unix)]
impl Stream for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, t)
    }
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
}

#[cfg(windows)]
impl Stream for lwolf_auth::unversioned::PipeStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        lwolf_auth::unversioned::PipeStream::set_read_timeout(self, t);
        Ok(())
    }
    /// A pipe has no half-close: a lingering close ends at once (the client still reads
    /// what was written before it).
    fn shutdown_write(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a pipe has no half-close",
        ))
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        lwolf_auth::unversioned::PipeStream::set_write_timeout(self, t);
        Ok(())
    }
}

/// A request head.
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Names in lower case; values as sent (any bytes but CR, LF and NUL, which httparse
    /// refuses).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first value of `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the connection may serve another request after this one.
    pub fn keep_alive(&self) -> bool {
        let connection =
            connection_tokens(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        if self.version == 0 {
            connection.iter().any(|t| t == "keep-alive")
        } else {
            !connection.iter().any(|t| t == "close")
        }
    }

    /// The body's framing: none, `Content-Length: n`, or chunked. Both at once (a request
    /// smuggling attempt), another transfer coding, or conflicting lengths are refusals.
    pub fn framing(&self) -> Result<Framing, Refusal> {
        let codings: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .map(|(_, v)| v.trim_ascii())
            .collect();
        let lengths = self.headers.iter().filter(|(n, _)| n == "content-length");
        if !codings.is_empty() {
            if lengths.count() > 0 {
                return Err(Refusal::new(
                    400,
                    "Transfer-Encoding and Content-Length together",
                ));
            }
            return match codings.as_slice() {
                [coding] if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
                _ => Err(Refusal::new(
                    501,
                    "only the chunked transfer coding is taken",
                )),
            };
        }
        let mut length = None;
        for (_, value) in lengths {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Refusal::new(400, "Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Refusal::new(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        }
        Ok(match length {
            None | Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
        })
    }
}

/// How a request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request refused: its status and the reason, for a JSON error body.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    pub fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// Why no request head could be had.
pub(crate) enum HeadError {
    /// The peer closed the connection (or was idle past the deadline) between requests.
    Closed,
    /// A bad or oversized head: answer it, then close.
    Bad(Refusal),
    /// The connection failed mid-head: nothing to answer.
    Gone,
}

/// A connection and the bytes read from it but not used yet.
pub(crate) struct Conn<S> {
    pub stream: S,
    pub(super) buf: Vec<u8>,
    /// The read timeout set on the stream, if any.
    read_timeout: Option<Duration>,
}

/// How far from its deadline (before or after) a read may end rather than set the timeout
/// again: on a kept-alive connection each request's head gets the same wait, and one
/// `setsockopt` per request is saved.
const TIMEOUT_SLACK: Duration = Duration::from_millis(250);

impl<S: Stream> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            read_timeout: None,
        }
    }

    /// Reads more into the buffer, bounded by `deadline`; `Ok(0)` at the end of the stream.
    pub(super) fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // The timeout set already will do if it ends the read close enough to the deadline.
        let fits = self
            .read_timeout
            .is_some_and(|set| set.max(left) - set.min(left) <= TIMEOUT_SLACK);
        if !fits {
            self.read_timeout = None;
            self.stream.set_read_timeout(Some(left))?;
            self.read_timeout = Some(left);
        }
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers `refusal` and closes the connection, reading (and dropping) what the peer
    /// still sends for a moment first: closing with unread bytes would reset the
    /// connection, and the peer could lose the answer.
    pub fn refuse(mut self, refusal: &Refusal) {
        write_refusal(&mut self.stream, refusal, false);
        self.linger();
    }

    /// Closes the connection gently: our side first, then what the peer sends is read and
    /// dropped, at most [`LINGER_BYTES`] within [`LINGER`].
    pub fn linger(mut self) {
        if self.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        while drained < LINGER_BYTES {
            self.buf.clear();
            match self.fill(deadline) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }

    /// The next request head, whole by `deadline`.
    pub fn read_head(&mut self, deadline: Instant) -> Result<Head, HeadError> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = Head {
                            method: request.method.unwrap_or_default().to_owned(),
                            target: request.path.unwrap_or_default().to_owned(),
                            version: request.version.unwrap_or(1),
                            headers: request
                                .headers
                                .iter()
                                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                                .collect(),
                        };
                        self.buf.drain(..n);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD_BYTES {
                            return Err(HeadError::Bad(Refusal::new(
                                431,
                                "the request head is too large",
                            )));
                        }
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(HeadError::Bad(Refusal::new(431, "too many headers")))
                    }
                    Err(e) => {
                        return Err(HeadError::Bad(Refusal::new(
                            400,
                            format!("malformed request: {e}"),
                        )))
                    }
                }
            }
            let empty = self.buf.is_empty();
            match self.fill(deadline) {
                Ok(0) if empty => return Err(HeadError::Closed),
                Ok(0) => return Err(HeadError::Gone),
                Ok(_) => {}
                Err(e) if empty && is_timeout(&e) => return Err(HeadError::Closed),
                Err(e) if is_timeout(&e) => {
                    return Err(HeadError::Bad(Refusal::new(
                        408,
                        "the request head did not arrive in time",
                    )))
                }
                Err(_) => return Err(HeadError::Gone),
            }
        }
    }

    /// Up to `n` of the bytes read past the head: the start of a body read from here on by
    /// another handle on the socket, which may set its read timeout (so it is set again
    /// before this connection's next read).
    pub fn take_read_ahead(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n.min(self.buf.len()));
        self.read_timeout = None;
        std::mem::replace(&mut self.buf, rest)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// `s` without control characters, at most 200 of them: a path fit for a log line.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The reason phrase of `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Writes a whole answer: the status line, `headers`, Content-Length and the body.
pub(crate) fn write_answer(
    out: &mut dyn Write,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    }
    text.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    let mut bytes = zeroize::Zeroizing::new(text.into_bytes());
    bytes.extend_from_slice(body);
    out.write_all(&bytes)?;
    out.flush()
}

/// A JSON error body: `{"error": reason}`.
pub(crate) fn error_body(reason: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": reason })).unwrap_or_default()
}

/// Writes `refusal` as a JSON error.
pub(crate) fn write_refusal(out: &mut dyn Write, refusal: &Refusal, keep_alive: bool) {
    let _ = write_answer(
        out,
        refusal.status,
        "application/json",
        &[],
        &error_body(&refusal.reason),
        keep_alive,
    );
}

/// The tokens of every `Connection` header among `headers` (lower-case names, any value),
/// lower-cased: `keep-alive`, `close`, and the names of headers that are this hop's only.
pub(crate) fn connection_tokens<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<String> {
    headers
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|b| *b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::request_body::BodyError;
    use super::*;

    fn head(text: &str) -> Head {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        assert!(r.parse(text.as_bytes()).unwrap().is_complete());
        Head {
            method: r.method.unwrap().into(),
            target: r.path.unwrap().into(),
            version: r.version.unwrap(),
            headers: r
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing().unwrap(), Framing::Length(5));
        assert!(h.keep_alive());
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(h.framing().unwrap_err().status, 400);
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing().unwrap(), Framing::Chunked);
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing().unwrap_err().status, 501);
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.framing().unwrap_err().status, 400);
        let h = head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(h.framing().unwrap_err().status, 400);
        let h = head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing().unwrap(), Framing::None);
        let h = head("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive());
        let h = head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(!h.keep_alive());
    }

    /// A stream over a fixed input, for the body readers; it keeps the read timeouts set.
    struct Input(
        std::io::Cursor<Vec<u8>>,
        Vec<u8>,
        std::cell::RefCell<Vec<Duration>>,
    );

    impl Read for Input {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for Input {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Stream for Input {
        fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.2.borrow_mut().extend(t);
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn body_of(request: &str, limit: usize) -> Result<Option<Vec<u8>>, u16> {
        let mut conn = Conn::new(Input(
            std::io::Cursor::new(request.as_bytes().to_vec()),
            Vec::new(),
            Default::default(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        let Ok(head) = conn.read_head(deadline) else {
            return Err(0);
        };
        match conn.read_request_body(&head, limit, "too large", deadline) {
            Ok(body) => Ok(body),
            Err(BodyError::Refused(r)) => Err(r.status),
            Err(BodyError::Gone) => Err(1),
        }
    }

    #[test]
    fn bodies() {
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let ok = format!("{chunked}5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!(body_of(&ok, 100), Ok(Some(b"hello, world".to_vec())));
        assert_eq!(body_of(&ok, 11), Err(413));
        let bad_size = format!("{chunked}zz\r\nhello\r\n0\r\n\r\n");
        assert_eq!(body_of(&bad_size, 100), Err(400));
        // A size line without digits is not the body's end (httparse reads it as 0).
        let no_digits = format!("{chunked}5\r\nhello\r\n\r\nmore\r\n0\r\n\r\n");
        assert_eq!(body_of(&no_digits, 100), Err(400));
        let trailers = "X-T: 1234567\r\n".repeat(2000);
        let long_trailers = format!("{chunked}5\r\nhello\r\n0\r\n{trailers}\r\n");
        assert_eq!(body_of(&long_trailers, 100), Err(400));
        // A size line past 1 KiB, come in one read.
        let extension = "x".repeat(2000);
        let long_size_line = format!("{chunked}5;{extension}\r\nhello\r\n0\r\n\r\n");
        assert_eq!(body_of(&long_size_line, 100), Err(400));
        let no_crlf = format!("{chunked}5\r\nhelloXX0\r\n\r\n");
        assert_eq!(body_of(&no_crlf, 100), Err(400));
        let cut = format!("{chunked}5\r\nhel");
        assert_eq!(body_of(&cut, 100), Err(1));
        let huge = format!("{chunked}ffffffffffffffff\r\n");
        assert_eq!(body_of(&huge, 100), Err(413));
        let length = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(length, 100), Ok(Some(b"hello".to_vec())));
        assert_eq!(body_of(length, 4), Err(413));
        let short = "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nhello";
        assert_eq!(body_of(short, 100), Err(1));
        assert_eq!(body_of("GET / HTTP/1.1\r\n\r\n", 100), Ok(None));
    }

    /// Kept-alive requests whose heads get the same wait set the read timeout once; a
    /// shorter wait, or a much longer one, sets it again.
    #[test]
    fn the_read_timeout_is_set_again_only_when_it_must() {
        let mut conn = Conn::new(Input(
            std::io::Cursor::new(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Vec::new(),
            Default::default(),
        ));
        let wait = Duration::from_secs(15);
        // One request after another on the connection, each head waited for as long.
        for _ in 0..2 {
            conn.stream.0.set_position(0);
            let deadline = Instant::now() + wait;
            assert!(conn.fill(deadline).unwrap() > 0);
        }
        assert_eq!(conn.stream.2.borrow().len(), 1, "{:?}", conn.stream.2);
        // A shorter wait must not be overrun: set again.
        conn.stream.0.set_position(0);
        conn.fill(Instant::now() + Duration::from_secs(3)).unwrap();
        // A much longer one must not end early: set again.
        conn.stream.0.set_position(0);
        conn.fill(Instant::now() + Duration::from_secs(60)).unwrap();
        let set = conn.stream.2.borrow().clone();
        assert_eq!(set.len(), 3, "{set:?}");
        assert!(set[1] <= Duration::from_secs(3) && set[2] > Duration::from_secs(59));
    }
}
