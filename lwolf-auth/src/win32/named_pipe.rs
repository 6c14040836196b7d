//! A named pipe server, for the `lwolf` agent's token API on Windows (what its Unix socket
//! is elsewhere): a pipe only the users given may open, whose every wait is bounded. The
//! pipe is opened for overlapped I/O because a synchronous pipe has no read timeout.
//! Part of `win32`, the crate's only `unsafe` on Windows.

#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_IO_PENDING,
    ERROR_NO_DATA, ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, HANDLE, INVALID_HANDLE_VALUE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::{
    RevertToSelf, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY,
};
use windows_sys::Win32::Storage::FileSystem::{
    ReadFile, WriteFile, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX,
    SECURITY_ANONYMOUS,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, ImpersonateNamedPipeClient,
    PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentThread, OpenThreadToken, WaitForSingleObject, INFINITE,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

use super::{account_sid, canonical_sid, own_sid, security_descriptor, token_sids, wide};

/// What a user named besides the owner may do with the pipe: read, write, and read and
/// set its attributes; not `FILE_CREATE_PIPE_INSTANCE`, so that it cannot serve the name.
const CLIENT_RIGHTS: &str = "0x12019b";
/// The pipe's buffers, each way.
const BUFFER_BYTES: u32 = 64 * 1024;
/// "No timeout", in the timeouts' atomics.
const NO_TIMEOUT: u64 = u64::MAX;

/// The server end of a named pipe: one instance always waits for the next client, so the
/// name stays this process's while it lives.
pub struct PipeListener {
    name: Vec<u16>,
    allowed: Vec<String>,
    descriptor: Descriptor,
    waiting: Box<Instance>,
}

/// A security descriptor of the system's allocation.
struct Descriptor(PSECURITY_DESCRIPTOR);

// SAFETY: the descriptor is only read (by CreateNamedPipeW) once made, and freed once.
unsafe impl Send for Descriptor {}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW; freed once.
        unsafe { LocalFree(self.0) };
    }
}

/// One instance of the pipe and the connection under way on it. Boxed: the system writes to
/// `overlapped` until the connection is done or cancelled, so it must not move.
struct Instance {
    pipe: OwnedHandle,
    event: OwnedHandle,
    overlapped: OVERLAPPED,
    connecting: bool,
}

// SAFETY: `overlapped` only holds the event's handle and the system's bookkeeping.
unsafe impl Send for Instance {}

impl PipeListener {
    /// Creates the pipe `name` (`\\.\pipe\…`), which this process's user and the accounts
    /// named in `allowed` (user or group names, or SIDs as `S-1-…`) may open, from this host
    /// only. Fails if the name is taken, by another agent or by anyone else.
    pub fn bind(name: &str, allowed: &[String]) -> io::Result<PipeListener> {
        let own = own_sid()?;
        let mut sddl = format!("D:P(A;;GA;;;{own})");
        let mut sids = vec![own.to_owned()];
        for account in allowed {
            let sid = if account.starts_with("S-1-") {
                // Parsed and written again: its standard form, and nothing else in the SDDL.
                canonical_sid(account).map_err(|e| {
                    io::Error::new(e.kind(), format!("{account:?} is not a SID ({e})"))
                })?
            } else {
                account_sid(account).map_err(|e| {
                    io::Error::new(e.kind(), format!("no account {account:?} here ({e})"))
                })?
            };
            sddl.push_str(&format!("(A;;{CLIENT_RIGHTS};;;{sid})"));
            sids.push(sid);
        }
        let descriptor = Descriptor(security_descriptor(&sddl)?);
        if let Some(why) = served(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, why));
        }
        let name = wide(name.as_ref());
        let waiting = Instance::new(&name, &descriptor, true)?;
        Ok(PipeListener {
            name,
            allowed: sids,
            descriptor,
            waiting,
        })
    }

    /// The SIDs the pipe lets in: this process's user's first, then those of `allowed`.
    pub fn allowed_sids(&self) -> &[String] {
        &self.allowed
    }

    /// The next client, waiting at most `wait` for one: `None` if none came. The next
    /// instance is made before the connected one is handed back.
    pub fn accept(&mut self, wait: Duration) -> io::Result<Option<PipeStream>> {
        if !self.waiting.connect(wait)? {
            return Ok(None);
        }
        let next = Instance::new(&self.name, &self.descriptor, false)?;
        let connected = std::mem::replace(&mut self.waiting, next);
        Ok(Some(PipeStream {
            instance: connected,
            first: Vec::new(),
            first_at: 0,
            read_timeout: AtomicU64::new(NO_TIMEOUT),
            write_timeout: AtomicU64::new(NO_TIMEOUT),
        }))
    }
}

