//! Strings that must never be printed: the client secret, the subscription key and bearer
//! tokens; and where a secret may come from.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Error;

use zeroize::Zeroizing;

/// A secret string: `Debug` and `Display` print `[redacted]`, and the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret. The `String` is moved, not copied, so no stray copy is left behind.
    pub fn new(value: String) -> SecretString {
        SecretString(Zeroizing::new(value))
    }

    /// The secret itself. Named to be seen in review: call it only to put the secret on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> SecretString {
        SecretString::new(value.to_owned())
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> SecretString {
        SecretString::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from: given, or read from a file at `build` (as mounted secrets
/// are). Whichever was set last wins.
#[derive(Clone, Debug)]
pub(crate) enum SecretSource {
    Value(SecretString),
    File(PathBuf),
}

impl SecretSource {
    /// The secret, read now if it is in a file; `key` names the setting in messages
    /// (`client_secret`, whose file key is `client_secret_file`). `None` for an empty value.
    pub(crate) fn load(&self, key: &str) -> Result<Option<SecretString>, Error> {
        match self {
            SecretSource::Value(s) if s.is_empty() => Ok(None),
            SecretSource::Value(s) => Ok(Some(s.clone())),
            SecretSource::File(path) => read_secret_file(path, key).map(Some),
        }
    }
}

/// A secret file's content, one trailing newline (LF or CRLF) and a leading byte order mark
/// dropped. Unreadable, not UTF-8 or empty is
/// [`Error::Config`], naming the file, never its content.
fn read_secret_file(path: &Path, key: &str) -> Result<SecretString, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read {key}_file {}: {}",
            shown(path),
            e.kind()
        ))
    })?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        zeroize::Zeroize::zeroize(&mut e.into_bytes());
        Error::config(format!("{key}_file is not valid UTF-8"))
    })?;
    // Windows' Notepad may start a file with a byte order mark; it is no part of the secret.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    // Mounted secrets and `echo` leave one trailing newline (CRLF from Windows editors); the
    // secret itself has none.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    let secret = SecretString::new(text);
    if secret.is_empty() {
        return Err(Error::config(format!(
            "{key}_file {} is empty",
            shown(path)
        )));
    }
    Ok(secret)
}

/// `path` as a message may show it: as it is when it names something that exists and reads
/// like a path; else only its length. A value given where a path belongs is often the secret
/// itself (a mounted secret's content, a pasted PEM key), and must not be echoed.
pub(crate) fn shown(path: &Path) -> ShownPath<'_> {
    ShownPath(path)
}

/// See [`shown`]. Checked when formatted: a path that exists by then (a directory just
/// made) is shown.
pub(crate) struct ShownPath<'a>(&'a Path);

/// Longer than any path a system takes (Linux's `PATH_MAX`).
const LONGEST_PATH: usize = 4096;

/// As `Display`, quoted (for a `Debug` of a struct that holds a path, `Config`'s).
impl fmt::Debug for ShownPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for ShownPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.as_os_str().to_string_lossy();
        let plausible = !text.is_empty()
            && text.len() <= LONGEST_PATH
            && !text.chars().any(char::is_control)
            && std::fs::symlink_metadata(self.0).is_ok();
        if plausible {
            write!(f, "{}", self.0.display())
        } else {
            write!(
                f,
                "(a path of {} characters that does not exist; not shown)",
                text.chars().count()
            )
        }
    }
}

/// Replaces every occurrence of `secret` in `text`, so a server that echoes what it was
/// sent cannot smuggle the secret into an error message.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < 4 || !text.contains(secret) {
        return text.to_owned();
    }
    text.replace(secret, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = SecretString::from("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn scrub_removes_every_occurrence() {
        assert_eq!(
            scrub("a s3cr3t b s3cr3t", "s3cr3t"),
            "a [redacted] b [redacted]"
        );
        assert_eq!(scrub("nothing here", "s3cr3t"), "nothing here");
    }
}
