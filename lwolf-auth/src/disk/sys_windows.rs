//! The cache directory on Windows, by path: Windows has no `openat`, and its defences are
//! other ones.
//!
//! * What replaces the owner and mode checks: the directory is given a protected DACL with
//!   one entry, full control for this process's user, inherited by every file made in it
//!   (the counterpart of `0700` and `0600`; nothing is inherited from above). A directory
//!   whose DACL cannot be set (not ours) is refused.
//! * What replaces `O_NOFOLLOW`: reparse points (symbolic links and junctions, Windows'
//!   links) are refused, the directory's and each file's (files are opened with
//!   `FILE_FLAG_OPEN_REPARSE_POINT`, so a link is opened as itself and then refused, never
//!   followed).
//! * Files are locked with `LockFileEx` (std's `File::try_lock`), which works across
//!   processes as `flock` does on Unix.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Entry, Opened};
use crate::win32::set_owner_only;

const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

/// A directory that passed the checks.
pub(crate) struct SafeDir {
    path: PathBuf,
}

impl SafeDir {
    /// `path` as the cache directory: made if `create` and missing, refused if it is a
    /// reparse point, and made private to this user.
    pub(super) fn open(path: &Path, create: bool) -> Opened {
        if create {
            if let Err(e) = fs::create_dir_all(path) {
                return Opened::Refused(format!("cannot create it: {e}"));
            }
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Opened::Missing,
            Err(e) => return Opened::Refused(e.to_string()),
        };
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Opened::Refused(
                "it is a reparse point (a symbolic link or junction), which could lead \
                 elsewhere"
                    .into(),
            );
        }
        if !meta.is_dir() {
            return Opened::Refused("it is not a directory".into());
        }
        if let Err(e) = set_owner_only(path, "OICI") {
            return Opened::Refused(format!("cannot make it private to this user: {e}"));
        }
        Opened::Safe(SafeDir {
            path: path.to_owned(),
        })
    }

    fn at(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `name` opened for reading: a regular file, never through a reparse point.
    pub(super) fn open_file(&self, name: &str) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(self.at(name))?;
        check_file(&file)?;
        Ok(file)
    }

    /// `name` made new (never an existing one), for writing, with an owner-only DACL of its
    /// own (it would inherit the directory's, but not where inheritance is not applied).
    pub(super) fn create_file(&self, name: &str) -> io::Result<File> {
        let path = self.at(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(&path)?;
        set_owner_only(&path, "")?;
        Ok(file)
    }

    /// The lock file `name`, made if missing: a regular file.
    pub(super) fn open_lock_file(&self, name: &str) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(self.at(name))?;
        check_file(&file)?;
        set_owner_only(&self.at(name), "")?;
        Ok(file)
    }

    /// Renames `from` over `to` (`MoveFileExW`, replacing), both in this directory.
    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.at(from), self.at(to))
    }

    /// Removes `name`.
    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.at(name))
    }

    /// Nothing to do: NTFS journals the directory's entries.
    pub(super) fn sync(&self) {}

    /// Whether `file` is still the file named `name`: the same creation time and size
    /// (a replacement is a new file, made later).
    pub(super) fn is_still_at(&self, file: &File, name: &str) -> bool {
        match (file.metadata(), fs::symlink_metadata(self.at(name))) {
            (Ok(open), Ok(there)) => {
                open.creation_time() == there.creation_time()
                    && open.file_size() == there.file_size()
            }
            _ => false,
        }
    }

    /// The directory's entries, with their type and age; reparse points count as no file.
    pub(super) fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                let meta = fs::symlink_metadata(e.path()).ok()?;
                let modified = meta.modified().ok()?;
                Some(Entry {
                    is_file: meta.is_file()
                        && meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT == 0,
                    age: now.duration_since(modified).unwrap_or_default(),
                    name,
                })
            })
            .collect()
    }
}

/// A regular file, not a reparse point.
fn check_file(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if meta.is_file() && meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT == 0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it is not a regular file",
        ))
    }
}