impl Instance {
    fn new(name: &[u16], descriptor: &Descriptor, first: bool) -> io::Result<Box<Instance>> {
        let attributes = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor.0,
            bInheritHandle: 0,
        };
        let first_flag = if first {
            FILE_FLAG_FIRST_PIPE_INSTANCE
        } else {
            0
        };
        // SAFETY: `name` is NUL-terminated; `attributes` and its descriptor outlive the call.
        let pipe = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | first_flag,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                PIPE_UNLIMITED_INSTANCES,
                BUFFER_BYTES,
                BUFFER_BYTES,
                0,
                &attributes,
            )
        };
        if pipe == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a handle CreateNamedPipeW just gave, owned from here.
        let pipe = unsafe { OwnedHandle::from_raw_handle(pipe) };
        Ok(Box::new(Instance {
            pipe,
            event: new_event()?,
            overlapped: OVERLAPPED::default(),
            connecting: false,
        }))
    }

    /// Whether a client is connected, waiting at most `wait` for one.
    fn connect(&mut self, wait: Duration) -> io::Result<bool> {
        let pipe = self.pipe.as_raw_handle() as HANDLE;
        if !self.connecting {
            self.overlapped = OVERLAPPED {
                hEvent: self.event.as_raw_handle() as HANDLE,
                ..OVERLAPPED::default()
            };
            // SAFETY: the instance is boxed, so `overlapped` stays put until the connection
            // is done or cancelled (in drop).
            if unsafe { ConnectNamedPipe(pipe, &mut self.overlapped) } == 0 {
                // SAFETY: no other call in between.
                match unsafe { GetLastError() } {
                    ERROR_PIPE_CONNECTED => return Ok(true),
                    ERROR_IO_PENDING => self.connecting = true,
                    // A client came and left before the connection was taken.
                    ERROR_NO_DATA => {
                        // SAFETY: the instance's own pipe handle.
                        unsafe { DisconnectNamedPipe(pipe) };
                        return Ok(false);
                    }
                    e => return Err(io::Error::from_raw_os_error(e as i32)),
                }
            } else {
                return Ok(true);
            }
        }
        // SAFETY: the event's handle, valid while the instance is.
        let waited =
            unsafe { WaitForSingleObject(self.event.as_raw_handle() as HANDLE, millis(wait)) };
        if waited != WAIT_OBJECT_0 {
            return Ok(false);
        }
        self.connecting = false;
        let mut n = 0;
        // SAFETY: the connection this instance started, done by now (its event is set).
        if unsafe { GetOverlappedResult(pipe, &self.overlapped, &mut n, 0) } == 0 {
            // SAFETY: the instance's own pipe handle: made ready for the next client.
            unsafe { DisconnectNamedPipe(pipe) };
            return Ok(false);
        }
        Ok(true)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.connecting {
            let pipe = self.pipe.as_raw_handle() as HANDLE;
            let mut n = 0;
            // SAFETY: the pending connection is cancelled and waited for, so that the system
            // is done with `overlapped` before it is freed.
            unsafe {
                CancelIoEx(pipe, &self.overlapped);
                GetOverlappedResult(pipe, &self.overlapped, &mut n, 1);
            }
        }
    }
}

