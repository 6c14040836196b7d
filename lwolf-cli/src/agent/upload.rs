//! A request body the proxy streams to the API as it arrives, for a body over
//! [`HELD_BODY_BYTES`] (its `Content-Length`, or a chunked body once it grows past that):
//! the library reads it from the caller's connection while it sends, so the agent never
//! holds it whole; a chunked one is decoded here and sent on chunked. Such a request goes once
//! (the library sends a reader's body once: no retry, and a renewal only for the next one),
//! and its attempt is given time for the body to come at [`MIN_RATE`] besides `timeout_ms`.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request_body::MAX_SIZE_LINE_BYTES;

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

/// What the caller did to a streamed body it failed, as the proxy answers it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CallerFault {
    /// It left, or went quiet past [`IDLE`]: 408.
    Left = 1,
    /// Its chunked framing was malformed: 400.
    Malformed = 2,
    /// Its chunked body grew past `--max-body-bytes`: 413.
    TooLarge = 3,
}

impl CallerFault {
    /// The status and the reason the caller is answered.
    pub(crate) fn answer(self) -> (u16, &'static str) {
        match self {
            CallerFault::Left => (408, "the request body did not arrive whole"),
            CallerFault::Malformed => (400, "the request body's chunked framing is malformed"),
            CallerFault::TooLarge => (413, "the request body is larger than the agent takes"),
        }
    }

    fn error(self) -> io::Error {
        let kind = match self {
            CallerFault::Left => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self.answer().1)
    }
}

/// How a streamed body went: bytes still to come (a connection whose body was not read to
/// its end is closed), and whether the caller failed it.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    /// Bytes still to come; `u64::MAX` for a chunked body until its last chunk.
    pub(crate) left: Arc<AtomicU64>,
    fault: Arc<AtomicU8>,
}

impl Progress {
    /// Whether the body was not read to its end.
    pub(crate) fn unfinished(&self) -> bool {
        self.left.load(Ordering::SeqCst) > 0
    }

    /// What the caller did, if it failed the body.
    pub(crate) fn fault(&self) -> Option<CallerFault> {
        match self.fault.load(Ordering::SeqCst) {
            1 => Some(CallerFault::Left),
            2 => Some(CallerFault::Malformed),
            3 => Some(CallerFault::TooLarge),
            _ => None,
        }
    }

    fn failed(&self, fault: CallerFault) -> io::Error {
        self.fault.store(fault as u8, Ordering::SeqCst);
        fault.error()
    }
}

/// Reads a caller's body: first the bytes read (and decoded) with its head, then from the
/// connection (a clone of the caller's socket): exactly its length, or its chunks decoded
/// up to the last one.
pub(crate) struct Upload {
    ready: io::Cursor<Vec<u8>>,
    stream: TcpStream,
    progress: Progress,
    chunked: Option<Chunked>,
    /// The whole body is due by then: the library's own bound is looked at only between
    /// reads, and one read of a chunked body can go through any number of framing bytes.
    deadline: Instant,
}

/// Where a chunked body's decoding is.
struct Chunked {
    /// Bytes from the connection not yet decoded, from `at`.
    raw: Vec<u8>,
    at: usize,
    state: ChunkState,
    /// Bytes the body may still grow by.
    room: u64,
    /// Framing bytes taken so far, and data bytes (see [`FRAMING_ALLOWANCE`]).
    framing: u64,
    data: u64,
    /// Trailer bytes taken so far.
    trailers: usize,
}

#[derive(Clone, Copy)]
enum ChunkState {
    /// In a chunk's data, this many bytes to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// A chunk's size line.
    Size,
    /// The trailer lines after the last chunk, up to an empty line.
    Trailers,
    Done,
}

/// The most bytes of trailers taken, all lines together.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Framing (size lines, CRLFs, trailers) taken: this much, and [`FRAMING_PER_BYTE`] per
/// byte of data. One-byte chunks take 5 (`1\r\n`, `\r\n`); one-byte chunks with long
/// extensions cannot make the caller's bytes hundreds of times the body.
const FRAMING_ALLOWANCE: u64 = 1024 * 1024;
const FRAMING_PER_BYTE: u64 = 8;

