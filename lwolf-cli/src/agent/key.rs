//! The proxy's local key: 32 random bytes (the system's source, by `getrandom`) in hex, in a
//! 0600 file of the agent's user, made if missing (on Windows, a file whose DACL lets the
//! user alone in, made anew at each start: an existing file's owner is not checked there,
//! and a key someone else left could be known to them); every proxy request carries it in
//! `Lwolf-Agent-Key`, compared in constant time. A web page cannot read the file, nor can
//! another local user: neither can use the proxy.

use std::fmt;
use std::fs;
use std::io::Read;
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::output::Failure;

/// The header that carries the key.
pub(crate) const HEADER: &str = "lwolf-agent-key";

/// The key. `Debug` never shows it.
pub(crate) struct Key(Zeroizing<Vec<u8>>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Whether `given` is the key, in time that does not depend on where they differ.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(given))
    }

    /// The key in `path`, made first if there is none, and on Windows made anew (0600 or
    /// the user's DACL, written whole to a new file and then linked or renamed into place,
    /// so that a reader never sees half a key).
    pub(crate) fn load_or_create(path: &Path) -> Result<Key, Failure> {
        let shown = path.display();
        let made = if cfg!(windows) {
            create(path, true)
        } else if fs::symlink_metadata(path).is_err() {
            create(path, false)
        } else {
            Ok(())
        };
        made.map_err(|e| Failure::io(format!("cannot create the key file {shown}: {e}")))?;
        let mut options = fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        options.custom_flags(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
        );
        let mut file = options
            .open(path)
            .map_err(|e| Failure::io(format!("cannot open the key file {shown}: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| Failure::io(format!("cannot read the key file {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(Failure::io(format!(
                "the key file {shown} is not a regular file"
            )));
        }
        #[cfg(unix)]
        if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
            return Err(Failure::io(format!(
                "the key file {shown} must be the agent user's own, mode 0600"
            )));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(128));
        (&mut file)
            .take(1024)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::io(format!("cannot read the key file {shown}: {e}")))?;
        let key: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        // The value is never shown: a secret may have been put there by mistake.
        if key.len() < 16 || !key.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Failure::io(format!(
                "the key file {shown} must hold at least 16 printable characters"
            )));
        }
        Ok(Key(Zeroizing::new(key)))
    }
}

/// A new key in `path`: put in place by a rename that replaces what is there when
/// `replace`, else by a link that never does (another agent's key made meanwhile stays).
fn create(path: &Path, replace: bool) -> std::io::Result<()> {
    let mut random = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut hex = Zeroizing::new(String::with_capacity(65));
    for b in random.iter() {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex.push('\n');
    super::private_file::write(path, hex.as_bytes(), |temp, path| {
        if replace {
            return fs::rename(temp, path);
        }
        match fs::hard_link(temp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })
}
