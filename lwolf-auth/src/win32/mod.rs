//! The crate's calls into Win32 that std does not make: the owner-only DACLs of the shared
//! cache (`disk/sys_windows.rs`) and of the agent's files, the certificate store's roots
//! (`roots.rs`, for `ca_system`), and the agent's named pipe (`named_pipe`). The one place
//! of the core crate with `unsafe` on Windows.

#![allow(unsafe_code)]

pub(crate) mod named_pipe;

use std::io;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, SetLastError, CRYPT_E_NOT_FOUND, HANDLE,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    ConvertStringSidToSidW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::Cryptography::{
    CertCloseStore, CertEnumCertificatesInStore, CertGetEnhancedKeyUsage, CertOpenStore,
    CERT_CONTEXT, CERT_STORE_OPEN_EXISTING_FLAG, CERT_STORE_PROV_SYSTEM_W,
    CERT_STORE_READONLY_FLAG, CERT_SYSTEM_STORE_CURRENT_USER, CERT_SYSTEM_STORE_LOCAL_MACHINE,
    CTL_USAGE,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, LookupAccountNameW, SetFileSecurityW, TokenGroups, TokenUser,
    DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    TOKEN_GROUPS, TOKEN_INFORMATION_CLASS, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::SystemServices::SE_GROUP_ENABLED;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// `s` as a NUL-terminated UTF-16 string.
pub(crate) fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// This process's user's SID, read once.
pub(crate) fn own_sid() -> io::Result<&'static str> {
    static SID: once_cell::sync::OnceCell<String> = once_cell::sync::OnceCell::new();
    SID.get_or_try_init(current_user_sid).map(String::as_str)
}

/// A security descriptor made from its SDDL string: the system's allocation, to be freed
/// with `LocalFree`.
pub(crate) fn security_descriptor(sddl: &str) -> io::Result<PSECURITY_DESCRIPTOR> {
    let sddl = wide(sddl.as_ref());
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; on success the descriptor is the system's
    // allocation, which the caller frees.
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
    Ok(descriptor)
}

/// Gives `path` a protected DACL of one entry with these inheritance flags: full control for
/// this process's user, no one else.
pub(crate) fn set_owner_only(path: &Path, inherit: &str) -> io::Result<()> {
    let sid = own_sid()?;
    let descriptor = security_descriptor(&format!("D:P(A;{inherit};FA;;;{sid})"))?;
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

/// Gives the file at `path` a protected DACL that lets this process's user alone in: what
/// mode 0600 is on Unix (the `lwolf` agent's key and token files).
pub fn make_file_private(path: &Path) -> io::Result<()> {
    set_owner_only(path, "")
}

/// This process's user, as an SID string (`S-1-5-21-…`).
pub(crate) fn current_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the current process's pseudo-handle; `token` receives a handle closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let sids = token_sids(token, false);
    // SAFETY: the handle OpenProcessToken gave; closed once.
    unsafe { CloseHandle(token) };
    sids.map(|mut sids| sids.swap_remove(0))
}

/// The SIDs of an access token (opened for `TOKEN_QUERY`), as strings: its user first, then,
/// with `groups`, the groups it is a member of and that are enabled for access checks.
pub(crate) fn token_sids(token: HANDLE, groups: bool) -> io::Result<Vec<String>> {
    let user = token_information(token, TokenUser)?;
    // SAFETY: GetTokenInformation wrote a TOKEN_USER at the start of the aligned buffer.
    let user = unsafe { &*user.as_ptr().cast::<TOKEN_USER>() };
    let mut sids = vec![sid_string(user.User.Sid)?];
    if groups {
        let info = token_information(token, TokenGroups)?;
        // SAFETY: a TOKEN_GROUPS at the start of the aligned buffer, its `GroupCount`
        // entries following in it (GetTokenInformation wrote them all).
        let groups = unsafe {
            let list = &*info.as_ptr().cast::<TOKEN_GROUPS>();
            std::slice::from_raw_parts(list.Groups.as_ptr(), list.GroupCount as usize)
        };
        for group in groups {
            if group.Attributes & SE_GROUP_ENABLED as u32 != 0 {
                sids.push(sid_string(group.Sid)?);
            }
        }
    }
    Ok(sids)
}

