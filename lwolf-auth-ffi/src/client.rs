//! `lwolf_client`: tokens and API requests.

use std::ffi::{c_char, c_void};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::request::{lwolf_request, lwolf_write_fn, request_ref, CallbackWriter};
use crate::response::lwolf_response;
use crate::{
    buffer_too_small, bytes_arg, ffi_boundary, ffi_boundary_keep_last_error, free_owned,
    lwolf_config, lwolf_status, null_argument, str_arg, to_c_owned, write_out,
};
use lwolf_auth::unversioned::EditRequest;
use lwolf_auth::{Client, Error, Request};

/// A token client for one identity (client id, and customer instance if any): it fetches a
/// token when needed, caches it, refreshes it ahead of expiry, and sends API requests with it.
///
/// Thread-safe: share one client across all threads; they share its token, and at most one
/// token request is in flight at a time. Created by `lwolf_client_new` or
/// `lwolf_client_for_tenant`, freed by `lwolf_client_free` once no thread uses it any more.
pub struct lwolf_client {
    pub(super) client: Client,
}

/// Metadata of the current token, filled in by `lwolf_client_token_info`. Times are UNIX
/// seconds by the wall clock.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lwolf_token_info {
    /// When the token expires.
    pub expires_at_unix: i64,
    /// When the token is due for refresh (the client refreshes it at its first use after this).
    pub refresh_at_unix: i64,
    /// The last moment the token is handed out: expiry less a safety margin.
    pub usable_until_unix: i64,
    /// The lifetime the server granted, in seconds.
    pub lifetime_secs: u64,
    /// A short, stable, non-reversible name for the token (hex digits of its SHA-256),
    /// NUL-terminated; safe to log and to compare across processes.
    pub fingerprint: [c_char; 16],
    /// How the token is sent, NUL-terminated: `"Bearer"`, or `"DPoP"` for a token bound to
    /// the client's DPoP key (only with `dpop` on).
    pub token_type: [c_char; 8],
}

