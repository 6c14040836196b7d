//! Arguments from C: pointers and strings checked before use (NULL is
//! `LWOLF_ERR_INVALID_ARGUMENT`, never a crash; no slice is built from a NULL pointer), handles
//! handed out and taken back, out-parameters written.

use std::ffi::{c_char, CStr};

use lwolf_auth::Error;

/// The error for a NULL pointer argument.
pub(crate) fn null_argument(name: &str) -> Error {
    Error::InvalidArgument(format!("{name} is NULL").into_boxed_str())
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid and unchanged
/// for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string valid for 'a.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8").into_boxed_str()))
}

/// Reads a byte-buffer argument; NULL is allowed only with a length of 0 (giving `None`).
///
/// # Safety
///
/// `ptr` must be NULL or point to `len` readable bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<Option<&'a [u8]>, Error> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(None);
        }
        return Err(Error::InvalidArgument(
            format!("{name} is NULL but {name}_len is {len}").into_boxed_str(),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(
            format!("{name}_len is too large").into_boxed_str(),
        ));
    }
    // SAFETY: not NULL, len fits in isize, and the caller promises `len` readable bytes.
    Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }))
}

/// Moves `value` to the heap and hands it to C, which frees it with the matching `*_free`.
pub(crate) fn to_c_owned<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees what `to_c_owned` handed to C: the body of every `*_free`. NULL does nothing.
///
/// # Safety
///
/// `ptr` must be NULL or a pointer from `to_c_owned::<T>` that C gives up here: not used
/// again, nor freed twice.
pub(crate) unsafe fn free_owned<T>(ptr: *mut T) -> Result<(), Error> {
    if !ptr.is_null() {
        // SAFETY: non-NULL, made by Box::into_raw in `to_c_owned`, and given up by the caller.
        drop(unsafe { Box::from_raw(ptr) });
    }
    Ok(())
}

/// Writes an out-parameter.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: not NULL; the caller promises it is valid for writes. `write` does not drop
    // whatever (possibly uninitialised) value was there.
    unsafe { out.write(value) };
    Ok(())
}

/// Panics on purpose when `key` is the test key; the ABI tests prove the boundary catches it.
#[cfg(any(test, feature = "ffi-test-panic"))]
pub(crate) fn maybe_test_panic(key: &str) {
    if key == "__lwolf_test_panic" {
        panic!("test panic requested through lwolf_config_set");
    }
}

/// Without the `ffi-test-panic` feature the test key is just an unknown key.
#[cfg(not(any(test, feature = "ffi-test-panic")))]
pub(crate) fn maybe_test_panic(_key: &str) {}
