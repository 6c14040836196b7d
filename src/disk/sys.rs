//! What the shared cache asks of the file system on Unix: private directories and files,
//! locks, and who owns what.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

pub(super) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Opens `path` for reading, refusing a symbolic link (`ELOOP`): a link planted in the
/// directory must not make us read, or lock, a file elsewhere.
pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
pub(super) fn is_still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(there)) => open.dev() == there.dev() && open.ino() == there.ino(),
        _ => false,
    }
}

/// Why the directories above `dir` make it unsafe: one that everyone may write to without
/// the sticky bit lets anyone rename `dir` away and put their own in its place.
pub(super) fn parents_refusal(dir: &Path) -> Option<String> {
    let dir = match fs::canonicalize(dir) {
        Ok(dir) => dir,
        Err(e) => return Some(format!("cannot resolve its path: {e}")),
    };
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(parent) else {
            continue;
        };
        let mode = meta.mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Some(format!(
                "{} above it is writable by everyone without the sticky bit (mode {:03o})",
                parent.display(),
                mode & 0o777
            ));
        }
    }
    None
}

/// Why a file or directory must not be trusted: another owner, or open to group or
/// others. `None` when it is ours alone.
pub(super) fn refusal(meta: &Metadata, euid: u32) -> Option<String> {
    if meta.uid() != euid {
        return Some(format!(
            "it is owned by uid {}, not by this process's uid {euid}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Some(format!(
            "its mode {mode:03o} lets group or others in (chmod go-rwx it)"
        ));
    }
    None
}

/// The effective uid, without `unsafe`: the owner of `/proc/self` (Linux), else of a
/// probe file created in `dir`.
pub(super) fn effective_uid(dir: &Path) -> Option<u32> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Some(meta.uid());
    }
    let probe = dir.join(format!(
        ".probe-{}-{:x}",
        std::process::id(),
        crate::jitter::u32()
    ));
    let file = create_private_file(&probe).ok()?;
    let uid = file.metadata().ok().map(|m| m.uid());
    drop(file);
    let _ = fs::remove_file(&probe);
    uid
}