impl Upload {
    /// The body that follows a head on `stream`, `read_ahead` its first bytes (no more than
    /// `length` of them); and how it goes, to look at once the request is done.
    /// It is due whole within `bound`.
    pub(crate) fn new(
        stream: TcpStream,
        read_ahead: Vec<u8>,
        length: u64,
        bound: Duration,
    ) -> (Upload, Progress) {
        let progress = Progress::default();
        progress.left.store(length, Ordering::SeqCst);
        Upload::start(stream, read_ahead, progress, None, bound)
    }

    /// The rest of a chunked body: `prefix` its first chunks (decoded), `chunk_left` the
    /// size of the chunk that follows (its size line read), `read_ahead` the bytes read
    /// from the connection past that line, `room` what the body may still grow by after
    /// that chunk. It is due whole within `bound`.
    pub(crate) fn chunked(
        stream: TcpStream,
        (prefix, chunk_left): (Vec<u8>, u64),
        read_ahead: Vec<u8>,
        room: u64,
        bound: Duration,
    ) -> (Upload, Progress) {
        let progress = Progress::default();
        progress.left.store(u64::MAX, Ordering::SeqCst);
        let chunked = Chunked {
            raw: read_ahead,
            at: 0,
            state: ChunkState::Data(chunk_left),
            room,
            framing: 0,
            data: prefix.len() as u64,
            trailers: 0,
        };
        Upload::start(stream, prefix, progress, Some(chunked), bound)
    }

    fn start(
        stream: TcpStream,
        ready: Vec<u8>,
        progress: Progress,
        chunked: Option<Chunked>,
        bound: Duration,
    ) -> (Upload, Progress) {
        let upload = Upload {
            ready: io::Cursor::new(ready),
            stream,
            progress: progress.clone(),
            chunked,
            deadline: Instant::now() + bound,
        };
        (upload, progress)
    }

    /// Reads from the caller, waiting at most [`IDLE`] and never past the deadline; the
    /// caller's failure if it left or went quiet.
    fn read_caller(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = self.deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Err(self.progress.failed(CallerFault::Left));
        }
        let _ = self.stream.set_read_timeout(Some(wait.min(IDLE)));
        match self.stream.read(buf) {
            Ok(0) | Err(_) => Err(self.progress.failed(CallerFault::Left)),
            Ok(n) => Ok(n),
        }
    }

    /// More bytes from the caller into the chunked decoder, what it took already dropped.
    fn fill(&mut self) -> io::Result<()> {
        let mut piece = [0u8; 64 * 1024];
        let n = self.read_caller(&mut piece)?;
        if let Some(c) = self.chunked.as_mut() {
            c.raw.drain(..c.at);
            c.at = 0;
            c.raw.extend_from_slice(&piece[..n]);
        }
        Ok(())
    }

    /// The next decoded bytes of a chunked body.
    fn read_chunked(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(c) = self.chunked.as_mut() else {
                return Ok(0);
            };
            match c.step(buf) {
                Step::Read(n) => return Ok(n),
                Step::Again => {}
                Step::Fill => self.fill()?,
                Step::Done => {
                    self.progress.left.store(0, Ordering::SeqCst);
                    return Ok(0);
                }
                Step::Fail(fault) => return Err(self.progress.failed(fault)),
            }
        }
    }
}

/// What one step of the chunked decoder came to.
enum Step {
    /// Bytes of data into the caller's buffer.
    Read(usize),
    /// A state changed: step again.
    Again,
    /// More bytes from the connection are needed.
    Fill,
    Done,
    Fail(CallerFault),
}

impl Chunked {
    fn take_framing(&mut self, n: usize) {
        self.at += n;
        self.framing += n as u64;
    }