/// A connected client of a [`PipeListener`], read and written within the timeouts set.
pub struct PipeStream {
    /// Connected: nothing under way on its `overlapped`.
    instance: Box<Instance>,
    /// The client's first bytes, read by [`PipeStream::client_sids`], and how many of them
    /// were handed out.
    first: Vec<u8>,
    first_at: usize,
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

impl PipeStream {
    /// The SIDs of the client, as strings: its user first, then its groups, as the system
    /// says by letting this thread take the client's identity for a moment
    /// (`ImpersonateNamedPipeClient`, which works for a client of any user, where opening
    /// another user's process does not). Windows allows that only once something was read
    /// from the pipe: the client's first bytes are read here (within the read timeout) and
    /// kept for the next reads. A client that sent nothing, or that let the server know
    /// only its anonymous identity, is an error.
    pub fn client_sids(&mut self) -> io::Result<Vec<String>> {
        if self.first.is_empty() {
            let mut first = vec![0u8; 4096];
            let n = self.read(&mut first)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client left before it sent anything",
                ));
            }
            first.truncate(n);
            self.first = first;
        }
        let pipe = self.instance.pipe.as_raw_handle() as HANDLE;
        // SAFETY: this stream's own pipe handle; the identity is given up below.
        if unsafe { ImpersonateNamedPipeClient(pipe) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: this thread's token while it has the client's identity, opened with the
        // process's own rights (`OpenAsSelf`); owned below.
        let opened = unsafe { OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, 1, &mut token) };
        let token = if opened == 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: the handle OpenThreadToken gave, owned from here.
            Ok(unsafe { OwnedHandle::from_raw_handle(token) })
        };
        // SAFETY: gives up the client's identity.
        if unsafe { RevertToSelf() } == 0 {
            // The thread would go on as the client: Windows' advice is to end the process.
            std::process::abort();
        }
        token_sids(token?.as_raw_handle() as HANDLE, true)
    }

    /// The longest a read waits (`None`: no bound; the default).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.read_timeout
            .store(as_millis(timeout), Ordering::Relaxed);
    }

    /// The longest a write waits for the client to read (`None`: no bound; the default).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.write_timeout
            .store(as_millis(timeout), Ordering::Relaxed);
    }

    /// Runs one overlapped read or write (`start`), waiting at most `timeout` (in ms, or
    /// [`NO_TIMEOUT`]); one that takes longer is cancelled.
    fn io(
        &self,
        timeout: u64,
        start: impl FnOnce(HANDLE, *mut OVERLAPPED) -> i32,
    ) -> io::Result<usize> {
        let pipe = self.instance.pipe.as_raw_handle() as HANDLE;
        let mut overlapped = OVERLAPPED {
            hEvent: self.instance.event.as_raw_handle() as HANDLE,
            ..OVERLAPPED::default()
        };
        let mut n = 0;
        if start(pipe, &mut overlapped) == 0 {
            // SAFETY: no other call in between.
            let e = unsafe { GetLastError() };
            if e != ERROR_IO_PENDING {
                return Err(io::Error::from_raw_os_error(e as i32));
            }
            let wait = if timeout == NO_TIMEOUT {
                INFINITE
            } else {
                u32::try_from(timeout).unwrap_or(INFINITE - 1)
            };
            // SAFETY: the stream's event, set when the operation is done.
            if unsafe { WaitForSingleObject(overlapped.hEvent, wait) } != WAIT_OBJECT_0 {
                // SAFETY: cancelled, then waited for: `overlapped` lives on this stack frame
                // and must outlast the operation.
                let finished = unsafe {
                    CancelIoEx(pipe, &overlapped);
                    GetOverlappedResult(pipe, &overlapped, &mut n, 1)
                };
                if finished != 0 {
                    return Ok(n as usize);
                }
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the pipe's client did not keep up",
                ));
            }
        }
        // SAFETY: the operation started above, done by now.
        if unsafe { GetOverlappedResult(pipe, &overlapped, &mut n, 1) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.first_at < self.first.len() {
            let n = buf.len().min(self.first.len() - self.first_at);
            buf[..n].copy_from_slice(&self.first[self.first_at..self.first_at + n]);
            self.first_at += n;
            return Ok(n);
        }
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let timeout = self.read_timeout.load(Ordering::Relaxed);
        // SAFETY: `buf` outlives the operation: `io` returns only once it is done or
        // cancelled and waited for.
        let read = self.io(timeout, |pipe, overlapped| unsafe {
            ReadFile(
                pipe,
                buf.as_mut_ptr(),
                len,
                std::ptr::null_mut(),
                overlapped,
            )
        });
        match read {
            // The client closed its end: the end of the stream.
            Err(e)
                if e.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32)
                    || e.raw_os_error() == Some(ERROR_PIPE_NOT_CONNECTED as i32) =>
            {
                Ok(0)
            }
            other => other,
        }
    }
}

