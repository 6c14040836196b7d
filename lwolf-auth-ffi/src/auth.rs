//! What a request sent by other means (libcurl, say) carries: `lwolf_client_auth_headers`,
//! `lwolf_client_dpop_nonce`.

use std::ffi::c_char;

use crate::client::{client_ref, lwolf_client};
use crate::{buffer_too_small, ffi_boundary, lwolf_status, null_argument, str_arg, write_out};
use lwolf_auth::Error;

/// Writes what a request of `method` (`"GET"`…) to `url` (absolute) must carry, for
/// callers that send their own requests: the `Authorization` header's value (`Bearer
/// <token>`, or `DPoP <token>` for a DPoP-bound token) into `authorization` (of
/// `authorization_cap` bytes) and, for a DPoP-bound token, the `DPoP` header's value (a new
/// proof for `method` and `url`) into `dpop` (of `dpop_cap` bytes); `dpop` gets `""` for a
/// bearer token. Each gets a terminating NUL. A token is fetched if none is cached.
///
/// `*authorization_len` and `*dpop_len` are set to the values' lengths (without the NUL),
/// also on `LWOLF_ERR_BUFFER_TOO_SMALL` (either buffer too short; nothing is copied then:
/// call again with larger buffers, for a new proof). `dpop` may be NULL when `dpop_cap` is
/// 0. NULL `client`, `method`, `url`, `authorization`, `authorization_len` or `dpop_len`,
/// or NULL `dpop` with a non-zero `dpop_cap`, is `LWOLF_ERR_INVALID_ARGUMENT`. So is a `url`
/// the token must not go to: only this handle's API origin and the vendor's two APIs as
/// configured (`api_base_url`, `transact_base_url`) get it, and nothing is fetched for any
/// other. The values are secrets: send them, never log them. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_auth_headers(
    client: *const lwolf_client,
    method: *const c_char,
    url: *const c_char,
    authorization: *mut c_char,
    authorization_cap: usize,
    authorization_len: *mut usize,
    dpop: *mut c_char,
    dpop_cap: usize,
    dpop_len: *mut usize,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated strings, as the caller promises.
        let (method, url) = unsafe { (str_arg(method, "method")?, str_arg(url, "url")?) };
        if authorization.is_null() {
            return Err(null_argument("authorization"));
        }
        if authorization_len.is_null() {
            return Err(null_argument("authorization_len"));
        }
        if dpop_len.is_null() {
            return Err(null_argument("dpop_len"));
        }
        if dpop.is_null() && dpop_cap != 0 {
            return Err(Error::InvalidArgument(
                "dpop is NULL but dpop_cap is not 0".into(),
            ));
        }
        let headers = client.client.auth_headers(method, url)?;
        let (auth, proof) = (headers.authorization(), headers.dpop().unwrap_or(""));
        // SAFETY: both checked non-NULL; the caller promises writable size_ts.
        unsafe {
            write_out(authorization_len, auth.len(), "authorization_len")?;
            write_out(dpop_len, proof.len(), "dpop_len")?;
        }
        if authorization_cap <= auth.len() || dpop_cap <= proof.len() {
            return Ok(buffer_too_small(
                if authorization_cap <= auth.len() {
                    auth.len()
                } else {
                    proof.len()
                } + 1,
            ));
        }
        // SAFETY: each buffer is non-NULL (its cap is above a length) and the caller
        // promises `cap` writable bytes; `len + 1 <= cap` are written; the values are ours.
        unsafe {
            copy_with_nul(auth, authorization);
            copy_with_nul(proof, dpop);
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Keeps the `DPoP-Nonce` header a server at `url` answered with (to a request sent by
/// other means), so that the next proof for that origin carries it. Does nothing when
/// `dpop` is off. NULL arguments or strings that are not UTF-8 are
/// `LWOLF_ERR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_dpop_nonce(
    client: *const lwolf_client,
    url: *const c_char,
    nonce: *const c_char,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated strings, as the caller promises.
        let (url, nonce) = unsafe { (str_arg(url, "url")?, str_arg(nonce, "nonce")?) };
        client.client.dpop_nonce(url, nonce);
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Tells the client that this handle's API answered 401 to a request sent by other means
/// with `token` (the `Authorization` value `lwolf_client_auth_headers` gave, or the bare
/// token): as `lwolf_client_reject_token_at` with the handle's API and 401.
/// NULL arguments are `LWOLF_ERR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_reject_token(
    client: *const lwolf_client,
    token: *const c_char,
    send_again: *mut i32,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: NULL or a NUL-terminated string, as the caller promises.
        let token = unsafe { str_arg(token, "token") }?;
        if send_again.is_null() {
            return Err(null_argument("send_again"));
        }
        let again = i32::from(client.client.reject_token(token));
        // SAFETY: checked non-NULL; the caller promises a writable int.
        unsafe { write_out(send_again, again, "send_again") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Tells the client that the server at `url` answered `http_status` to a request sent by
/// other means with `token` (the `Authorization` value `lwolf_client_auth_headers` gave, or
/// the bare token). `*send_again` is set to 1 when the request should be sent once more
/// (with `lwolf_client_auth_headers` again): the token was renewed, as `lwolf_client_send`
/// renews it (a 401; a 403 of an API other than the Transact API; at most once per 30 s for
/// this identity and API), or a newer token is in service already. It is set to 0 when the
/// answer stands: another status, a renewal less than 30 s ago, or an empty token or one that
/// was never this client's (nothing is fetched for those). A `url` the token must not go to
/// (see `lwolf_client_auth_headers`), NULL arguments and strings that are not UTF-8 are
/// `LWOLF_ERR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_reject_token_at(
    client: *const lwolf_client,
    url: *const c_char,
    http_status: u16,
    token: *const c_char,
    send_again: *mut i32,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: NULL or NUL-terminated strings, as the caller promises.
        let (url, token) = unsafe { (str_arg(url, "url")?, str_arg(token, "token")?) };
        if send_again.is_null() {
            return Err(null_argument("send_again"));
        }
        let again = i32::from(client.client.reject_token_at(url, http_status, token)?);
        // SAFETY: checked non-NULL; the caller promises a writable int.
        unsafe { write_out(send_again, again, "send_again") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Copies `value` and a NUL to `dst`.
///
/// # Safety
/// `dst` must have room for `value.len() + 1` bytes and not overlap `value`.
unsafe fn copy_with_nul(value: &str, dst: *mut c_char) {
    // SAFETY: as the caller promises.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), dst.cast::<u8>(), value.len());
        dst.add(value.len()).write(0);
    }
}