    /// A failure if the framing has grown past what the data allows.
    fn over_budget(&self) -> Option<Step> {
        (self.framing > FRAMING_ALLOWANCE + FRAMING_PER_BYTE * self.data)
            .then_some(Step::Fail(CallerFault::Malformed))
    }

    fn step(&mut self, buf: &mut [u8]) -> Step {
        let raw = &self.raw[self.at..];
        match self.state {
            ChunkState::Done => Step::Done,
            ChunkState::Data(0) => {
                self.state = ChunkState::DataEnd;
                Step::Again
            }
            ChunkState::Data(_) if raw.is_empty() => Step::Fill,
            ChunkState::Data(n) => {
                let k = buf
                    .len()
                    .min(raw.len())
                    .min(usize::try_from(n).unwrap_or(usize::MAX));
                buf[..k].copy_from_slice(&raw[..k]);
                self.at += k;
                self.data += k as u64;
                self.state = ChunkState::Data(n - k as u64);
                Step::Read(k)
            }
            ChunkState::DataEnd if raw.len() < 2 => Step::Fill,
            ChunkState::DataEnd if raw.starts_with(b"\r\n") => {
                self.take_framing(2);
                self.state = ChunkState::Size;
                self.over_budget().unwrap_or(Step::Again)
            }
            ChunkState::DataEnd => Step::Fail(CallerFault::Malformed),
            ChunkState::Size if raw.is_empty() => Step::Fill,
            // httparse takes a line without digits for a size of 0: the body's end.
            ChunkState::Size if !raw[0].is_ascii_hexdigit() => Step::Fail(CallerFault::Malformed),
            ChunkState::Size => match httparse::parse_chunk_size(raw) {
                Ok(httparse::Status::Complete((used, _))) if used > MAX_SIZE_LINE_BYTES => {
                    Step::Fail(CallerFault::Malformed)
                }
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.take_framing(used);
                    self.state = ChunkState::Trailers;
                    self.over_budget().unwrap_or(Step::Again)
                }
                Ok(httparse::Status::Complete((_, size))) if size > self.room => {
                    Step::Fail(CallerFault::TooLarge)
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    self.take_framing(used);
                    self.room -= size;
                    self.state = ChunkState::Data(size);
                    self.over_budget().unwrap_or(Step::Again)
                }
                Ok(httparse::Status::Partial) if raw.len() <= MAX_SIZE_LINE_BYTES => Step::Fill,
                _ => Step::Fail(CallerFault::Malformed),
            },
            ChunkState::Trailers => {
                let room = MAX_TRAILER_BYTES - self.trailers;
                match raw.windows(2).position(|w| w == b"\r\n") {
                    Some(end) if end + 2 > room => Step::Fail(CallerFault::Malformed),
                    Some(0) => {
                        self.take_framing(2);
                        self.state = ChunkState::Done;
                        Step::Again
                    }
                    Some(end) => {
                        self.take_framing(end + 2);
                        self.trailers += end + 2;
                        Step::Again
                    }
                    None if raw.len() >= room => Step::Fail(CallerFault::Malformed),
                    None => Step::Fill,
                }
            }
        }
    }
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.chunked.is_some() {
            let n = self.ready.read(buf)?;
            return if n > 0 { Ok(n) } else { self.read_chunked(buf) };
        }
        let left = self.progress.left.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut n = self.ready.read(&mut buf[..want])?;
        if n == 0 {
            // The caller leaving before its body's end fails the upstream request: it is
            // not sent short.
            n = self.read_caller(&mut buf[..want])?;
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

    const BOUND: Duration = Duration::from_secs(10);

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
        let (mut upload, progress) = Upload::new(agent, b"abc".to_vec(), 9, BOUND);
        let mut body = Vec::new();
        upload.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"abcdefghi");
        assert_eq!(progress.left.load(Ordering::SeqCst), 0);
        assert_eq!(progress.fault(), None);
    }

    #[test]
    fn a_caller_gone_mid_body_is_an_error_not_a_short_body() {
        let (mut caller, agent) = pair();
        caller.write_all(b"de").unwrap();
        drop(caller);
        let (mut upload, progress) = Upload::new(agent, b"abc".to_vec(), 9, BOUND);
        let mut body = Vec::new();
        let e = upload.read_to_end(&mut body).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(progress.left.load(Ordering::SeqCst), 4);
        assert_eq!(progress.fault(), Some(CallerFault::Left));
    }

    /// The rest of a chunked body whose first chunks were `ab` and whose next chunk is 3
    /// bytes, `c` of them read: what `wire` makes of it.
    fn chunked_rest(wire: &[u8], room: u64) -> (io::Result<Vec<u8>>, Progress) {
        let (mut caller, agent) = pair();
        caller.write_all(wire).unwrap();
        drop(caller);
        let (mut upload, progress) =
            Upload::chunked(agent, (b"ab".to_vec(), 3), b"c".to_vec(), room, BOUND);
        let mut body = Vec::new();
        let read = upload.read_to_end(&mut body).map(|_| body);
        (read, progress)
    }

    #[test]
    fn a_chunked_body_is_decoded_to_its_last_chunk_and_no_further() {
        let wire = b"de\r\n4;ext=1\r\nfghi\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let (body, progress) = chunked_rest(wire, 100);
        assert_eq!(body.unwrap(), b"abcdefghi");
        assert!(!progress.unfinished());
        assert_eq!(progress.fault(), None);
    }

    #[test]
    fn a_body_of_one_byte_chunks_is_taken() {
        // 5 framing bytes a data byte, 2 MiB of framing in all: more than the allowance
        // alone, within what the data adds to it.
        let mut wire = b"de\r\n".to_vec();
        for _ in 0..400_000 {
            wire.extend_from_slice(b"1\r\nz\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let (body, progress) = chunked_rest(&wire, 1 << 20);
        let body = body.unwrap();
        assert_eq!(body.len(), 5 + 400_000);
        assert!(!progress.unfinished());
    }

    #[test]
    fn a_chunked_body_fails_on_bad_framing_growth_or_an_early_end() {
        let long_extension =
            [b"de\r\n1;".as_slice(), &[b'x'; 2000], b"\r\nf\r\n0\r\n\r\n"].concat();
        let long_trailers = [b"de\r\n0\r\n".as_slice(), &b"X-T: 1234567\r\n".repeat(2000)].concat();
        let cases: [(&[u8], u64, CallerFault); 9] = [
            // A size line without digits is not the last chunk.
            (b"de\r\n\r\nfghi\r\n0\r\n\r\n", 100, CallerFault::Malformed),
            (
                b"de\r\n;x\r\nfghi\r\n0\r\n\r\n",
                100,
                CallerFault::Malformed,
            ),
            (&long_extension, 100, CallerFault::Malformed),
            (&long_trailers, 100, CallerFault::Malformed),
            (b"deX\r\n0\r\n\r\n", 100, CallerFault::Malformed),
            (
                b"de\r\nzz\r\nhello\r\n0\r\n\r\n",
                100,
                CallerFault::Malformed,
            ),
            (b"de\r\n4\r\nfghi\r\n0\r\n\r\n", 3, CallerFault::TooLarge),
            (b"de\r\n4\r\nfg", 100, CallerFault::Left),
            (b"de\r\n0\r\nX-Trailer: 1\r\n", 100, CallerFault::Left),
        ];
        for (wire, room, fault) in cases {
            let (body, progress) = chunked_rest(wire, room);
            let shown = String::from_utf8_lossy(wire);
            assert!(body.is_err(), "{shown}: no error");
            assert_eq!(progress.fault(), Some(fault), "{shown}");
            assert!(progress.unfinished(), "{shown}");
            let (status, _) = fault.answer();
            assert_eq!(
                status,
                match fault {
                    CallerFault::Left => 408,
                    CallerFault::Malformed => 400,
                    CallerFault::TooLarge => 413,
                }
            );
        }
    }
}
