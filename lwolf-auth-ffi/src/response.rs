//! `lwolf_response`: an API response, read whole.

use std::ffi::{c_char, CString};

use crate::{
    ffi_boundary, ffi_boundary_keep_last_error, free_owned, lwolf_status, null_argument, str_arg,
    write_out,
};
use lwolf_auth::{Error, Response};

/// The answer to an API request: status, headers and body, read whole.
///
/// Created by `lwolf_client_request`, owned by the caller, freed by `lwolf_response_free`.
/// Every pointer the `lwolf_response_*` functions return is owned by the response and stays
/// valid until it is freed. A response is never changed after it is made, so several threads
/// may read one at once.
pub struct lwolf_response {
    status: u16,
    /// Header names (lower case) and values, in the order received, NUL-terminated for C.
    headers: Vec<(CString, CString)>,
    /// The body followed by one NUL, not counted in its length.
    body: Vec<u8>,
    /// The request id the call carried, NUL-terminated.
    request_id: Option<CString>,
}

impl lwolf_response {
    pub(crate) fn new(response: Response) -> lwolf_response {
        let status = response.status();
        let request_id = response.request_id().and_then(|id| CString::new(id).ok());
        // HTTP forbids NUL in header names and values, so these conversions cannot fail;
        // an impossible one would give an empty string rather than a failure.
        let headers = response
            .headers()
            .map(|(name, value)| {
                (
                    CString::new(name).unwrap_or_default(),
                    CString::new(value).unwrap_or_default(),
                )
            })
            .collect();
        let mut body = response.into_body();
        body.push(0);
        lwolf_response {
            status,
            headers,
            body,
            request_id,
        }
    }
}

/// Returns the request id the call carried (the `request_id_header`, `X-Request-ID` by
/// default: a new random id, the same on its retries, or the caller's own value of that
/// header), owned by the response and valid until `lwolf_response_free`; NULL when request
/// ids are off (`request_id_header` empty) or `response` is NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_request_id(
    response: *const lwolf_response,
) -> *const c_char {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live response (or NULL, which is checked).
        let response = unsafe { response_ref(response) }?;
        Ok(response
            .request_id
            .as_ref()
            .map_or(std::ptr::null(), |id| id.as_ptr()))
    })
}

/// Returns the HTTP status of `response` (200, 404…), or 0 when `response` is NULL.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_status(response: *const lwolf_response) -> u16 {
    // SAFETY: the caller promises a live response (or NULL, which is checked).
    ffi_boundary(|| Ok(unsafe { response_ref(response) }?.status))
}

/// Returns the body of `response` and stores its length in bytes in `*len`.
///
/// The body is owned by the response and valid until `lwolf_response_free`. It is followed
/// by a NUL byte that `*len` does not count, so a text body can be read as a C string
/// (though a body may itself hold NUL bytes: trust `*len`). An empty body gives a valid
/// pointer to `""` and a length of 0.
///
/// NULL `response` or NULL `len` returns NULL, leaves `*len` unwritten and sets the last
/// error. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_body(
    response: *const lwolf_response,
    len: *mut usize,
) -> *const u8 {
    ffi_boundary(|| {
        let response = unsafe { response_ref(response) }?;
        // The stored body always ends with the NUL we added.
        let body_len = response.body.len().saturating_sub(1);
        // SAFETY: write_out checks for NULL; the caller promises a writable size_t.
        unsafe { write_out(len, body_len, "len") }?;
        Ok(response.body.as_ptr())
    })
}

/// Returns the first value of header `name` (a NUL-terminated string, compared without
/// regard to ASCII case), or NULL when the response has no such header.
///
/// The value is a NUL-terminated string owned by the response and valid until
/// `lwolf_response_free`. NULL `response` or `name`, or a `name` that is not UTF-8, also
/// returns NULL: then `lwolf_last_error_message` is not empty, whereas after an absent
/// header it is `""`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_header(
    response: *const lwolf_response,
    name: *const c_char,
) -> *const c_char {
    ffi_boundary(|| {
        let response = unsafe { response_ref(response) }?;
        // SAFETY: the caller promises a NUL-terminated string that lives through this call.
        let name = unsafe { str_arg(name, "name") }?;
        Ok(response
            .headers
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr()))
    })
}

/// Returns how many headers `response` has (a header sent several times counts each time),
/// or 0 when `response` is NULL. Use with `lwolf_response_header_at` to list them.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_header_count(response: *const lwolf_response) -> usize {
    // SAFETY: the caller promises a live response (or NULL, which is checked).
    ffi_boundary(|| Ok(unsafe { response_ref(response) }?.headers.len()))
}

/// Stores the name (in lower case) and value of header number `index` (from 0, in the order
/// received) in `*name` and `*value`.
///
/// Both strings are NUL-terminated, owned by the response and valid until
/// `lwolf_response_free`. An `index` not below `lwolf_response_header_count` or a NULL
/// argument is `LWOLF_ERR_INVALID_ARGUMENT`, and then neither out-parameter is written.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_header_at(
    response: *const lwolf_response,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> lwolf_status {
    ffi_boundary(|| {
        let response = unsafe { response_ref(response) }?;
        if name.is_null() {
            return Err(null_argument("name"));
        }
        if value.is_null() {
            return Err(null_argument("value"));
        }
        let (n, v) = response.headers.get(index).ok_or_else(|| {
            Error::InvalidArgument(
                format!(
                    "header index {index} is out of range (the response has {})",
                    response.headers.len()
                )
                .into_boxed_str(),
            )
        })?;
        // SAFETY: both checked non-NULL; the caller promises writable `const char *`s.
        unsafe {
            write_out(name, n.as_ptr(), "name")?;
            write_out(value, v.as_ptr(), "value")?;
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Frees a response and everything it owns: the body and header strings returned for it
/// become invalid. NULL does nothing; the last error is kept. The response must not be used
/// again, nor freed twice.
#[no_mangle]
pub unsafe extern "C" fn lwolf_response_free(response: *mut lwolf_response) {
    // SAFETY: the caller gives up a handle this library made (or NULL).
    ffi_boundary_keep_last_error(|| unsafe { free_owned(response) })
}

/// Borrows the response behind a handle.
///
/// # Safety
///
/// `response` must be NULL or a live handle from `lwolf_client_request` that is not freed
/// for `'a`.
unsafe fn response_ref<'a>(response: *const lwolf_response) -> Result<&'a lwolf_response, Error> {
    if response.is_null() {
        return Err(null_argument("response"));
    }
    // SAFETY: non-NULL; the caller promises a live handle from lwolf_client_request, not freed
    // while this call runs. Only `&` access: a response is never changed.
    Ok(unsafe { &*response })
}
