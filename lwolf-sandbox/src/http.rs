//! The sandbox's HTTP/1.1 server: a thread per connection, connections kept alive, at most
//! 1024 at once; what a request and an answer are on the wire is `message`'s.
//!
//! It replaces tiny_http 0.12, whose connection pool could queue a new connection behind
//! busy ones (a lost wake-up in its task pool) and leave it unanswered until one of them
//! closed: a client pool keeping more than 3 connections alive then saw requests hang.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::message::{wire, Connection, Method, Refusal, Reply, Request, IO_TIMEOUT};

/// Connections served at once; one more is answered `503` and closed.
const MAX_CONNECTIONS: usize = 1024;
/// How long stopping waits for handlers that are still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
                Ok(_) if open.len() >= MAX_CONNECTIONS => {
                    Err(format!("more than {MAX_CONNECTIONS} connections"))
                }
                Ok(handle) => {
                    open.insert(id, handle);
                    Ok(())
                }
                Err(e) => Err(format!("cannot hold the connection: {e}")),
            }
        };
        if let Err(why) = registered {
            log::warn!("refused a connection: {why}");
            refuse_busy(stream, &why);
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
            let why = format!("cannot start a connection thread: {e}");
            log::warn!("{why}");
            if let Some(stream) = shared.open.lock().remove(&id) {
                refuse_busy(stream, &why);
            }
        }
    }
}

/// A `503` whose body says why, so that a caller (or a test that sees it relayed) can tell
/// the sandbox's limit from its host's.
fn refuse_busy(mut stream: TcpStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let reply = Reply {
        status: 503,
        headers: vec![
            ("Retry-After", "1".into()),
            ("Content-Type", "text/plain".into()),
        ],
        body: format!("sandbox busy: {why}\n").into_bytes(),
    };
    let _ = stream.write_all(&wire(&reply, false, false));
}

/// Requests on one connection, one after another, until either side closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut conn = Connection::new(stream);
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
