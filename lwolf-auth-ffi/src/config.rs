//! `lwolf_config`: the configuration builder.

use std::ffi::c_char;

use crate::{
    ffi_boundary, ffi_boundary_keep_last_error, free_owned, lwolf_status, maybe_test_panic,
    null_argument, str_arg, to_c_owned, write_out,
};
use lwolf_auth::ConfigBuilder;

/// A configuration being built: every key starts at its default; set keys with
/// `lwolf_config_set`, then make clients from it with `lwolf_client_new`.
///
/// Created by `lwolf_config_new` or `lwolf_config_from_env`, freed by `lwolf_config_free`.
/// Not thread-safe: use one configuration from one thread at a time (several threads may
/// call `lwolf_client_new` on it at once, as long as none is setting a key).
pub struct lwolf_config {
    pub(crate) builder: ConfigBuilder,
}

/// Creates a configuration with every key at its default and stores it in `*out`.
///
/// `out` must not be NULL (`LWOLF_ERR_INVALID_ARGUMENT`). On success the caller owns
/// `*out` and frees it with `lwolf_config_free`; on failure `*out` is not written.
#[no_mangle]
pub unsafe extern "C" fn lwolf_config_new(out: *mut *mut lwolf_config) -> lwolf_status {
    ffi_boundary(|| {
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let cfg = to_c_owned(lwolf_config {
            builder: ConfigBuilder::default(),
        });
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_config *`.
        unsafe { write_out(out, cfg, "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Creates a configuration from the environment and stores it in `*out`: every key `k`
/// is read from the variable `LWOLF_` + `k` in upper case (`LWOLF_CLIENT_ID`,
/// `LWOLF_CLIENT_SECRET`, `LWOLF_TOKEN_URL`…); unset and empty variables keep the default.
/// More keys can be set afterwards with `lwolf_config_set`.
///
/// A variable that is not UTF-8 or holds an unparsable value gives
/// `LWOLF_ERR_INVALID_ARGUMENT` (the message names the variable, never its value).
/// `out` must not be NULL. On success the caller owns `*out` and frees it with
/// `lwolf_config_free`; on failure `*out` is not written.
///
/// Reads the process environment: do not call it while another thread changes it.
#[no_mangle]
pub unsafe extern "C" fn lwolf_config_from_env(out: *mut *mut lwolf_config) -> lwolf_status {
    ffi_boundary(|| {
        if out.is_null() {
            return Err(null_argument("out"));
        }
        let builder = ConfigBuilder::from_env()?;
        // SAFETY: checked non-NULL; the caller promises a writable `lwolf_config *`.
        unsafe { write_out(out, to_c_owned(lwolf_config { builder }), "out") }?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Sets configuration key `key` to `value`; both are NUL-terminated UTF-8 strings, copied
/// (the caller keeps ownership and may free them when this returns).
///
/// The keys are those of the contract: `client_id`, `client_secret`, `client_secret_file`,
/// `audience`, `token_url`, `api_base_url`, `lwt_client_id`, `refresh_ratio`, `timeout_ms`,
/// `deadline_ms` (the bound on one call, all attempts and waits included; 60000),
/// `max_retries`, `retry_base_ms`, `retry_max_ms`, `token_format` (`json` or `form`),
/// `client_auth` (`body`, `basic` or `private_key_jwt`), `private_key_file` (the PEM RSA key,
/// PKCS#8 or PKCS#1, that signs `private_key_jwt` assertions; read by `lwolf_client_new`),
/// `private_key_id` (the assertion's `kid`), `assertion_alg` (`RS256`, `RS384` or `PS256`),
/// `assertion_audience` (default: the token URL's origin and `/`), `dpop` (`on` or `off`:
/// DPoP-bound tokens), `dpop_key_file` (a PEM PKCS#8 P-256 key for the proofs; unset: one
/// made by `lwolf_client_new`), `ca_file`, `ca_system` (`on`: the operating system's roots
/// too, the Windows certificate store on Windows), `user_agent`,
/// `max_response_bytes` (largest API response body read), `cache_dir` (a directory for the
/// token cache shared by the processes of one user; empty or unset: memory only),
/// `cache_url` (`redis://` or `rediss://`: the token cache shared by the processes of many
/// hosts; a Redis that fails is logged and left alone for a minute, never an error),
/// `subscription_key` (sent as `lw-subscription-key` on every request to the two APIs, never
/// to the token endpoint; a secret like `client_secret`), `subscription_key_file`,
/// `transact_base_url`, `max_in_flight`, `max_requests_per_second` and `request_id_header`.
///
/// A NULL argument, a string that is not UTF-8, an unknown key or an unparsable value is
/// `LWOLF_ERR_INVALID_ARGUMENT`, and leaves the configuration as it was. Whether the whole
/// configuration is complete and allowed (URLs, files) is checked by `lwolf_client_new`.
/// Not thread-safe for one `cfg`.
#[no_mangle]
pub unsafe extern "C" fn lwolf_config_set(
    cfg: *mut lwolf_config,
    key: *const c_char,
    value: *const c_char,
) -> lwolf_status {
    ffi_boundary(|| {
        if cfg.is_null() {
            return Err(null_argument("cfg"));
        }
        // SAFETY: the caller promises NUL-terminated strings that live through this call.
        let key = unsafe { str_arg(key, "key") }?;
        // SAFETY: as above.
        let value = unsafe { str_arg(value, "value") }?;
        // SAFETY: checked non-NULL; the caller promises a live config used by one thread.
        let cfg = unsafe { &mut *cfg };
        maybe_test_panic(key);
        cfg.builder.set(key, value)?;
        Ok(lwolf_status::LWOLF_OK)
    })
}

/// Frees a configuration made by `lwolf_config_new` or `lwolf_config_from_env`.
///
/// NULL does nothing; the last error is kept. Clients made from `cfg` are not affected: they
/// keep their own copy of the settings. The secret held in the configuration is zeroed.
/// `cfg` must not be used again, nor freed twice.
#[no_mangle]
pub unsafe extern "C" fn lwolf_config_free(cfg: *mut lwolf_config) {
    // SAFETY: the caller gives up a handle this library made (or NULL).
    ffi_boundary_keep_last_error(|| unsafe { free_owned(cfg) })
}
