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

#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, SetFileSecurityW, TokenUser, DACL_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

/// A directory that passed the checks.
pub(crate) struct SafeDir {
    path: PathBuf,
}

/// What opening the directory came to.
pub(super) enum Opened {
    Safe(SafeDir),
    /// Missing, and not to be made.
    Missing,
    /// Not to be used: why (for the log).
    Refused(String),
}

/// One entry of the directory, as the sweep needs it.
pub(super) struct Entry {
    pub name: String,
    pub is_file: bool,
    pub age: Duration,
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
        if let Err(e) = owner_only(path) {
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

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// Gives `dir` a protected DACL of one entry, inherited by what is made in it: full control
/// for this process's user, no one else.
fn owner_only(dir: &Path) -> io::Result<()> {
    set_owner_only(dir, "OICI")
}

/// Gives `path` a protected DACL of one entry with these inheritance flags: full control for
/// this process's user, no one else.
fn set_owner_only(path: &Path, inherit: &str) -> io::Result<()> {
    static SID: once_cell::sync::OnceCell<String> = once_cell::sync::OnceCell::new();
    let sid = SID.get_or_try_init(current_user_sid)?;
    let sddl = wide(format!("D:P(A;{inherit};FA;;;{sid})").as_ref());
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; on success the descriptor is the system's
    // allocation, freed below with LocalFree.
    let made = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if made == 0 {
        return Err(io::Error::last_os_error());
    }
    let path = wide(path.as_os_str());
    // SAFETY: `path` is NUL-terminated and `descriptor` a valid descriptor until freed.
    let set = unsafe {
        SetFileSecurityW(
            path.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            descriptor,
        )
    };
    let error = (set == 0).then(io::Error::last_os_error);
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW; freed once.
    unsafe { LocalFree(descriptor) };
    error.map_or(Ok(()), Err)
}

/// This process's user, as an SID string (`S-1-5-21-…`).
fn current_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the current process's pseudo-handle; `token` receives a handle closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut len = 0u32;
    // SAFETY: a size query: no buffer, `len` receives the size needed.
    unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
    // u64s: aligned for TOKEN_USER.
    let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
    // SAFETY: `buf` holds at least `len` bytes.
    let got =
        unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) };
    let error = (got == 0).then(io::Error::last_os_error);
    // SAFETY: the handle OpenProcessToken gave; closed once.
    unsafe { CloseHandle(token) };
    if let Some(e) = error {
        return Err(e);
    }
    // SAFETY: GetTokenInformation wrote a TOKEN_USER at the start of the aligned buffer.
    let user = unsafe { &*buf.as_ptr().cast::<TOKEN_USER>() };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID lives in `buf`; `text` receives a LocalAlloc'd string freed below.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is NUL-terminated; read up to the NUL, then freed once.
    let sid = unsafe {
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let sid = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        sid
    };
    Ok(sid)
}
