//! Ownership and modes cannot be checked the same way here: the shared cache is off.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

pub(crate) struct SafeDir;

pub(super) enum Opened {
    #[allow(dead_code)]
    Safe(SafeDir),
    #[allow(dead_code)]
    Missing,
    Refused(String),
}

pub(super) struct Entry {
    pub name: String,
    pub is_file: bool,
    pub age: Duration,
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the shared token cache needs a Unix system",
    )
}

impl SafeDir {
    pub(super) fn open(_: &Path, _: bool) -> Opened {
        Opened::Refused("the shared token cache needs a Unix system".into())
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
