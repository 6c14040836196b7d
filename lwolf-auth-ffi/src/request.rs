//! `lwolf_request`: an API request with headers, query, any method and body.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use crate::{
    bytes_arg, ffi_boundary, ffi_boundary_keep_last_error, free_owned, lwolf_status, null_argument,
    str_arg, to_c_owned, write_out,
};
use lwolf_auth::unversioned::EditRequest;
use lwolf_auth::{Error, Request};

/// An API request: method, path, headers, query, body and timeout.
///
/// Made by `lwolf_request_new`, filled in with `lwolf_request_header`, `lwolf_request_query`,
/// `lwolf_request_body` and `lwolf_request_timeout_ms` on one thread, then sent with
/// `lwolf_client_send` or `lwolf_client_send_to`. Once built it is only read: send it from any
/// threads, at the same time, any number of times. Freed by `lwolf_request_free`, once no
/// send of it is running.
pub struct lwolf_request {
    pub(crate) request: Request,
}

/// Called with each piece of a streamed response body (`lwolf_client_send_to`): `data` holds
/// `len` bytes, valid during the call only. Return 0 to go on; anything else stops the
/// transfer (`LWOLF_ERR_ABORTED`). Called on the thread that sends, never after the send
/// returns.
pub type lwolf_write_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, data: *const u8, len: usize) -> c_int>;