/// Makes a client from the settings in `cfg` and stores it in `*out`. No network I/O
/// happens here: the first token is fetched on first use.
///
/// `cfg` stays the caller's (it is only read, and may be freed or changed afterwards);
/// the client keeps its own copy of the settings. A missing `client_id` or secret, an
/// unreadable `client_secret_file` or `ca_file`, a URL that is neither `https://` nor
/// `http://` to a loopback host, or a `cache_url` that is not `redis://` or `rediss://` is
/// `LWOLF_ERR_CONFIG`. NULL `cfg` or `out` is
/// `LWOLF_ERR_INVALID_ARGUMENT`. On success the caller owns `*out` and frees it with
/// `lwolf_client_free`; on failure `*out` is not written.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_new(
    cfg: *const lwolf_config,
    out: *mut *mut lwolf_client,
) -> lwolf_status {
    ffi_boundary(|| {
        if cfg.is_null() {
            return Err(null_argument("cfg"));
        }
        if out.is_null() {
            return Err(null_argument("out"));
        }
        // SAFETY: checked non-NULL; the caller promises a live config not being changed now.
        let cfg = unsafe { &*cfg };
        let client = Client::new(cfg.builder.build()?);
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_client *`.
        unsafe { write_out(out, to_c_owned(lwolf_client { client }), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Makes a client for another customer instance (`lwt_client_id`, a NUL-terminated UTF-8
/// string, copied) and stores it in `*out`: the same settings and connection pool as
/// `client`, but its own token.
///
/// Each handle is freed on its own with `lwolf_client_free`, in any order: either may
/// outlive the other. An empty `lwt_client_id` is `LWOLF_ERR_INVALID_ARGUMENT`, as is any
/// NULL argument. On failure `*out` is not written. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_for_tenant(
    client: *const lwolf_client,
    lwt_client_id: *const c_char,
    out: *mut *mut lwolf_client,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller promises a NUL-terminated string that lives through this call.
        let lwt_client_id = unsafe { str_arg(lwt_client_id, "lwt_client_id") }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let tenant = client.client.for_tenant(lwt_client_id)?;
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_client *`.
        unsafe { write_out(out, to_c_owned(lwolf_client { client: tenant }), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Frees a client. NULL does nothing. Does not change the last error.
///
/// Call it once no other thread is using `client`; clients made from it with
/// `lwolf_client_for_tenant`, and responses it returned, stay valid. The client must not be
/// used again, nor freed twice.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_free(client: *mut lwolf_client) {
    // SAFETY: the caller gives up a handle this library made (or NULL).
    ffi_boundary_keep_last_error(|| unsafe { free_owned(client) })
}

/// Copies a usable bearer token and a terminating NUL into `buf` (of `buf_len` bytes) and
/// stores the token's length, without the NUL, in `*token_len`.
///
/// The cached token is used while it is servable: that path does no I/O and no allocation.
/// Otherwise a token is fetched (blocking, with retries), and the error of that request is
/// returned if it fails (`LWOLF_ERR_INVALID_CREDENTIALS`, `LWOLF_ERR_TRANSPORT`…).
///
/// If `buf_len` is less than the token's length + 1, nothing is copied, `*token_len` is
/// still set and `LWOLF_ERR_BUFFER_TOO_SMALL` is returned: call again with a buffer of at
/// least `*token_len + 1` bytes. `buf` may be NULL when `buf_len` is 0, to ask for the length
/// alone. The cached token is not affected by a short buffer.
///
/// NULL `client` or `token_len`, or NULL `buf` with a non-zero `buf_len`, is
/// `LWOLF_ERR_INVALID_ARGUMENT`. The token is a secret: do not log it (log the fingerprint
/// from `lwolf_client_token_info`). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_token(
    client: *const lwolf_client,
    buf: *mut c_char,
    buf_len: usize,
    token_len: *mut usize,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        if token_len.is_null() {
            return Err(null_argument("token_len"));
        }
        if buf.is_null() && buf_len != 0 {
            return Err(Error::InvalidArgument(
                "buf is NULL but buf_len is not 0".into(),
            ));
        }
        // The copy runs under the cache's lock on the cached path (no `Arc` clone and drop).
        let len = client.client.with_token(|token| {
            let secret = token.secret().as_bytes();
            if buf_len > secret.len() {
                // SAFETY: buf is non-NULL here (buf_len > 0) and the caller promises `buf_len`
                // writable bytes; we write `secret.len() + 1 <= buf_len` of them. The token
                // is ours, so the two regions cannot overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(secret.as_ptr(), buf.cast::<u8>(), secret.len());
                    buf.add(secret.len()).write(0);
                }
            }
            secret.len()
        })?;
        // SAFETY: checked non-NULL; the caller promises a writable size_t.
        unsafe { write_out(token_len, len, "token_len") }?;
        if buf_len <= len {
            return Ok(buffer_too_small(len + 1));
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Fills `*out` with the metadata of a usable token (fingerprint, expiry, refresh time,
/// lifetime), fetching one exactly as `lwolf_client_token` does if none is cached.
///
/// NULL `client` or `out` is `LWOLF_ERR_INVALID_ARGUMENT`; `*out` is written only on
/// success. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_token_info(
    client: *const lwolf_client,
    out: *mut lwolf_token_info,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let token = client.client.token()?;
        let mut fingerprint = [0 as c_char; 16];
        for (dst, src) in fingerprint
            .iter_mut()
            .zip(token.fingerprint().bytes().take(15))
        {
            *dst = src as c_char;
        }
        let mut token_type = [0 as c_char; 8];
        for (dst, src) in token_type
            .iter_mut()
            .zip(token.token_type().as_str().bytes().take(7))
        {
            *dst = src as c_char;
        }
        let info = lwolf_token_info {
            token_type,
            expires_at_unix: unix_secs(token.expires_at()),
            refresh_at_unix: unix_secs(token.refresh_at()),
            usable_until_unix: unix_secs(token.usable_until()),
            lifetime_secs: token.lifetime().as_secs(),
            fingerprint,
        };
        // SAFETY: checked non-NULL; the caller promises a writable lwolf_token_info.
        unsafe { write_out(out, info, "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Drops the cached token, so that the next `lwolf_client_token` or request fetches a new
/// one (after the server revoked it, for example). No network I/O. NULL `client` is
/// `LWOLF_ERR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_invalidate(client: *const lwolf_client) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        unsafe { client_ref(client) }?.client.invalidate();
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Sends an API request and stores the response in `*out`.
///
/// `method` (`"GET"`, `"POST"`…) and `path` are NUL-terminated UTF-8 strings. `path` is
/// appended to `api_base_url` (`"/v1/transactions"`), or is an absolute URL on the same
/// origin as `api_base_url`; another origin is `LWOLF_ERR_INVALID_ARGUMENT`, so the token
/// is never sent elsewhere. The request carries `Authorization: Bearer <token>` and
/// `Accept: application/json`.
///
/// `body` points to `body_len` bytes sent as `Content-Type: application/json`, copied
/// before this returns. NULL `body` with `body_len` 0 sends no body (and no Content-Type);
/// a non-NULL `body` with `body_len` 0 sends an empty one; NULL with a non-zero length is
/// `LWOLF_ERR_INVALID_ARGUMENT`.
///
/// Every HTTP status, 4xx and 5xx included, is a response and `LWOLF_OK`: check
/// `lwolf_response_status`. A 401/403 renews the token and retries once; 408, 429 and 5xx
/// are retried for GET, HEAD, PUT, DELETE and OPTIONS. Errors mean no response could be had
/// (token failure, transport failure, bad arguments); `*out` is written only on success,
/// and the caller owns it then and frees it with `lwolf_response_free`. Blocking.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_request(
    client: *const lwolf_client,
    method: *const c_char,
    path: *const c_char,
    body: *const u8,
    body_len: usize,
    out: *mut *mut lwolf_response,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller promises NUL-terminated strings that live through this call.
        let method = unsafe { str_arg(method, "method") }?;
        // SAFETY: as above.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: the caller promises `body_len` readable bytes at `body` (or NULL and 0).
        let body = unsafe { bytes_arg(body, body_len, "body") }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let mut request = Request::new(method, path)?;
        if let Some(body) = body {
            request.set_body(body, None)?;
        }
        let response = client.client.send(&request)?;
        let response = to_c_owned(lwolf_response::new(response));
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_response *`.
        unsafe { write_out(out, response, "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Sends `req` and stores the response in `*out`, read whole (at most `max_response_bytes`).
///
/// The request carries `Authorization: Bearer <token>`, `Accept: application/json` (unless
/// it has its own), `lw-subscription-key` when one is configured, its headers, query and
/// body. The rules are those of `lwolf_client_request`: every HTTP status is a response and
/// `LWOLF_OK`; a 401/403 renews the token and resends, at most once per 30 s for this
/// identity; 408, 429, 5xx and lost connections are retried for GET, HEAD, PUT, DELETE and
/// OPTIONS only; the token goes to the client's origin alone. `req` is only read: any number
/// of threads may send it at once. On success the caller owns `*out` (free it with
/// `lwolf_response_free`); on failure `*out` is not written. Blocking. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_send(
    client: *const lwolf_client,
    req: *const lwolf_request,
    out: *mut *mut lwolf_response,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller promises a live request (or NULL, which is checked).
        let request = unsafe { request_ref(req) }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let response = client.client.send(request)?;
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_response *`.
        unsafe { write_out(out, to_c_owned(lwolf_response::new(response)), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Sends `req` as `lwolf_client_send` does, but passes the body of the response it hands
/// back to `write` (with `userdata`), in pieces as they arrive, never holding it whole:
/// `max_response_bytes` does not apply. `*out` then has the status and headers, and an empty
/// body.
///
/// Responses the client consumes itself (a 401/403 it renews on, a 5xx it retries, a
/// redirect it follows) do not reach `write`; once `write` has been called, the exchange is
/// final (never retried). A `write` that returns non-zero stops the transfer:
/// `LWOLF_ERR_ABORTED`, and `*out` is not written. `write` runs on the calling thread, only
/// during this call. NULL `write` is `LWOLF_ERR_INVALID_ARGUMENT`. Blocking. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_send_to(
    client: *const lwolf_client,
    req: *const lwolf_request,
    write: lwolf_write_fn,
    userdata: *mut c_void,
    out: *mut *mut lwolf_response,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller promises a live request (or NULL, which is checked).
        let request = unsafe { request_ref(req) }?;
        let Some(write) = write else {
            return Err(null_argument("write"));
        };
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let mut writer = CallbackWriter { write, userdata };
        let response = client.client.send_to(request, &mut writer)?;
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_response *`.
        unsafe { write_out(out, to_c_owned(lwolf_response::new(response)), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Makes a client for another API that takes the same tokens (the Transact API,
/// `https://gateway.lwolf.com/transact-workflow`, beside the Back Office API) and stores it
/// in `*out`: the same identity, token cache, connection pool and settings, and
/// `api_base_url` (a NUL-terminated UTF-8 string, copied; the same URL rules, else
/// `LWOLF_ERR_CONFIG`) as the base of its requests. The bearer token goes only to each
/// handle's own origin. Each handle is freed on its own with `lwolf_client_free`, in any
/// order: either may outlive the other. On failure `*out` is not written. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_for_api(
    client: *const lwolf_client,
    api_base_url: *const c_char,
    out: *mut *mut lwolf_client,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller promises a NUL-terminated string that lives through this call.
        let api_base_url = unsafe { str_arg(api_base_url, "api_base_url") }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let other = client.client.for_api(api_base_url)?;
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_client *`.
        unsafe { write_out(out, to_c_owned(lwolf_client { client: other }), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Makes `*out` a handle for the Transact API (`transact_base_url`): the same token, pool and
/// caches as `client`, `lw-subscription-key` on every call, and the Transact API's rules: a
/// 401 renews the token (bounded), a 403 never does (it is about the subscription key; a
/// warning says so, at most once a minute). Without a `subscription_key` its calls fail with
/// `LWOLF_ERR_CONFIG` before anything is sent. Free it with `lwolf_client_free`, in any
/// order: either may outlive the other. On failure `*out` is not written. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_transact(
    client: *const lwolf_client,
    out: *mut *mut lwolf_client,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let transact = client.client.transact();
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_client *`.
        unsafe { write_out(out, to_c_owned(lwolf_client { client: transact }), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Borrows the client behind a handle.
///
/// # Safety
///
/// `client` must be NULL or a live handle from `lwolf_client_new`/`lwolf_client_for_tenant`
/// that is not freed for `'a`.
pub(crate) unsafe fn client_ref<'a>(
    client: *const lwolf_client,
) -> Result<&'a lwolf_client, Error> {
    if client.is_null() {
        return Err(null_argument("client"));
    }
    // SAFETY: non-NULL; the caller promises a live handle from lwolf_client_new/for_tenant,
    // not freed while this call runs. Only `&` access: the client is Sync.
    Ok(unsafe { &*client })
}

/// UNIX seconds, negative before 1970.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}
