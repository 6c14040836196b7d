//! One connection to the fleet's Redis, every exchange bounded as a whole.
//!
//! A timeout on each `read()` is no bound: a server (or anything in the path of
//! `redis://`) that sends a byte every half second holds such a reader forever. So each
//! exchange here has a deadline, and every read and write is given only what is left of
//! it: connecting (name resolution included, on a thread of its own, as ureq does), TLS,
//! `AUTH` and `SELECT` are one exchange, and each command with its reply is another. A
//! reply is bounded while it is read, never read whole before its size is checked.
//!
//! The commands are encoded and the replies parsed by the `redis` crate; only the socket
//! is ours.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Cmd, FromRedisValue, Value};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::cache_url::CacheUrl;
use crate::entry::MAX_VALUE_BYTES;

/// The largest reply read: a sealed entry and the RESP framing around it.
pub(crate) const MAX_REPLY_BYTES: u64 = MAX_VALUE_BYTES as u64 + 1024;

/// Why an exchange failed, in a few words (never a password: none is ever in it).
#[derive(Debug)]
pub(crate) enum WireError {
    /// The reply was larger than any entry can be: the connection is unusable (the rest of
    /// the reply is unread), the server may be fine.
    Oversized,
    /// Anything else: the server is not to be relied on.
    Failed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Oversized => write!(f, "a reply larger than {MAX_REPLY_BYTES} bytes"),
            WireError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                WireError::Failed("timed out".to_owned())
            }
            io::ErrorKind::FileTooLarge => WireError::Oversized,
            _ => WireError::Failed(e.to_string()),
        }
    }
}

/// An open connection, set up (`AUTH`, `SELECT`) and ready for commands.
pub(crate) struct Conn {
    sock: TcpStream,
    tls: Option<ClientConnection>,
    parser: redis::Parser,
}

impl Conn {
    /// Connects to `endpoint` (over TLS with `tls`) and sets the connection up, all within
    /// `bound`.
    pub(crate) fn open(
        endpoint: &CacheUrl,
        tls: Option<Arc<ClientConfig>>,
        bound: Duration,
    ) -> Result<Conn, WireError> {
        let deadline = Instant::now() + bound;
        let addrs = resolve(&endpoint.host, endpoint.port, deadline)?;
        let mut last = WireError::Failed("the name resolved to no address".to_owned());
        let mut sock = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, left(deadline)?) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e.into(),
            }
        }
        let sock = sock.ok_or(last)?;
        let _ = sock.set_nodelay(true);
        let tls = match tls {
            Some(config) => {
                let name = ServerName::try_from(endpoint.host.trim_matches(['[', ']']).to_owned())
                    .map_err(|_| {
                        WireError::Failed("the host is no valid TLS server name".to_owned())
                    })?;
                Some(
                    ClientConnection::new(config, name)
                        .map_err(|e| WireError::Failed(format!("tls: {e}")))?,
                )
            }
            None => None,
        };
        let mut conn = Conn {
            sock,
            tls,
            parser: redis::Parser::new(),
        };
        if let Some(password) = &endpoint.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &endpoint.username {
                auth.arg(user.as_str());
            }
            auth.arg(password.as_str());
            conn.exchange::<()>(&auth, deadline)?;
        }
        if endpoint.db != 0 {
            conn.exchange::<()>(redis::cmd("SELECT").arg(endpoint.db), deadline)?;
        }
        Ok(conn)
    }

    /// Sends `cmd` and reads its reply, all within `bound`.
    pub(crate) fn run<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        bound: Duration,
    ) -> Result<T, WireError> {
        self.exchange(cmd, Instant::now() + bound)
    }

    fn exchange<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<T, WireError> {
        let packed = cmd.get_packed_command();
        let mut timed = Timed {
            sock: &self.sock,
            deadline,
            read: 0,
        };
        let value = match &mut self.tls {
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls, &mut timed);
                stream.write_all(&packed)?;
                stream.flush()?;
                self.parser.parse_value(&mut stream)
            }
            None => {
                timed.write_all(&packed)?;
                self.parser.parse_value(&mut timed)
            }
        };
        let value = value.map_err(|e| match e.kind() {
            _ if timed.read >= MAX_REPLY_BYTES => WireError::Oversized,
            redis::ErrorKind::Io => WireError::Failed(
                e.detail()
                    .map_or_else(|| "i/o error".to_owned(), |d| d.to_owned()),
            ),
            _ => WireError::Failed(format!("not a Redis reply ({})", e.category())),
        })?;
        if let Value::ServerError(e) = &value {
            // Redis's own words (`NOAUTH`, `OOM`, `WRONGPASS`...): never an argument of ours.
            return Err(WireError::Failed(format!(
                "the server answered {}",
                e.code()
            )));
        }
        redis::from_redis_value(value)
            .map_err(|_| WireError::Failed("an unexpected reply".to_owned()))
    }
}

/// The socket as an exchange reads and writes it: each call gets what is left of the
/// exchange's deadline, and the reply is cut off past [`MAX_REPLY_BYTES`].
struct Timed<'a> {
    sock: &'a TcpStream,
    deadline: Instant,
    read: u64,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read >= MAX_REPLY_BYTES {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.sock.set_read_timeout(Some(left_io(self.deadline)?))?;
        let room = usize::try_from(MAX_REPLY_BYTES - self.read).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let got = (&mut &*self.sock).read(&mut buf[..n])?;
        self.read += got as u64;
        Ok(got)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(left_io(self.deadline)?))?;
        (&mut &*self.sock).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn left_io(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

fn left(deadline: Instant) -> Result<Duration, WireError> {
    left_io(deadline).map_err(WireError::from)
}

/// `host`'s addresses: an IP literal or `localhost` as they are (loopback is never asked of
/// a resolver), any other name on a thread of its own, waited for until `deadline` (a hung
/// lookup is left behind, as ureq leaves it).
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, WireError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if crate::url::is_localhost_name(host) {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = (host.to_owned(), port);
    std::thread::Builder::new()
        .name("lwolf-resolve".to_owned())
        .spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })
        .map_err(|e| WireError::Failed(format!("cannot start a resolver thread: {e}")))?;
    match rx.recv_timeout(left(deadline)?) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(WireError::Failed(format!("cannot resolve the host: {e}"))),
        Err(_) => Err(WireError::Failed("resolving the host timed out".to_owned())),
    }
}