impl Write for PipeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let timeout = self.write_timeout.load(Ordering::Relaxed);
        // SAFETY: as for reads.
        self.io(timeout, |pipe, overlapped| unsafe {
            WriteFile(pipe, buf.as_ptr(), len, std::ptr::null_mut(), overlapped)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why the pipe `name` is taken, if it is: opened as a client would (a server that answers,
/// or one that is busy or keeps this user out). `FILE_FLAG_FIRST_PIPE_INSTANCE` refuses a
/// taken name too, without the race, on Windows; Wine ignores that flag.
fn served(name: &str) -> Option<String> {
    use std::os::windows::fs::OpenOptionsExt;
    // Anonymous: a server squatting the name learns nothing of this user, nor can it act
    // as them (a client's default would let it impersonate).
    let look = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .security_qos_flags(SECURITY_ANONYMOUS)
        .open(name);
    match look {
        Ok(_) => Some(format!("{name} is served by another process")),
        Err(e) if e.raw_os_error() == Some(ERROR_FILE_NOT_FOUND as i32) => None,
        Err(e) => Some(format!("{name} exists ({e})")),
    }
}

/// A manual-reset event, not set.
fn new_event() -> io::Result<OwnedHandle> {
    // SAFETY: no attributes, no name.
    let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    if event.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the handle CreateEventW just gave, owned from here.
    Ok(unsafe { OwnedHandle::from_raw_handle(event) })
}

fn as_millis(timeout: Option<Duration>) -> u64 {
    timeout.map_or(NO_TIMEOUT, |t| {
        u64::try_from(t.as_millis())
            .unwrap_or(NO_TIMEOUT - 1)
            .max(1)
    })
}

fn millis(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis()).unwrap_or(INFINITE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn name(test: &str) -> String {
        format!(r"\\.\pipe\lwolf-test-{test}-{}", std::process::id())
    }

    #[test]
    fn a_client_is_served_and_its_user_known() {
        let name = name("served");
        let mut listener = PipeListener::bind(&name, &[]).unwrap();
        assert!(listener
            .accept(Duration::from_millis(50))
            .unwrap()
            .is_none());
        let client = std::thread::spawn({
            let name = name.clone();
            move || {
                let mut pipe = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&name)
                    .unwrap();
                pipe.write_all(b"ping").unwrap();
                let mut answer = [0u8; 4];
                pipe.read_exact(&mut answer).unwrap();
                answer
            }
        });
        let mut stream = listener
            .accept(Duration::from_secs(10))
            .unwrap()
            .expect("no client within 10 s");
        stream.set_read_timeout(Some(Duration::from_secs(10)));
        // Its identity is known once its first bytes came; they are read again after.
        assert_eq!(
            stream.client_sids().unwrap().first().map(String::as_str),
            Some(own_sid().unwrap())
        );
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        stream.write_all(b"pong").unwrap();
        assert_eq!(&client.join().unwrap(), b"pong");
        drop(stream);
        // The name stays the listener's: a second server is refused.
        assert!(PipeListener::bind(&name, &[]).is_err());
    }

    #[test]
    fn a_read_is_bounded_and_a_closed_client_is_the_end() {
        let name = name("bounded");
        let mut listener = PipeListener::bind(&name, &[]).unwrap();
        let pipe = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .unwrap();
        let mut stream = listener
            .accept(Duration::from_secs(10))
            .unwrap()
            .expect("no client within 10 s");
        stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 8];
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(pipe);
        assert_eq!(stream.read(&mut buf).unwrap(), 0);
    }
}
