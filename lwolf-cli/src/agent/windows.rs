//! The agent's Windows side: the token API on a named pipe (what the socket is on Unix:
//! `--socket \\.\pipe\NAME`, its DACL letting in the agent's user and `--allow`'s), the
//! proxy and the sink, Ctrl+C or Ctrl+Break to stop (closing the console ends the process at
//! once: the handler returns before the requests in flight are done), and a thread blocked
//! on the proxy's listener. No SIGHUP: restart the agent to read the secret files
//! again.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::path::Path;

use lwolf_auth::unversioned::{PipeListener, PipeStream};

use super::{proxy, socket, spawn, Admission, Agent, Listener, FIRST_HEAD_TIMEOUT};
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

/// `--socket` on Windows names a pipe (`\\.\pipe\NAME`); `--socket-group` (a Unix mode)
/// has no meaning here.
pub(super) fn check_options(options: &super::Options) -> Result<(), Failure> {
    if options.socket_group.is_some() {
        return Err(Failure::usage(
            "--socket-group is for a Unix socket; on Windows, --allow names the users and \
             groups the pipe lets in",
        ));
    }
    if let Some(name) = &options.socket {
        if !name.to_string_lossy().starts_with(PIPE_PREFIX) || name.as_os_str().len() <= 9 {
            return Err(Failure::usage(format!(
                "on Windows --socket names a pipe: {PIPE_PREFIX}NAME"
            )));
        }
    }
    if !options.allow.is_empty() && options.socket.is_none() {
        return Err(Failure::usage("--allow is for --socket"));
    }
    Ok(())
}

/// Where pipes' names are.
const PIPE_PREFIX: &str = r"\\.\pipe\";

/// The pipe `name`, which the agent's user and the accounts of `--allow` may open.
pub(super) fn bind_pipe(name: &Path, allow: &[String]) -> Result<PipeListener, Failure> {
    PipeListener::bind(&name.to_string_lossy(), allow).map_err(|e| {
        Failure::io(format!(
            "cannot serve the pipe {} (another agent, or another program, may have it): {e}",
            name.display()
        ))
    })
}

/// Serves a client of the pipe whose user (or one of whose groups) the pipe lets in; others
/// are refused before their request is looked at (Windows names a pipe client only once
/// its first bytes were read). The pipe's DACL keeps them out already: this is the check
/// `SO_PEERCRED` is on Unix, made again.
fn serve_pipe(agent: &Agent, mut stream: PipeStream) {
    stream.set_read_timeout(Some(FIRST_HEAD_TIMEOUT));
    match stream.client_sids() {
        Ok(sids) if sids.iter().any(|sid| agent.pipe_sids.contains(sid)) => {
            socket::serve(agent, stream);
        }
        Ok(sids) => {
            let user = sids.first().map_or("?", String::as_str);
            socket::refuse_peer(agent, stream, &format!("{user} is not allowed"));
        }
        // Nothing came (within the first head's 3 s), or the client left: closed, as a
        // socket's silent caller is.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::UnexpectedEof
            ) => {}
        Err(e) => socket::refuse_peer(agent, stream, &format!("its user is unknown ({e})")),
    }
}

/// Accepts on the pipe and the proxy's listener (each on a thread of its own) until Ctrl+C,
/// then wakes the proxy's thread with a connection of its own and lets both go. Fails if a
/// thread cannot start.
pub(super) fn accept_until_stopped(
    agent: &Arc<Agent>,
    signals: &Signals,
    pipe: Option<PipeListener>,
    tcp: Option<&TcpListener>,
) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| Failure::io(format!("cannot accept for the proxy: {e}"));
    let mut acceptor = None;
    let mut pipe_thread = None;
    if let Some(mut pipe) = pipe {
        let agent = Arc::clone(agent);
        let thread = std::thread::Builder::new()
            .name("lwolf-agent-pipe".into())
            .spawn(move || {
                let mut admission = Admission::new(Listener::Socket);
                while !agent.stopping() {
                    if !admission.ready(&agent) {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    match pipe.accept(STOP_POLL) {
                        Ok(Some(stream)) => spawn(&agent, stream, serve_pipe, Listener::Socket),
                        Ok(None) => {}
                        Err(e) => {
                            agent
                                .log
                                .debug(|| format!("cannot accept a pipe client: {e}"));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(|e| Failure::io(format!("cannot accept on the pipe: {e}")))?;
        pipe_thread = Some(thread);
    }
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
    let until = Instant::now() + ACCEPTOR_GRACE;
    if let Some((thread, addr)) = acceptor {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // It looks at the stop flag every STOP_POLL; the pipe is closed as it leaves.
    if let Some(thread) = pipe_thread {
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
