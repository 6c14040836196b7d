//! Request bodies as the agent reads them: whole (a `Content-Length`, or chunked, decoded
//! by `httparse`'s chunk sizes) within a deadline and a limit, or the first part of a
//! chunked one, whose rest is streamed (`upload.rs`).

use std::time::Instant;

use super::http::{Conn, Framing, Head, Refusal, Stream, MAX_HEAD_BYTES};

/// The longest chunk-size line (with its extensions) taken, held or streamed.
pub(crate) const MAX_SIZE_LINE_BYTES: usize = 1024;

/// A request body as read by [`Conn::read_body_up_to`].
pub(crate) enum Body {
    Whole(Vec<u8>),
    /// A chunked body's first chunks, decoded; the next chunk, `chunk_left` bytes, and the
    /// rest are still to be read (its size line already was).
    ChunkedRest {
        prefix: Vec<u8>,
        chunk_left: u64,
    },
}

/// Why a request body could not be had.
pub(crate) enum BodyError {
    /// Answer it, then close.
    Refused(Refusal),
    /// The peer left or was too slow: close, with nothing to answer.
    Gone,
}

impl<S: Stream> Conn<S> {
    /// The request's body (`None` without one), whole by `deadline` and at most `limit`
    /// bytes (`too_large` says so, with 413). A caller that asked for `100-continue` is told
    /// to go on only once the framing and the length are known to be acceptable.
    pub fn read_request_body(
        &mut self,
        head: &Head,
        limit: usize,
        too_large: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, BodyError> {
        Ok(
            match self.read_body_up_to(head, limit, limit, too_large, deadline)? {
                Some(Body::Whole(body)) => Some(body),
                // Not with `hold` at `limit`: a chunk past it is refused first.
                Some(Body::ChunkedRest { .. }) => return Err(BodyError::Gone),
                None => None,
            },
        )
    }

    /// As [`Conn::read_request_body`], but a chunked body that grows past `hold` bytes is
    /// read no further: what was decoded is handed back with the size of the chunk that
    /// comes next, its bytes still on the connection, for the rest to be streamed.
    pub fn read_body_up_to(
        &mut self,
        head: &Head,
        limit: usize,
        hold: usize,
        too_large: &str,
        deadline: Instant,
    ) -> Result<Option<Body>, BodyError> {
        let framing = head.framing().map_err(BodyError::Refused)?;
        let too_large = || BodyError::Refused(Refusal::new(413, too_large));
        if matches!(framing, Framing::Length(n) if n > limit as u64) {
            return Err(too_large());
        }
        if framing == Framing::None {
            return Ok(None);
        }
        self.send_continue(head)?;
        match framing {
            Framing::Length(n) => self
                .read_exact_body(n as usize, deadline)
                .map(|body| Some(Body::Whole(body)))
                .ok_or(BodyError::Gone),
            _ => self
                .read_chunked(limit, hold, deadline, too_large)
                .map(Some),
        }
    }

    /// `100 Continue`, if the caller waits for it (`Expect: 100-continue`, HTTP/1.1: a 1.0
    /// client is never sent one): its body is about to be read.
    pub fn send_continue(&mut self, head: &Head) -> Result<(), BodyError> {
        let continues = head.version >= 1
            && head
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        if continues
            && self
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return Err(BodyError::Gone);
        }
        Ok(())
    }

    /// A body of `length` bytes, whole by `deadline`; `None` if the peer went away or was
    /// too slow (nothing to answer then but a close).
    fn read_exact_body(&mut self, length: usize, deadline: Instant) -> Option<Vec<u8>> {
        while self.buf.len() < length {
            match self.fill(deadline) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        let rest = self.buf.split_off(length);
        Some(std::mem::replace(&mut self.buf, rest))
    }

    /// A chunked body, decoded (chunk sizes by `httparse`), at most `limit` bytes; trailers
    /// are read and dropped. Its first chunks only if more than `hold` bytes come.
    fn read_chunked(
        &mut self,
        limit: usize,
        hold: usize,
        deadline: Instant,
        too_large: impl Fn() -> BodyError,
    ) -> Result<Body, BodyError> {
        let bad = |why: &str| BodyError::Refused(Refusal::new(400, why));
        let mut body = Vec::new();
        loop {
            let size = loop {
                // httparse takes a line without digits for a size of 0: the body's end.
                if self.buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                    return Err(bad("a malformed chunk size"));
                }
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, _))) if used > MAX_SIZE_LINE_BYTES => {
                        return Err(bad("a chunk size line is too long"))
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.drain(..used);
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() <= MAX_SIZE_LINE_BYTES => {
                        match self.fill(deadline) {
                            Ok(0) | Err(_) => return Err(BodyError::Gone),
                            Ok(_) => {}
                        }
                    }
                    _ => return Err(bad("a malformed chunk size")),
                }
            };
            if size == 0 {
                // Trailers, if any, up to the empty line: all of them within a head's size.
                let mut trailers = 0;
                loop {
                    match self.buf.windows(2).position(|w| w == b"\r\n") {
                        Some(end) if trailers + end + 2 > MAX_HEAD_BYTES => {
                            return Err(bad("the trailers are too large"))
                        }
                        Some(0) => {
                            self.buf.drain(..2);
                            return Ok(Body::Whole(body));
                        }
                        Some(end) => {
                            self.buf.drain(..end + 2);
                            trailers += end + 2;
                        }
                        None if trailers + self.buf.len() > MAX_HEAD_BYTES => {
                            return Err(bad("the trailers are too large"))
                        }
                        None => match self.fill(deadline) {
                            Ok(0) | Err(_) => return Err(BodyError::Gone),
                            Ok(_) => {}
                        },
                    }
                }
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > limit.saturating_sub(body.len()) {
                return Err(too_large());
            }
            if size > hold.saturating_sub(body.len()) {
                return Ok(Body::ChunkedRest {
                    prefix: body,
                    chunk_left: size as u64,
                });
            }
            while self.buf.len() < size + 2 {
                match self.fill(deadline) {
                    Ok(0) | Err(_) => return Err(BodyError::Gone),
                    Ok(_) => {}
                }
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(bad("a chunk is not followed by CRLF"));
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}
