//! The one error type. Its mapping onto the C status codes lives with them, in
//! `ffi/status.rs`: the Rust error can grow without touching the ABI.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

/// What went wrong when no token or no response could be had.
///
/// In C each variant is an `LWOLF_ERR_*` status (`lwolf_status::from(&error)`).
/// Messages are short and lowercase, carry the HTTP status and the server's
/// `error` / `error_description` (or the API's `message`) where there is one, and
/// never contain the client secret or a token.
///
/// `Error` is cheap to clone: callers waiting on the same token request share one outcome.
#[derive(Clone)]
#[non_exhaustive]
pub enum Error {
    /// A bad argument: unknown config key, unparsable value, foreign origin, bad method.
    InvalidArgument(Box<str>),
    /// Incomplete or forbidden configuration (missing client id, `http://` to a remote host…).
    Config(Box<str>),
    /// The token endpoint answered 401.
    InvalidCredentials(Box<HttpFailure>),
    /// The token endpoint answered 400.
    BadRequest(Box<HttpFailure>),
    /// The token endpoint answered 403.
    Forbidden(Box<HttpFailure>),
    /// The token endpoint answered 429 and the retries ran out.
    RateLimited(Box<HttpFailure>),
    /// A 5xx after the retries ran out, or another unexpected status.
    Server(Box<HttpFailure>),
    /// DNS, connect, TLS, I/O or timeout: no response could be had.
    Transport(Box<TransportFailure>),
    /// The token response was malformed, oversized, or a redirect; or an API response was
    /// larger than `max_response_bytes`.
    InvalidResponse(Box<str>),
    /// An API response's body is not the JSON [`Response::json`](crate::Response::json) was
    /// asked for (the response itself was had: see its status).
    Json(Box<str>),
    /// The writer of a streamed response body stopped the transfer.
    Aborted(Box<str>),
    /// The call's deadline (`deadline_ms`) passed while it waited its turn: for a token
    /// request in flight, or for the API's pace. Nothing was sent for it.
    Deadline(Box<str>),
    /// A bug, or a panic caught at the C boundary.
    Internal(Box<str>),
}

/// Details of a failure the token endpoint reported with an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpFailure {
    /// The HTTP status of the last attempt.
    pub status: u16,
    /// The OAuth `error` code (or the API error `code`), if the server sent one.
    pub error: Option<String>,
    /// The OAuth `error_description` (or the API error `message`), if the server sent one.
    pub description: Option<String>,
    /// How many attempts were made, the first one included.
    pub attempts: u32,
}

/// What kind of transport failure: what a program (or a binding) acts on, rather than the
/// message's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// An attempt (or the whole call, `deadline_ms`) ran out of time.
    Timeout,
    /// The host name could not be resolved.
    Dns,
    /// No connection could be made (refused, unreachable).
    Connect,
    /// TLS failed: an untrusted or mismatched certificate, a handshake error.
    Tls,
    /// The proxy refused or failed the tunnel.
    Proxy,
    /// The connection broke, or the server did not speak HTTP.
    Io,
}

impl TransportKind {
    /// `timeout`, `dns`, `connect`, `tls`, `proxy` or `io`: what the C ABI and the bindings
    /// report.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Dns => "dns",
            TransportKind::Connect => "connect",
            TransportKind::Tls => "tls",
            TransportKind::Proxy => "proxy",
            TransportKind::Io => "io",
        }
    }
}

/// Details of a transport failure.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransportFailure {
    /// What kind of failure it was.
    pub kind: TransportKind,
    /// What failed, in a few words (`"timeout"`, `"connection failed"`…).
    pub message: String,
    /// How many attempts were made, the first one included.
    pub attempts: u32,
    /// Whether another attempt could succeed (timeouts and resets: yes; certificate errors: no).
    pub retryable: bool,
    pub(crate) source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Debug for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportFailure")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("attempts", &self.attempts)
            .field("retryable", &self.retryable)
            .finish()
    }
}

