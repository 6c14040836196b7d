//! The agent's Windows side: the proxy and the sink (no socket: a named pipe is on paper in
//! docs/agent.md), Ctrl+C or Ctrl+Break to stop (closing the console ends the process at
//! once: the handler returns before the requests in flight are done), and a thread blocked
//! on the proxy's listener. No SIGHUP: restart the agent to read the secret files
//! again.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{proxy, spawn, Admission, Agent, Listener};
use crate::output::Failure;

/// How often the waiting thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long stopping waits for the accepting thread to wake and leave.
const ACCEPTOR_GRACE: Duration = Duration::from_secs(2);

/// The stop flag, set by the console's control handler.
pub(super) struct Signals {
    term: Arc<AtomicBool>,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, Failure> {
        let term = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&term);
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .map_err(|e| Failure::io(format!("cannot handle Ctrl+C: {e}")))?;
        Ok(Signals { term })
    }
}

/// Accepts on the proxy's listener (on a thread of its own) until Ctrl+C, then wakes that
/// thread with a connection of its own and lets it go. Fails if that thread cannot start.
pub(super) fn accept_until_stopped(
    agent: &Arc<Agent>,
    signals: &Signals,
    tcp: Option<&TcpListener>,
) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| Failure::io(format!("cannot accept for the proxy: {e}"));
    let mut acceptor = None;
    if let Some(tcp) = tcp {
        let listener = tcp.try_clone().map_err(cannot)?;
        let addr = tcp.local_addr().map_err(cannot)?;
        let agent = Arc::clone(agent);
        let thread = std::thread::Builder::new()
            .name("lwolf-agent-accept".into())
            .spawn(move || {
                let mut admission = Admission::new(Listener::Proxy);
                loop {
                    // A full listener's callers wait in the backlog a moment (see Admission).
                    while !admission.ready(&agent) && !agent.stopping() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let stream = listener.accept().map(|(s, _)| s);
                    if agent.stopping() {
                        return;
                    }
                    match stream {
                        Ok(stream) => spawn(&agent, stream, proxy::serve, Listener::Proxy),
                        Err(e) => {
                            agent
                                .log
                                .debug(|| format!("cannot accept a connection: {e}"));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(cannot)?;
        acceptor = Some((thread, addr));
    }
    while !signals.term.load(Ordering::SeqCst) {
        std::thread::sleep(STOP_POLL);
    }
    agent.stopping.store(true, Ordering::SeqCst);
    if let Some((thread, addr)) = acceptor {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        let until = Instant::now() + ACCEPTOR_GRACE;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Makes `dir` if it is missing. It gets the ACL its parent passes down (the user's profile
/// keeps other users out).
pub(super) fn create_private_dir(dir: &std::path::Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::io(format!(
            "cannot create the directory {}: {e}",
            dir.display()
        ))
    })
}

/// systemd is not there: nothing to tell.
pub(super) fn notify_systemd(_state: &str) {}
