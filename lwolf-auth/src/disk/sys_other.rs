//! Neither Unix nor Windows: ownership and privacy cannot be checked, so the shared cache is
//! off.

use super::{Entry, Opened};
use std::fs::File;
use std::io;
use std::path::Path;

pub(crate) struct SafeDir;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the shared token cache needs Unix or Windows",
    )
}

impl SafeDir {
    pub(super) fn open(_: &Path, _: bool) -> Opened {
        Opened::Refused("the shared token cache needs Unix or Windows".into())
    }
    pub(super) fn open_file(&self, _: &str) -> io::Result<File> {
        Err(unsupported())
    }
    pub(super) fn create_file(&self, _: &str) -> io::Result<File> {
        Err(unsupported())
    }
    pub(super) fn open_lock_file(&self, _: &str) -> io::Result<File> {
        Err(unsupported())
    }
    pub(super) fn rename(&self, _: &str, _: &str) -> io::Result<()> {
        Err(unsupported())
    }
    pub(super) fn remove(&self, _: &str) -> io::Result<()> {
        Err(unsupported())
    }
    pub(super) fn sync(&self) {}
    pub(super) fn is_still_at(&self, _: &File, _: &str) -> bool {
        false
    }
    pub(super) fn entries(&self) -> Vec<Entry> {
        Vec::new()
    }
}
