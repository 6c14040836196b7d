//! Ownership and modes cannot be checked the same way here: the shared cache is off.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

pub(super) fn create_private_dir(_: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the shared token cache needs a Unix system",
    ))
}

pub(super) fn create_private_file(_: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(super) fn open_lock_file(_: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(super) fn refusal(_: &Metadata, _: u32) -> Option<String> {
    Some("ownership cannot be checked on this system".into())
}

pub(super) fn effective_uid(_: &Path) -> Option<u32> {
    None
}

pub(super) fn open_no_follow(_: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(super) fn is_still_at(_: &File, _: &Path) -> bool {
    false
}

pub(super) fn parents_refusal(_: &Path) -> Option<String> {
    Some("ownership cannot be checked on this system".into())
}