/// Makes a request of `method` to `path` and stores it in `*out`.
///
/// `method` is an HTTP method token, sent as given (`"GET"`, `"PATCH"`…); empty or not a
/// token is `LWOLF_ERR_INVALID_ARGUMENT`. `path` is appended to the client's `api_base_url`
/// (or is an absolute URL on its origin), and may carry its own query. Both are copied. On
/// success the caller owns `*out` and frees it with `lwolf_request_free`; on failure `*out` is
/// not written.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_new(
    method: *const c_char,
    path: *const c_char,
    out: *mut *mut lwolf_request,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises NUL-terminated strings that live through this call.
        let method = unsafe { str_arg(method, "method") }?;
        // SAFETY: as above.
        let path = unsafe { str_arg(path, "path") }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let request = to_c_owned(lwolf_request {
            request: Request::new(method, path)?,
        });
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_request *`.
        unsafe { write_out(out, request, "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Adds a header (a repeated name adds another value); both strings are copied.
///
/// A name that is not an HTTP token, a value holding CR, LF, NUL or another control
/// character but tab, non-UTF-8 text, and the names the library owns (`Authorization`,
/// `Content-Length`, `Transfer-Encoding`, `Host`) are `LWOLF_ERR_INVALID_ARGUMENT`, and leave
/// the request as it was. A caller's `Accept` replaces the default `application/json`; a
/// `Content-Type` replaces the body's. Not thread-safe for one `req`.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_header(
    req: *mut lwolf_request,
    name: *const c_char,
    value: *const c_char,
) -> lwolf_status {
    // SAFETY: the caller promises a live request used by this thread alone, and strings
    // that live through this call.
    ffi_boundary(|| unsafe { with_pair(req, name, value, |r, n, v| r.add_header(n, v).map(drop)) })
}

/// Appends `name=value` to the query; both are copied and percent-encoded so that the server
/// decodes exactly these UTF-8 strings (every byte but `A-Z a-z 0-9 - . _ ~` and `$` becomes
/// `%XX`; a space is `%20`). NULL or non-UTF-8 is `LWOLF_ERR_INVALID_ARGUMENT`. Not
/// thread-safe for one `req`.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_query(
    req: *mut lwolf_request,
    name: *const c_char,
    value: *const c_char,
) -> lwolf_status {
    // SAFETY: as for lwolf_request_header.
    ffi_boundary(|| unsafe {
        with_pair(req, name, value, |r, n, v| {
            r.add_query(n, v);
            Ok(())
        })
    })
}

/// Sets the body: `body_len` bytes at `body` (any bytes, copied), sent with `content_type`
/// (NULL: `application/json`). `body` may be NULL when `body_len` is 0 (an empty body). A
/// second call replaces the first. Not thread-safe for one `req`.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_body(
    req: *mut lwolf_request,
    body: *const u8,
    body_len: usize,
    content_type: *const c_char,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live request used by this thread alone.
        let req = unsafe { request_mut(req) }?;
        // SAFETY: `body_len` readable bytes at `body`, or NULL and 0.
        let body = unsafe { bytes_arg(body, body_len, "body") }?.unwrap_or_default();
        let content_type = if content_type.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string that lives through this call.
            Some(unsafe { str_arg(content_type, "content_type") }?)
        };
        req.request.set_body(body, content_type)?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Bounds each attempt of this request (connect to last byte) by `timeout_ms` milliseconds,
/// instead of the client's `timeout_ms`; 0 goes back to the client's. Not thread-safe for one
/// `req`.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_timeout_ms(
    req: *mut lwolf_request,
    timeout_ms: u64,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live request used by this thread alone.
        let req = unsafe { request_mut(req) }?;
        match timeout_ms {
            0 => drop(req.request.set_timeout(None)?),
            ms => {
                req.request.set_timeout(Some(Duration::from_millis(ms)))?;
            }
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Frees a request. NULL does nothing; the last error is kept. No send of it may be running;
/// it must not be used again, nor freed twice.
#[no_mangle]
pub unsafe extern "C" fn lwolf_request_free(req: *mut lwolf_request) {
    // SAFETY: the caller gives up a handle this library made (or NULL).
    ffi_boundary_keep_last_error(|| unsafe { free_owned(req) })
}

/// `change` applied to the request with a name and a value read from C strings.
///
/// # Safety
///
/// As [`request_mut`] for `req`; `name` and `value` NULL or NUL-terminated strings that live
/// through the call.
unsafe fn with_pair(
    req: *mut lwolf_request,
    name: *const c_char,
    value: *const c_char,
    change: impl FnOnce(&mut Request, &str, &str) -> Result<(), Error>,
) -> Result<lwolf_status, Error> {
    // SAFETY: as the caller promises.
    let req = unsafe { request_mut(req) }?;
    // SAFETY: as the caller promises.
    let (name, value) = unsafe { (str_arg(name, "name")?, str_arg(value, "value")?) };
    change(&mut req.request, name, value)?;
    Ok(lwolf_status::LWOLF_OK)
}

/// Borrows the request behind a handle, to change it.
///
/// # Safety
///
/// `req` must be NULL or a live handle from `lwolf_request_new` that no other thread uses for
/// `'a`.
unsafe fn request_mut<'a>(req: *mut lwolf_request) -> Result<&'a mut lwolf_request, Error> {
    if req.is_null() {
        return Err(null_argument("req"));
    }
    // SAFETY: non-NULL; the caller promises a live handle used by this thread alone.
    Ok(unsafe { &mut *req })
}

/// Borrows the request behind a handle, to send it.
///
/// # Safety
///
/// `req` must be NULL or a live handle from `lwolf_request_new`, not changed or freed for
/// `'a`.
pub(crate) unsafe fn request_ref<'a>(req: *const lwolf_request) -> Result<&'a Request, Error> {
    if req.is_null() {
        return Err(null_argument("req"));
    }
    // SAFETY: non-NULL; the caller promises a live handle only read while this runs.
    Ok(unsafe { &(*req).request })
}

/// A `Write` over a C callback.
pub(crate) struct CallbackWriter {
    pub(crate) write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    pub(crate) userdata: *mut c_void,
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: the caller of lwolf_client_send_to gave a callback that takes `userdata`
        // and reads `len` bytes at `data` during the call.
        let rc = unsafe { (self.write)(self.userdata, buf.as_ptr(), buf.len()) };
        if rc != 0 {
            return Err(std::io::Error::other(format!(
                "the write callback returned {rc}"
            )));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
