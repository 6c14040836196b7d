//! A request body the proxy streams to the API as it arrives, for a body with a
//! `Content-Length` over [`HELD_BODY_BYTES`]: the library reads it from the caller's
//! connection while it sends, so the agent never holds it whole. Such a request goes once
//! (the library sends a reader's body once: no retry, and a renewal only for the next one).

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size are read whole first: the library can send them again after a
/// renewal or a retry. Larger ones with a `Content-Length` are streamed.
pub(crate) const HELD_BODY_BYTES: u64 = 1024 * 1024;
/// The longest wait for the caller's next bytes of a streamed body.
const IDLE: Duration = Duration::from_secs(60);

/// Reads exactly `length` bytes of a caller's body: first those read with its head, then
/// from the connection (a clone of the caller's socket).
pub(crate) struct Upload {
    read_ahead: io::Cursor<Vec<u8>>,
    stream: TcpStream,
    /// Bytes still to come; shared with the proxy, which closes a connection whose body
    /// was not read to its end.
    left: Arc<AtomicU64>,
}

impl Upload {
    /// The body that follows a head on `stream`, `read_ahead` its first bytes (no more than
    /// `length` of them); and what is left of it, to look at once the request is done.
    pub(crate) fn new(
        stream: TcpStream,
        read_ahead: Vec<u8>,
        length: u64,
    ) -> (Upload, Arc<AtomicU64>) {
        let left = Arc::new(AtomicU64::new(length));
        let _ = stream.set_read_timeout(Some(IDLE));
        let upload = Upload {
            read_ahead: io::Cursor::new(read_ahead),
            stream,
            left: Arc::clone(&left),
        };
        (upload, left)
    }
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut n = self.read_ahead.read(&mut buf[..want])?;
        if n == 0 {
            n = self.stream.read(&mut buf[..want])?;
            if n == 0 {
                // The caller left before its body's end: the upstream request fails, and
                // is not sent short.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the caller closed the connection mid-body",
                ));
            }
        }
        self.left.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn reads_exactly_its_length_and_leaves_what_follows() {
        let (mut caller, agent) = pair();
        caller.write_all(b"defghiNEXT REQUEST").unwrap();
        let (mut upload, left) = Upload::new(agent, b"abc".to_vec(), 9);
        let mut body = Vec::new();
        upload.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"abcdefghi");
        assert_eq!(left.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_caller_gone_mid_body_is_an_error_not_a_short_body() {
        let (mut caller, agent) = pair();
        caller.write_all(b"de").unwrap();
        drop(caller);
        let (mut upload, left) = Upload::new(agent, b"abc".to_vec(), 9);
        let mut body = Vec::new();
        let e = upload.read_to_end(&mut body).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(left.load(Ordering::SeqCst), 4);
    }
}
