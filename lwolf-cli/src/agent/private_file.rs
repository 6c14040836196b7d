//! Files only the agent's user may read (the proxy's key, the token sink), written whole and
//! synced under a temporary name before they appear under their own.

use std::fs;
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to a new file beside `path` (mode 0600 on Unix, a DACL for the user alone
/// on Windows; under a random name, created afresh, never through a link), syncs it, then
/// `publish(temporary, path)` gives it its name (a rename replaces the file there; a hard
/// link never does). The temporary file is gone afterwards either way.
pub(crate) fn write(
    path: &Path,
    bytes: &[u8],
    publish: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?
        .to_string_lossy();
    // A name no one else can guess and take first in a shared directory (a pid can be).
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let temp = path.with_file_name(format!(".{name}.{:016x}.tmp", u64::from_ne_bytes(random)));
    let written = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        let mut file = options.open(&temp)?;
        // Windows has no mode to give at creation: the DACL goes on before any byte does.
        #[cfg(windows)]
        lwolf_auth::unversioned::make_file_private(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        publish(&temp, path)
    })();
    let _ = fs::remove_file(&temp);
    written
}
