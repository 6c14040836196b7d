//! The proxy's answers: the library's response relayed to the caller as it arrives, its
//! head and first bytes in one write, framed for the caller's HTTP version, at most
//! `max_response_bytes`.

use std::io::{self, Write};
use std::net::TcpStream;

use lwolf_auth::{Response, ResponseSink};

use super::http::{self, reason, write_answer, Head};
use super::proxy::HOP_BY_HOP;

/// How the body goes to the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    /// The upstream's Content-Length, bytes as they come, never more.
    Length(u64),
    /// `Transfer-Encoding: chunked` (an HTTP/1.1 caller, no length known).
    Chunked,
    /// Until the connection closes (an HTTP/1.0 caller, no length known).
    Close,
}

/// Writes the library's answer to the caller: its head, then its body as it arrives, at
/// most `max_response_bytes`.
pub(super) struct Relay<'a> {
    pub(super) out: &'a mut TcpStream,
    head_method: bool,
    http10: bool,
    pub(super) keep_alive: bool,
    framing: Framing,
    pub(super) head_sent: bool,
    /// The head, kept until the body's first bytes (or the end) so that both go out in one
    /// write: one segment for a small answer rather than two.
    pub(super) pending: Vec<u8>,
    written: u64,
    limit: u64,
    id_header: Option<String>,
    pub(super) status: u16,
}

impl<'a> Relay<'a> {
    /// A relay of the answer to `head` onto `out`.
    pub(super) fn new(
        out: &'a mut TcpStream,
        head: &Head,
        keep_alive: bool,
        limit: u64,
        id_header: Option<&str>,
    ) -> Relay<'a> {
        Relay {
            out,
            head_method: head.method == "HEAD",
            http10: head.version == 0,
            keep_alive,
            framing: Framing::None,
            head_sent: false,
            pending: Vec::new(),
            written: 0,
            limit,
            id_header: id_header.map(str::to_ascii_lowercase),
            status: 0,
        }
    }

    pub(super) fn finish(&mut self) -> io::Result<()> {
        match self.framing {
            Framing::Chunked => self.send(b"0\r\n\r\n")?,
            // Fewer bytes than the head promised: the caller's next response would be read
            // as the rest of this one; the connection must end here.
            Framing::Length(n) if self.written != n => {
                self.keep_alive = false;
                return Err(io::Error::other("the body was shorter than its length"));
            }
            _ => self.send(&[])?,
        }
        self.out.flush()
    }

    /// Writes `bytes` to the caller, after the head if it still waits.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.pending.is_empty() {
            return self.out.write_all(bytes);
        }
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(bytes);
        self.out.write_all(&all)
    }

    fn too_large(&self) -> io::Error {
        io::Error::other("the response is larger than max_response_bytes")
    }
}

impl Write for Relay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() || self.framing == Framing::None {
            return Ok(buf.len());
        }
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(self.too_large());
        }
        if let Framing::Length(n) = self.framing {
            if self.written > n {
                self.keep_alive = false;
                return Err(io::Error::other("the body is longer than its length"));
            }
        }
        if self.framing == Framing::Chunked {
            let mut piece = format!("{:x}\r\n", buf.len()).into_bytes();
            piece.extend_from_slice(buf);
            piece.extend_from_slice(b"\r\n");
            self.send(&piece)?;
        } else {
            self.send(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl ResponseSink for Relay<'_> {
    fn head(&mut self, response: &Response) -> io::Result<()> {
        let status = response.status();
        self.status = status;
        // A length beside a transfer coding is not what framed the body (ureq decoded the
        // coding): it is ignored, as RFC 9112 says.
        let length = response
            .header("content-length")
            .filter(|_| response.header("transfer-encoding").is_none())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let no_body = self.head_method || status == 204 || status == 304 || status < 200;
        if !no_body && length.is_some_and(|n| n > self.limit) {
            // Said before any of it is relayed.
            self.head_sent = true;
            let why = format!(
                "the API's answer ({status}) is larger than max_response_bytes ({})",
                self.limit
            );
            write_answer(
                self.out,
                502,
                "application/json",
                &[],
                &http::error_body(&why),
                false,
            )?;
            self.keep_alive = false;
            return Err(self.too_large());
        }
        self.framing = match (no_body, length) {
            (true, _) => Framing::None,
            (false, Some(n)) => Framing::Length(n),
            (false, None) if self.http10 => Framing::Close,
            (false, None) => Framing::Chunked,
        };
        if self.framing == Framing::Close {
            self.keep_alive = false;
        }
        let mut text = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        let mut has_id = false;
        let connection_named =
            http::connection_tokens(response.headers().map(|(n, v)| (n, v.as_bytes())));
        for (name, value) in response.headers() {
            let hop = HOP_BY_HOP.contains(&name) && !(name == "content-length" && no_body);
            // A cookie set for 127.0.0.1 would go to every service on loopback, any port.
            if hop || name == "set-cookie" || connection_named.iter().any(|t| t == name) {
                continue;
            }
            if Some(name) == self.id_header.as_deref() {
                has_id = true;
            }
            text.push_str(name);
            text.push_str(": ");
            text.push_str(value);
            text.push_str("\r\n");
        }
        if let (Some(name), Some(id), false) = (&self.id_header, response.request_id(), has_id) {
            text.push_str(&format!("{name}: {id}\r\n"));
        }
        match (self.framing, length) {
            (Framing::Length(n), _) => text.push_str(&format!("content-length: {n}\r\n")),
            (Framing::Chunked, _) => text.push_str("transfer-encoding: chunked\r\n"),
            _ => {}
        }
        text.push_str(if self.keep_alive {
            "connection: keep-alive\r\n\r\n"
        } else {
            "connection: close\r\n\r\n"
        });
        self.head_sent = true;
        self.pending = text.into_bytes();
        Ok(())
    }
}
