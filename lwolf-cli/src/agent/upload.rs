//! A request body the proxy streams to the API as it arrives, for a body with a
//! `Content-Length` over [`HELD_BODY_BYTES`]: the library reads it from the caller's
//! connection while it sends, so the agent never holds it whole. Such a request goes once
//! (the library sends a reader's body once: no retry, and a renewal only for the next one),
//! and its attempt is given time for the body to come at [`MIN_RATE`] besides `timeout_ms`.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size are read whole first: the library can send them again after a
/// renewal or a retry. Larger ones with a `Content-Length` are streamed.
pub(crate) const HELD_BODY_BYTES: u64 = 1024 * 1024;
/// The longest wait for the caller's next bytes of a streamed body.
const IDLE: Duration = Duration::from_secs(60);
/// The slowest a streamed body may arrive on average, in bytes a second: its attempt gets
/// `timeout_ms` and the time the body takes at this rate.
pub(crate) const MIN_RATE: u64 = 64 * 1024;

/// The bound of an attempt that streams a body of `length` bytes, for a client whose
/// attempts are bounded by `timeout`.
pub(crate) fn attempt_bound(timeout: Duration, length: u64) -> Duration {
    timeout + Duration::from_secs(length.div_ceil(MIN_RATE))
}

/// How a streamed body went: bytes still to come (a connection whose body was not read to
/// its end is closed), and whether the caller failed it (left, or went quiet past [`IDLE`]).
#[derive(Clone, Default)]
pub(crate) struct Progress {
    pub(crate) left: Arc<AtomicU64>,
    pub(crate) caller_failed: Arc<AtomicBool>,
}

/// Reads exactly `length` bytes of a caller's body: first those read with its head, then
/// from the connection (a clone of the caller's socket).
pub(crate) struct Upload {
    read_ahead: io::Cursor<Vec<u8>>,
    stream: TcpStream,
    progress: Progress,
}

impl Upload {
    /// The body that follows a head on `stream`, `read_ahead` its first bytes (no more than
    /// `length` of them); and how it goes, to look at once the request is done.
    pub(crate) fn new(stream: TcpStream, read_ahead: Vec<u8>, length: u64) -> (Upload, Progress) {
        let progress = Progress::default();
        progress.left.store(length, Ordering::SeqCst);
        let _ = stream.set_read_timeout(Some(IDLE));
        let upload = Upload {
            read_ahead: io::Cursor::new(read_ahead),
            stream,
            progress: progress.clone(),
        };
        (upload, progress)
    }
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.progress.left.load(Ordering::SeqCst);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut n = self.read_ahead.read(&mut buf[..want])?;
        if n == 0 {
            n = match self.stream.read(&mut buf[..want]) {
                // The caller left before its body's end: the upstream request fails, and
                // is not sent short.
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the caller closed the connection mid-body",
                )),
                other => other,
            }
            .inspect_err(|_| self.progress.caller_failed.store(true, Ordering::SeqCst))?;
        }
        self.progress.left.fetch_sub(n as u64, Ordering::SeqCst);
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
        let (mut upload, progress) = Upload::new(agent, b"abc".to_vec(), 9);
        let mut body = Vec::new();
        upload.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"abcdefghi");
        assert_eq!(progress.left.load(Ordering::SeqCst), 0);
        assert!(!progress.caller_failed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_caller_gone_mid_body_is_an_error_not_a_short_body() {
        let (mut caller, agent) = pair();
        caller.write_all(b"de").unwrap();
        drop(caller);
        let (mut upload, progress) = Upload::new(agent, b"abc".to_vec(), 9);
        let mut body = Vec::new();
        let e = upload.read_to_end(&mut body).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(progress.left.load(Ordering::SeqCst), 4);
        assert!(progress.caller_failed.load(Ordering::SeqCst));
    }
}
