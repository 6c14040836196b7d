//! `lwolf_stats`: what a client has done, for an operator who watches it.

use crate::client::{client_ref, lwolf_client};
use crate::{ffi_boundary, lwolf_status, null_argument};
use lwolf_auth::Error;

/// What a client and every handle made from it (tenants, APIs) have done, and when the
/// token of the handle asked expires. The caller sets `size` to `sizeof(lwolf_stats)`; the
/// library writes only the fields that fit in it, so a program built against an older,
/// shorter `lwolf_stats` keeps working. Later fields are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct lwolf_stats {
    /// Set by the caller: `sizeof(lwolf_stats)`.
    pub size: u32,
    /// Requests sent to the token endpoint, retries included.
    pub token_requests: u64,
    /// Token fetches that ended in an error.
    pub token_failures: u64,
    /// Tokens taken from `cache_dir` or `cache_url` instead of fetched.
    pub tokens_shared: u64,
    /// Renewals after an API 401/403.
    pub forced_renewals: u64,
    /// 401/403 handed back without a renewal (the 30 s bound, or a Transact 403).
    pub renewals_declined: u64,
    /// Retries of token and API requests.
    pub retries: u64,
    /// API request attempts sent.
    pub api_requests: u64,
    /// Calls that waited for `max_in_flight` or `max_requests_per_second`.
    pub throttled: u64,
    /// The cached token's expiry, Unix milliseconds; 0 when none.
    pub token_expires_at_ms: i64,
}

/// Fills `*out` with `client`'s counters: `out->size` must be set by the caller (at least
/// `sizeof(uint32_t)` plus whole fields; a smaller size is `LWOLF_ERR_INVALID_ARGUMENT`), and
/// only the fields that fit in it are written. NULL arguments are
/// `LWOLF_ERR_INVALID_ARGUMENT`. Reading the counters takes no lock. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn lwolf_client_stats(
    client: *const lwolf_client,
    out: *mut lwolf_stats,
) -> lwolf_status {
    ffi_boundary(|| {
        // SAFETY: the caller promises a live handle (or NULL, which is checked).
        let client = unsafe { client_ref(client) }?;
        if out.is_null() {
            return Err(null_argument("out"));
        }
        // SAFETY: non-NULL; the caller promises at least the `size` field readable.
        let size = unsafe { std::ptr::addr_of!((*out).size).read_unaligned() } as usize;
        let first_field = std::mem::offset_of!(lwolf_stats, token_requests);
        if size < first_field + std::mem::size_of::<u64>() {
            return Err(Error::InvalidArgument(
                format!("out->size is {size}: set it to sizeof(lwolf_stats)").into(),
            ));
        }
        let s = client.client.stats();
        let full = lwolf_stats {
            size: size.min(std::mem::size_of::<lwolf_stats>()) as u32,
            token_requests: s.token_requests,
            token_failures: s.token_failures,
            tokens_shared: s.tokens_shared,
            forced_renewals: s.forced_renewals,
            renewals_declined: s.renewals_declined,
            retries: s.retries,
            api_requests: s.api_requests,
            throttled: s.throttled,
            token_expires_at_ms: s.token_expires_at_ms,
        };
        // Whole fields only (each past `size` is 8 bytes).
        let n =
            (first_field + (size - first_field) / 8 * 8).min(std::mem::size_of::<lwolf_stats>());
        // SAFETY: the caller promises `size` writable bytes at `out`; `full` is a plain
        // repr(C) value, and only its bytes from the first field up to `n <= size_of` are
        // copied (`size` stays as the caller set it, and the padding after it, which holds
        // nothing, is not copied).
        unsafe {
            let from = std::ptr::addr_of!(full).cast::<u8>();
            let to = out.cast::<u8>();
            std::ptr::copy_nonoverlapping(
                from.add(first_field),
                to.add(first_field),
                n - first_field,
            );
        }
        Ok(lwolf_status::LWOLF_OK)
    })
}
