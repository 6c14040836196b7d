//! `--sink FILE`: the current token in a file, for tools that can only read one. Written at
//! start and whenever the token changes (its refresh, a renewal), atomically: a new 0600
//! file beside it, written whole and synced, then renamed over it; a reader sees the old
//! token or the new one, never half of one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lwolf_auth::AccessToken;
use zeroize::Zeroizing;

use crate::output::rfc3339;

pub(crate) use crate::args::SinkFormat as Format;

/// The token as `GET /v1/token` answers it: `expires_in` in whole seconds from now,
/// `expires_at` in RFC 3339 (UTC).
pub(crate) fn token_json(token: &AccessToken) -> Zeroizing<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct View<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_in: u64,
        expires_at: String,
    }
    let expires_in = token
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let view = View {
        access_token: token.secret(),
        token_type: token.token_type().as_str(),
        expires_in,
        expires_at: rfc3339(token.expires_at()),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(128 + token.secret().len()));
    // Serializing strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &view);
    out
}

/// The sink: its file and format.
pub(crate) struct Sink {
    pub path: PathBuf,
    pub format: Format,
}

impl Sink {
    /// Writes `token` to the file, atomically.
    pub(crate) fn write(&self, token: &AccessToken) -> std::io::Result<()> {
        let bytes = match self.format {
            Format::Json => token_json(token),
            Format::Raw => Zeroizing::new(token.secret().as_bytes().to_vec()),
        };
        write_atomically(&self.path, &bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    super::private_file::write(path, bytes, |temp, path| fs::rename(temp, path))
}
