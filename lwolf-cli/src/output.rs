//! What `lwolf` writes: the output, the log lines and the exit codes.

use std::io::{self, Write};
use std::time::Duration;

use lwolf_auth::unversioned::log::{Level, LevelFilter};
use lwolf_auth::Error;
use lwolf_auth_ffi::lwolf_status;

/// The API answered 4xx/5xx: curl's `--fail` code.
pub(crate) const EXIT_HTTP_ERROR: u8 = 22;
/// A bad command line (sysexits' EX_USAGE).
pub(crate) const EXIT_USAGE: u8 = 64;
/// A local I/O failure (sysexits' EX_IOERR).
pub(crate) const EXIT_IO: u8 = 74;
/// A caught panic: LWOLF_ERR_INTERNAL.
pub(crate) const EXIT_INTERNAL: u8 = 11;

/// Why `lwolf` stops: the line for stderr and the exit code.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: format!("{} (see lwolf --help)", message.into()),
            code: EXIT_USAGE,
        }
    }

    pub(crate) fn io(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_IO,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        // The exit code is the C status code, named in the message.
        let status = lwolf_status::from(&e);
        Failure {
            message: format!("{}: {e}", status.name()),
            code: status as u8,
        }
    }
}

/// Writes `bytes` to stdout and flushes.
pub(crate) fn print_out(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A reader that went away (`lwolf get ... | head`) is not worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure {
            message: String::new(),
            code: EXIT_IO,
        }),
        Err(e) => Err(Failure::io(format!("cannot write the output: {e}"))),
    }
}

/// Sends the library's log records to stderr: warnings, or with `-v` the token fetches,
/// refreshes and retries too (`-vv`: each HTTP exchange). They never hold a token (the
/// library logs fingerprints only) and never come from the HTTP stack below it.
pub(crate) fn log_to_stderr(verbose: u8) {
    let max_level = match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    lwolf_auth::unversioned::log::set_handler(max_level, |level: Level, message: &str| {
        let level = level.as_str().to_ascii_lowercase();
        let _ = writeln!(io::stderr().lock(), "lwolf: {level}: {message}");
    });
}

/// `23h59m`, `4m05s`, `12s`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `t` as RFC 3339 in UTC, to the second: `2026-11-30T02:28:38Z`.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(86_399)), "23h59m");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
        assert_eq!(human(Duration::from_secs(12)), "12s");
    }
}
