//! The cache directory on Unix, worked through a directory handle: every file is opened,
//! made, renamed and removed relative to the directory that was checked (`openat` and
//! friends), never by a path that could be re-pointed between the check and the use.
//!
//! What makes a directory safe to keep tokens in (the checks `ssh` makes of its files):
//! * the path given is no symbolic link of another user's (a link in `/tmp` made by
//!   someone else before us, pointing at a directory of ours, is refused);
//! * every directory above it is owned by root or by us, and writable by no one else
//!   unless it has the sticky bit (so no one else can rename the cache directory away and
//!   put theirs in its place);
//! * the directory itself is ours and closed to group and others (it is made `0700`).
//!
//! Files are opened without following links and without blocking (a FIFO named like a
//! cache file neither blocks nor is read), and must be regular files of ours, `0600`.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

use super::{Entry, Opened};
use crate::secret::shown;

/// A directory that passed the checks, open.
pub(crate) struct SafeDir {
    fd: OwnedFd,
    euid: u32,
}

impl SafeDir {
    /// `path` as the cache directory: made (`0700`) if `create` and missing, then checked.
    pub(super) fn open(path: &Path, create: bool) -> Opened {
        if create {
            if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(path) {
                return Opened::Refused(format!("cannot create it: {e}"));
            }
        }
        let euid = rustix::process::geteuid().as_raw();
        let link = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Opened::Missing,
            Err(e) => return Opened::Refused(e.to_string()),
        };
        if link.file_type().is_symlink() && link.uid() != euid && link.uid() != 0 {
            return Opened::Refused(format!(
                "it is a symbolic link owned by uid {}, not by this process's uid {euid}",
                link.uid()
            ));
        }
        // The link's own directory, then the directory it leads to: neither may be one that
        // someone else could change under us.
        let absolute = match std::path::absolute(path) {
            Ok(p) => p,
            Err(e) => return Opened::Refused(format!("cannot resolve its path: {e}")),
        };
        let real = match fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) => return Opened::Refused(format!("cannot resolve its path: {e}")),
        };
        let link_parent = absolute.parent().map(fs::canonicalize);
        if let Some(why) = link_parent
            .and_then(Result::ok)
            .and_then(|p| ancestors_refusal(&p, euid, true))
            .or_else(|| ancestors_refusal(&real, euid, false))
        {
            return Opened::Refused(why);
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(CWD, &real, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => return Opened::Refused(format!("cannot open it: {e}")),
        };
        match rustix::fs::fstat(&fd) {
            Ok(stat) => {
                // `mode_t` is 32 bits here, 16 on some other Unix systems.
                #[allow(clippy::unnecessary_cast)]
                let mode = stat.st_mode as u32;
                if let Some(why) = refusal(stat.st_uid, mode, euid) {
                    return Opened::Refused(why);
                }
            }
            Err(e) => return Opened::Refused(e.to_string()),
        }
        Opened::Safe(SafeDir { fd, euid })
    }

    /// `name` opened for reading: a regular file of ours, private, reached without following
    /// a link and without blocking. Anything else is an error saying why.
    pub(super) fn open_file(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(&self.fd, name, flags, Mode::empty())?);
        self.check_file(&file, true)?;
        Ok(file)
    }

    /// `name` made new (never an existing one, never through a link), `0600`, for writing.
    pub(super) fn create_file(&self, name: &str) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(
            &self.fd,
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?))
    }

    /// The lock file `name`, made if missing: a regular file of ours (its mode does not
    /// matter: only its lock is used, and no one else can make files here).
    pub(super) fn open_lock_file(&self, name: &str) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(
            &self.fd,
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?);
        self.check_file(&file, false)?;
        Ok(file)
    }

    /// Whether `file` is a regular file of ours (and, if `private`, closed to others).
    fn check_file(&self, file: &File, private: bool) -> io::Result<()> {
        let meta = file.metadata()?;
        let mode = if private { meta.mode() } else { 0o600 };
        let why = if !meta.is_file() {
            Some("it is not a regular file".to_owned())
        } else {
            refusal(meta.uid(), mode, self.euid)
        };
        match why {
            Some(why) => Err(io::Error::new(io::ErrorKind::PermissionDenied, why)),
            None => Ok(()),
        }
    }

    /// Renames `from` over `to`, both in this directory.
    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Removes `name` (never a directory).
    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Makes the directory's entries durable (after a rename); not worth failing over.
    pub(super) fn sync(&self) {
        let _ = rustix::fs::fsync(&self.fd);
    }

    /// Whether `file` is still the file named `name` (not removed or replaced since it was
    /// opened).
    pub(super) fn is_still_at(&self, file: &File, name: &str) -> bool {
        match (
            file.metadata(),
            rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW),
        ) {
            (Ok(open), Ok(there)) => open.dev() == there.st_dev && open.ino() == there.st_ino,
            _ => false,
        }
    }

    /// The directory's entries (not `.` and `..`), with their type and age, never followed.
    pub(super) fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = rustix::fs::Dir::read_from(&self.fd) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        dir.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str().ok()?.to_owned();
                if name == "." || name == ".." {
                    return None;
                }
                let stat =
                    rustix::fs::statat(&self.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
                let modified = UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or_default());
                Some(Entry {
                    is_file: FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile,
                    age: now.duration_since(modified).unwrap_or_default(),
                    name,
                })
            })
            .collect()
    }
}

/// Why the directories above `dir` make it unsafe: one owned by someone other than root
/// and us, or writable by group or others without the sticky bit. With `inclusive`, `dir`
/// itself is checked too.
fn ancestors_refusal(dir: &Path, euid: u32, inclusive: bool) -> Option<String> {
    let skip = usize::from(!inclusive);
    for parent in dir.ancestors().skip(skip) {
        let Ok(meta) = fs::symlink_metadata(parent) else {
            continue;
        };
        let (uid, mode) = (meta.uid(), meta.mode());
        if uid != 0 && uid != euid {
            return Some(format!(
                "{} above it is owned by uid {uid}, neither root nor this process's uid {euid}",
                shown(parent)
            ));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Some(format!(
                "{} above it is writable by group or others without the sticky bit (mode {:03o})",
                shown(parent),
                mode & 0o777
            ));
        }
    }
    None
}

/// Why a file or directory must not be trusted: another owner, or open to group or
/// others. `None` when it is ours alone.
fn refusal(uid: u32, mode: u32, euid: u32) -> Option<String> {
    if uid != euid {
        return Some(format!(
            "it is owned by uid {uid}, not by this process's uid {euid}"
        ));
    }
    let mode = mode & 0o777;
    if mode & 0o077 != 0 {
        return Some(format!(
            "its mode {mode:03o} lets group or others in (chmod go-rwx it)"
        ));
    }
    None
}