/// One class of a token's information, in a buffer aligned for its structures.
fn token_information(token: HANDLE, class: TOKEN_INFORMATION_CLASS) -> io::Result<Vec<u64>> {
    let mut len = 0u32;
    // SAFETY: a size query: no buffer, `len` receives the size needed.
    unsafe { GetTokenInformation(token, class, std::ptr::null_mut(), 0, &mut len) };
    let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
    // SAFETY: `buf` holds at least `len` bytes.
    let got = unsafe { GetTokenInformation(token, class, buf.as_mut_ptr().cast(), len, &mut len) };
    if got == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

/// A SID as its string form.
fn sid_string(sid: PSID) -> io::Result<String> {
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` points into a token buffer that outlives this call; `text` receives a
    // LocalAlloc'd string freed below.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
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

/// A SID string parsed and written again, in its standard form.
pub(crate) fn canonical_sid(text: &str) -> io::Result<String> {
    let wide_text = wide(text.as_ref());
    let mut sid: PSID = std::ptr::null_mut();
    // SAFETY: `wide_text` is NUL-terminated; `sid` receives a LocalAlloc'd SID freed below.
    if unsafe { ConvertStringSidToSidW(wide_text.as_ptr(), &mut sid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let canonical = sid_string(sid);
    // SAFETY: allocated by ConvertStringSidToSidW; freed once.
    unsafe { LocalFree(sid) };
    canonical
}

/// The SID of an account (a user or a group) by its name, as a string.
pub(crate) fn account_sid(name: &str) -> io::Result<String> {
    let wide_name = wide(name.as_ref());
    let (mut sid_len, mut domain_len, mut kind) = (0u32, 0u32, 0);
    // SAFETY: a size query: no buffers; the lengths receive the sizes needed.
    unsafe {
        LookupAccountNameW(
            std::ptr::null(),
            wide_name.as_ptr(),
            std::ptr::null_mut(),
            &mut sid_len,
            std::ptr::null_mut(),
            &mut domain_len,
            &mut kind,
        )
    };
    if sid_len == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut sid = vec![0u64; (sid_len as usize).div_ceil(8)];
    let mut domain = vec![0u16; domain_len.max(1) as usize];
    // SAFETY: the buffers hold the sizes the query gave.
    let found = unsafe {
        LookupAccountNameW(
            std::ptr::null(),
            wide_name.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut sid_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if found == 0 {
        return Err(io::Error::last_os_error());
    }
    sid_string(sid.as_mut_ptr().cast())
}

/// The DER of every root in the user's and the machine's Root stores that is good for
/// server authentication (no extended key usage, or one that names it).
pub(crate) fn store_roots() -> Vec<Vec<u8>> {
    const SERVER_AUTH: &[u8] = b"1.3.6.1.5.5.7.3.1";
    let name = wide("ROOT".as_ref());
    let mut roots = Vec::new();
    for location in [
        CERT_SYSTEM_STORE_CURRENT_USER,
        CERT_SYSTEM_STORE_LOCAL_MACHINE,
    ] {
        // SAFETY: a system store opened read-only by its NUL-terminated name; closed below.
        let store = unsafe {
            CertOpenStore(
                CERT_STORE_PROV_SYSTEM_W,
                0,
                0,
                location | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG,
                name.as_ptr().cast(),
            )
        };
        if store.is_null() {
            continue;
        }
        let mut cert: *const CERT_CONTEXT = std::ptr::null();
        loop {
            // SAFETY: `store` is open; the previous context is released by the call.
            cert = unsafe { CertEnumCertificatesInStore(store, cert) };
            if cert.is_null() {
                break;
            }
            // SAFETY: a live context from the store; its encoding is cbCertEncoded bytes.
            let (der, usable) = unsafe {
                let c = &*cert;
                if c.pbCertEncoded.is_null() || c.cbCertEncoded == 0 {
                    continue;
                }
                let der = std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize);
                (der.to_vec(), good_for_server_auth(cert, SERVER_AUTH))
            };
            if usable && !roots.contains(&der) {
                roots.push(der);
            }
        }
        // SAFETY: opened above, closed once.
        unsafe { CertCloseStore(store, 0) };
    }
    roots
}

/// Whether `cert`'s extended key usage allows server authentication: none said (all
/// allowed), or one that names it.
///
/// # Safety
/// `cert` must be a live certificate context.
unsafe fn good_for_server_auth(cert: *const CERT_CONTEXT, server_auth: &[u8]) -> bool {
    let mut size = 0u32;
    // SAFETY: a size query on a live context.
    if unsafe { CertGetEnhancedKeyUsage(cert, 0, std::ptr::null_mut(), &mut size) } == 0 {
        return false;
    }
    // u64s: aligned for CTL_USAGE.
    let mut buf = vec![0u64; (size as usize).div_ceil(8).max(1)];
    let usage = buf.as_mut_ptr().cast::<CTL_USAGE>();
    // A stale error must not pass for "no usage said" below.
    // SAFETY: no precondition.
    unsafe { SetLastError(0) };
    // SAFETY: `buf` holds `size` bytes.
    if unsafe { CertGetEnhancedKeyUsage(cert, 0, usage, &mut size) } == 0 {
        return false;
    }
    // SAFETY: written by the call above.
    let usage = unsafe { &*usage };
    if usage.cUsageIdentifier == 0 {
        // SAFETY: no precondition.
        return unsafe { GetLastError() } == CRYPT_E_NOT_FOUND as u32;
    }
    (0..usage.cUsageIdentifier as usize).any(|i| {
        // SAFETY: cUsageIdentifier NUL-terminated OID strings.
        let oid = unsafe { std::ffi::CStr::from_ptr((*usage.rgpszUsageIdentifier.add(i)).cast()) };
        oid.to_bytes() == server_auth
    })
}
