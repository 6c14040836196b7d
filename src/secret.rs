//! Strings that must never be printed: the client secret and bearer tokens.

#![forbid(unsafe_code)]

use std::fmt;

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
