//! The agent's Unix side: SIGTERM, SIGINT and SIGHUP through a pipe, one thread polling
//! the listeners and that pipe, systemd's readiness notice, private directories.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lwolf_auth::Client;

use super::admission::Blocking;
use super::{http, proxy, reload, socket, spawn, unix_socket, Admission, Agent, Listener};
use crate::output::Failure;

/// The signals the agent acts on, as flags, and a pipe that wakes the poll when one comes.
pub(super) struct Signals {
    read: UnixStream,
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, Failure> {
        let pipe_error =
            |e: std::io::Error| Failure::io(format!("cannot make the signal pipe: {e}"));
        let (read, write) = UnixStream::pair().map_err(pipe_error)?;
        read.set_nonblocking(true).map_err(pipe_error)?;
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        for (signal, flag) in [
            (signal_hook::consts::SIGTERM, &term),
            (signal_hook::consts::SIGINT, &term),
            (signal_hook::consts::SIGHUP, &hup),
        ] {
            let registered = signal_hook::flag::register(signal, Arc::clone(flag)).and_then(|_| {
                let pipe = write.try_clone()?;
                signal_hook::low_level::pipe::register(signal, pipe)
            });
            registered.map_err(|e| Failure::io(format!("cannot handle signals: {e}")))?;
        }
        Ok(Signals { read, term, hup })
    }
}

/// Accepts on both listeners until SIGTERM or SIGINT; a SIGHUP reloads the settings. Each
/// wait is bounded.
pub(super) fn accept_until_stopped(
    agent: &Arc<Agent>,
    signals: &Signals,
    unix: Option<&unix_socket::Listener>,
    tcp: Option<&TcpListener>,
    make_client: &dyn Fn() -> Result<Client, Failure>,
) {
    if let Some(tcp) = tcp {
        let _ = tcp.set_nonblocking(true);
    }
    let mut drained = [0u8; 64];
    let mut socket_admission = Admission::new(Listener::Socket);
    let mut proxy_admission = Admission::new(Listener::Proxy);
    while !signals.term.load(Ordering::SeqCst) {
        let unix_ready = unix.filter(|_| socket_admission.ready(agent));
        let tcp_ready = tcp.filter(|_| proxy_admission.ready(agent));
        let mut fds = Vec::with_capacity(3);
        fds.push(rustix::event::PollFd::new(
            &signals.read,
            rustix::event::PollFlags::IN,
        ));
        if let Some(unix) = unix_ready {
            fds.push(rustix::event::PollFd::new(
                &unix.listener,
                rustix::event::PollFlags::IN,
            ));
        }
        if let Some(tcp) = tcp_ready {
            fds.push(rustix::event::PollFd::new(
                tcp,
                rustix::event::PollFlags::IN,
            ));
        }
        // A full listener left out of the poll is looked at again soon.
        let left_out = fds.len() < 1 + usize::from(unix.is_some()) + usize::from(tcp.is_some());
        let timeout = rustix::event::Timespec {
            tv_sec: if left_out { 0 } else { 1 },
            tv_nsec: if left_out { 5_000_000 } else { 0 },
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        drop(fds);
        while let Ok(n) = (&signals.read).read(&mut drained) {
            if n == 0 {
                break;
            }
        }
        if signals.hup.swap(false, Ordering::SeqCst) {
            reload(agent, make_client);
        }
        if signals.term.load(Ordering::SeqCst) {
            break;
        }
        if let Some(unix) = unix_ready {
            accept_all(
                agent,
                || unix.listener.accept().map(|(s, _)| s),
                socket::serve_unix,
                &mut socket_admission,
            );
        }
        if let Some(tcp) = tcp_ready {
            accept_all(
                agent,
                || tcp.accept().map(|(s, _)| s),
                proxy::serve,
                &mut proxy_admission,
            );
        }
    }
}

/// Connections taken from one listener before the others (and the signals) get their turn.
const ACCEPTS_PER_ROUND: usize = 64;

/// Accepts the connections waiting, at most [`ACCEPTS_PER_ROUND`] (a flood of connections on
/// one listener must not keep the other, or a SIGTERM, waiting); after an error other than
/// "none waiting" (out of descriptors, say) it pauses a moment rather than spin on a listener
/// that stays readable. It stops when the listener fills up (see [`Admission`]).
fn accept_all<S>(
    agent: &Arc<Agent>,
    accept: impl Fn() -> std::io::Result<S>,
    serve: fn(&Agent, S),
    admission: &mut Admission,
) where
    S: http::Stream + Send + 'static + Blocking,
{
    for _ in 0..ACCEPTS_PER_ROUND {
        if !admission.ready(agent) {
            return;
        }
        match accept() {
            Ok(stream) => spawn(agent, stream, serve, admission.listener()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                agent
                    .log
                    .debug(|| format!("cannot accept a connection: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
        }
    }
}

impl Blocking for UnixStream {
    fn set_blocking(&self) -> std::io::Result<()> {
        self.set_nonblocking(false)
    }
}

/// Makes `dir` (0700) if it is missing.
pub(super) fn create_private_dir(dir: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Failure::io(format!(
            "cannot create the directory {}: {e}",
            dir.display()
        ))),
    }
}

/// Tells systemd (`Type=notify`) how the agent is, when it runs under it.
pub(super) fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            match std::os::unix::net::SocketAddr::from_abstract_name(name) {
                Ok(addr) => socket.send_to_addr(state.as_bytes(), &addr),
                Err(e) => Err(e),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            Ok(0)
        }
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
}