impl Error {
    /// Whether trying again later could succeed: rate limits, server errors and
    /// transient transport failures. Credentials, configuration and arguments
    /// will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited(_) => true,
            Error::Server(f) => f.status >= 500 || f.status == 408,
            Error::Transport(t) => t.retryable,
            Error::Deadline(_) => true,
            _ => false,
        }
    }

    /// The HTTP status behind this error, if the server answered.
    pub fn http_status(&self) -> Option<u16> {
        self.http_failure().map(|f| f.status)
    }

    /// The HTTP failure details, if the server answered.
    pub fn http_failure(&self) -> Option<&HttpFailure> {
        match self {
            Error::InvalidCredentials(f)
            | Error::BadRequest(f)
            | Error::Forbidden(f)
            | Error::RateLimited(f)
            | Error::Server(f) => Some(f),
            _ => None,
        }
    }

    /// The kind of transport failure, for [`Error::Transport`].
    pub fn transport_kind(&self) -> Option<TransportKind> {
        match self {
            Error::Transport(t) => Some(t.kind),
            _ => None,
        }
    }

    /// How many HTTP attempts were made before giving up (0 when none was made).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Transport(t) => t.attempts,
            _ => self.http_failure().map_or(0, |f| f.attempts),
        }
    }

    pub(crate) fn invalid_argument(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into().into_boxed_str())
    }

    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error::Config(msg.into().into_boxed_str())
    }

    pub(crate) fn invalid_response(msg: impl Into<String>) -> Error {
        Error::InvalidResponse(msg.into().into_boxed_str())
    }

    pub(crate) fn aborted(kind: std::io::ErrorKind) -> Error {
        Error::Aborted(format!("the writer stopped the transfer ({kind})").into_boxed_str())
    }

    pub(crate) fn deadline(msg: impl Into<String>) -> Error {
        Error::Deadline(msg.into().into_boxed_str())
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Error {
        Error::Internal(msg.into().into_boxed_str())
    }

    /// The error for a final HTTP status from the token endpoint.
    pub(crate) fn from_token_status(failure: HttpFailure) -> Error {
        let failure = Box::new(failure);
        match failure.status {
            400 => Error::BadRequest(failure),
            401 => Error::InvalidCredentials(failure),
            403 => Error::Forbidden(failure),
            429 => Error::RateLimited(failure),
            _ => Error::Server(failure),
        }
    }
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http status {}", self.status)?;
        match (&self.error, &self.description) {
            (Some(e), Some(d)) => write!(f, ": {e}: {d}")?,
            (Some(e), None) => write!(f, ": {e}")?,
            (None, Some(d)) => write!(f, ": {d}")?,
            (None, None) => {}
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::InvalidCredentials(h) => write!(f, "invalid credentials: {h}"),
            Error::BadRequest(h) => write!(f, "token request rejected: {h}"),
            Error::Forbidden(h) => write!(f, "token request forbidden: {h}"),
            Error::RateLimited(h) => write!(f, "rate limited: {h}"),
            Error::Server(h) => write!(f, "server error: {h}"),
            Error::Transport(t) => {
                write!(f, "transport error: {}", t.message)?;
                if t.attempts > 1 {
                    write!(f, " (after {} attempts)", t.attempts)?;
                }
                Ok(())
            }
            Error::InvalidResponse(m) => write!(f, "invalid response: {m}"),
            Error::Json(m) => write!(f, "unexpected json: {m}"),
            Error::Aborted(m) => write!(f, "aborted: {m}"),
            Error::Deadline(m) => write!(f, "deadline passed: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl fmt::Debug for Error {
    // Debug is Display with the variant name: the payloads hold nothing secret, and
    // a derived Debug would print the boxed fields in a noisier way.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::Config(_) => "Config",
            Error::InvalidCredentials(_) => "InvalidCredentials",
            Error::BadRequest(_) => "BadRequest",
            Error::Forbidden(_) => "Forbidden",
            Error::RateLimited(_) => "RateLimited",
            Error::Server(_) => "Server",
            Error::Transport(_) => "Transport",
            Error::InvalidResponse(_) => "InvalidResponse",
            Error::Json(_) => "Json",
            Error::Aborted(_) => "Aborted",
            Error::Deadline(_) => "Deadline",
            Error::Internal(_) => "Internal",
        };
        write!(f, "{name}({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(t) => t
                .source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}
