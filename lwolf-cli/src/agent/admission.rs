//! Which connections the agent takes: at most [`MAX_CONNECTIONS`] per listener, each held
//! by a [`Slot`] until its thread ends, a listener that is full left to the kernel's
//! backlog for a moment ([`Admission`]), and a thread for each connection taken.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{http, metrics, Agent, WRITE_TIMEOUT};

/// Connections served at once by each listener (the socket's and the proxy's apart, so
/// that callers of one, who may not even hold its key, cannot crowd out the other); one
/// more waits for a slot (see [`Admission`]), then is answered 503 and closed.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// How long connections past [`MAX_CONNECTIONS`] wait for a slot before they are refused.
const SLOT_WAIT: Duration = Duration::from_secs(1);
/// Which listener a connection came in on.
#[derive(Clone, Copy)]
pub(super) enum Listener {
    Socket = 0,
    Proxy = 1,
}

/// A listener's connection slot, given back when the connection's thread ends (a panic
/// included).
struct Slot {
    agent: Arc<Agent>,
    listener: Listener,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.agent.connections[self.listener as usize].fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection, served on a thread of its own (or refused with a 503 when there are too
/// many already: see [`Admission`]).
pub(super) fn spawn<S>(agent: &Arc<Agent>, stream: S, serve: fn(&Agent, S), listener: Listener)
where
    S: http::Stream + Send + 'static + Blocking,
{
    let _ = stream.set_blocking();
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut stream = stream;
    if !take_slot(agent, listener) {
        agent.metrics.refused(metrics::Refused::Busy);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        http::write_refusal(
            &mut stream,
            &http::Refusal::new(503, "the agent serves too many connections; try again"),
            false,
        );
        return;
    }
    let slot = Slot {
        agent: Arc::clone(agent),
        listener,
    };
    let started = std::thread::Builder::new()
        .name("lwolf-agent-conn".into())
        .spawn(move || {
            serve(&slot.agent, stream);
            drop(slot);
        });
    if started.is_err() {
        // The closure, and the slot in it, were dropped with the error.
        agent
            .log
            .info("cannot start a thread for a connection; it is closed");
    }
}

/// Takes one of the listener's [`MAX_CONNECTIONS`] slots, if one is free.
fn take_slot(agent: &Agent, listener: Listener) -> bool {
    agent.connections[listener as usize]
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_CONNECTIONS).then_some(n + 1)
        })
        .is_ok()
}

/// When a listener takes its next connection. A full listener is left alone for
/// [`SLOT_WAIT`], its callers waiting in the kernel's backlog: a slot comes free only once
/// the thread that held it runs again, which a busy machine can put off, and a burst past
/// the bound should wait for that rather than be refused. A listener full for longer takes
/// and refuses its callers (503) until a slot comes free. The other listener is not held up.
pub(super) struct Admission {
    listener: Listener,
    full_since: Option<Instant>,
}

impl Admission {
    pub(super) fn new(listener: Listener) -> Admission {
        Admission {
            listener,
            full_since: None,
        }
    }

    #[cfg_attr(windows, allow(dead_code))]
    pub(super) fn listener(&self) -> Listener {
        self.listener
    }

    /// Whether to accept now.
    pub(super) fn ready(&mut self, agent: &Agent) -> bool {
        if agent.connections[self.listener as usize].load(Ordering::SeqCst) < MAX_CONNECTIONS {
            self.full_since = None;
            return true;
        }
        self.full_since.get_or_insert_with(Instant::now).elapsed() >= SLOT_WAIT
    }
}

/// Streams from a non-blocking listener are made blocking again (each wait then bounded by
/// its timeouts).
pub(super) trait Blocking {
    fn set_blocking(&self) -> std::io::Result<()>;
}

#[cfg(windows)]
impl Blocking for lwolf_auth::unversioned::PipeStream {
    fn set_blocking(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Blocking for TcpStream {
    fn set_blocking(&self) -> std::io::Result<()> {
        let _ = self.set_nodelay(true);
        self.set_nonblocking(false)
    }
}
