//! The socket's file on Unix: made with its mode (0600, or 0660 for `--socket-group`), or
//! passed by systemd; a stale one of ours replaced, and ours removed when the agent stops.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::output::Failure;

/// The socket, and the file it is at (removed when the agent stops, if it is still ours).
pub(crate) struct Listener {
    pub(crate) listener: UnixListener,
    pub(crate) path: PathBuf,
    /// The socket file this agent made (device, inode), removed when it stops; `None` for
    /// one systemd passed, which stays systemd's.
    id: Option<(u64, u64)>,
}

impl Listener {
    /// Binds `path`: 0600, or 0660 with the group `group`. A stale socket of ours is
    /// replaced; a live one (another agent), another user's, or any other file is not.
    pub(crate) fn bind(path: &Path, group: Option<&str>) -> Result<Listener, Failure> {
        let shown = path.display();
        let gid = match group {
            None => None,
            Some(name) => Some(
                uzers::get_group_by_name(name)
                    .map(|g| g.gid())
                    .or_else(|| name.parse::<u32>().ok())
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--socket-group {:?} is not a group of this host",
                            name.chars().take(64).collect::<String>()
                        ))
                    })?,
            ),
        };
        if let Ok(meta) = fs::symlink_metadata(path) {
            let ours = meta.uid() == rustix::process::geteuid().as_raw();
            if !meta.file_type().is_socket() || !ours {
                return Err(Failure::io(format!(
                    "{shown} exists and is not a socket of this user's; not replacing it"
                )));
            }
            if served(path) {
                return Err(Failure::io(format!(
                    "{shown} is served by another process (another agent?)"
                )));
            }
            fs::remove_file(path)
                .map_err(|e| Failure::io(format!("cannot remove the stale socket {shown}: {e}")))?;
        }
        // Made with its final mode (0600, or 0660 with a group) by the umask at bind: no
        // moment when another user could connect, and no chmod by name that a symbolic link
        // swapped in could redirect. The group is changed without following one either.
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o777 & !mode));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener =
            bound.map_err(|e| Failure::io(format!("cannot listen on the socket {shown}: {e}")))?;
        if let Some(gid) = gid {
            rustix::fs::chownat(
                rustix::fs::CWD,
                path,
                None,
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| {
                Failure::io(format!("cannot give the socket {shown} to the group: {e}"))
            })?;
        }
        let meta = fs::symlink_metadata(path)
            .map_err(|e| Failure::io(format!("cannot read the socket {shown}: {e}")))?;
        if !meta.file_type().is_socket() || meta.mode() & 0o777 != mode {
            return Err(Failure::io(format!(
                "{shown} changed while it was made; not serving it"
            )));
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| Failure::io(format!("cannot listen on the socket {shown}: {e}")))?;
        Ok(Listener {
            listener,
            path: path.to_owned(),
            id: Some((meta.dev(), meta.ino())),
        })
    }

    /// The listening Unix socket systemd passed for `path` (socket activation: the first of
    /// `LISTEN_FDS`, meant for this process by `LISTEN_PID`), if there is one. Its mode and
    /// group are the `.socket` unit's (`SocketMode=`, `SocketGroup=`); peers are checked as
    /// on a socket of the agent's own.
    pub(crate) fn inherited(path: &Path) -> Result<Option<Listener>, Failure> {
        let mut passed = listenfd::ListenFd::from_env();
        if passed.len() == 0 {
            return Ok(None);
        }
        let listener = passed
            .take_unix_listener(0)
            .map_err(|e| Failure::io(format!("the socket systemd passed is not usable: {e}")))?
            .ok_or_else(|| {
                Failure::io("systemd passed a descriptor that is not a listening Unix socket")
            })?;
        let bound = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned));
        if bound.as_deref() != Some(path) {
            return Err(Failure::io(format!(
                "systemd passed the socket {}, not --socket {}",
                bound.as_deref().unwrap_or(Path::new("(unnamed)")).display(),
                path.display()
            )));
        }
        listener.set_nonblocking(true).map_err(|e| {
            Failure::io(format!(
                "cannot listen on the socket {}: {e}",
                path.display()
            ))
        })?;
        Ok(Some(Listener {
            listener,
            path: path.to_owned(),
            id: None,
        }))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Only the socket this agent made: another may have taken the name since.
        if let (Ok(meta), Some(id)) = (fs::symlink_metadata(&self.path), self.id) {
            if (meta.dev(), meta.ino()) == id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Whether a process listens on the socket at `path`: a connection tried without waiting, so
/// a live listener whose queue is full (which a blocking connect would wait on) counts too.
fn served(path: &Path) -> bool {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let Ok(socket) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(address) = SocketAddrUnix::new(path) else {
        return false;
    };
    match rustix::net::connect(&socket, &address) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INPROGRESS,
    }
}
