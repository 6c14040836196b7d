//! The C ABI of lwolf-auth: `liblwolf_auth.so` / `liblwolf_auth.a` and `include/lwolf_auth.h`.
//!
//! One file per C object (`config.rs`, `client.rs`, `request.rs`, `response.rs`, `auth.rs` for
//! requests sent by other means, `log.rs`, `status.rs`), and the three things every export
//! shares: the panic boundary (`boundary.rs`), the thread's last error (`last_error.rs`) and
//! the checks of what C passes in (`args.rs`).
//!
//! This crate only translates between C and the Rust API: pointers and C strings in,
//! status codes, buffers and handles out. It holds no logic of its own.
//!
//! Every `unsafe` block and every `extern "C" fn` of the library lives in this crate.
//! The rules every exported function follows:
//!
//! - its whole body runs inside `ffi_boundary` (or `ffi_boundary_keep_last_error` for the
//!   functions that read rather than report, and the `*_free` functions, which C calls
//!   between a failure and reading its message), so no panic crosses the ABI: a caught one
//!   becomes `LWOLF_ERR_INTERNAL` with a message;
//! - every pointer is checked before use (NULL gives `LWOLF_ERR_INVALID_ARGUMENT`), and no
//!   slice is ever built from a NULL pointer;
//! - the calling thread's last-error message is cleared on entry and set on every failure;
//! - out-parameters are written only on success;
//! - enums coming from C are read as integers, never as Rust enums (an out-of-range value
//!   would be undefined behaviour).
//!
//! `tests/ffi_boundary.rs` checks the first rule by reading the sources of this crate.
//!
//! The functions are public so that the header generator and the ABI tests see them; from
//! Rust, use the Rust API instead: these trust their pointer arguments as C callers must.

#![allow(unsafe_code)]
// The C names (`lwolf_client`, `LWOLF_OK`) are the contract.
#![allow(non_camel_case_types)]
// The exports are `unsafe extern "C" fn`s: C cannot see the difference, and safe Rust cannot
// hand them a dangling pointer. Their safety contract is the one every doc comment (and the
// header's conventions) states: each pointer NULL or valid as described, handles used as
// their docs say. Inside, each dereference is an `unsafe` block with its `SAFETY:` reasoning.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

mod args;
mod auth;
mod boundary;
mod client;
mod config;
mod last_error;
mod log;
mod request;
mod response;
mod signer;
mod stats;
mod status;

pub(crate) use args::{
    bytes_arg, free_owned, maybe_test_panic, null_argument, str_arg, to_c_owned, write_out,
};
pub(crate) use boundary::{ffi_boundary, ffi_boundary_keep_last_error};
pub(crate) use last_error::{
    buffer_too_small, last_error_code_ptr, last_error_ptr, last_http_status,
};

pub use auth::{
    lwolf_client_auth_headers, lwolf_client_dpop_nonce, lwolf_client_reject_token,
    lwolf_client_reject_token_at,
};
pub use client::{
    lwolf_client, lwolf_client_for_api, lwolf_client_for_tenant, lwolf_client_free,
    lwolf_client_invalidate, lwolf_client_new, lwolf_client_request, lwolf_client_send,
    lwolf_client_send_to, lwolf_client_token, lwolf_client_token_info, lwolf_client_transact,
    lwolf_token_info,
};
pub use config::{
    lwolf_config, lwolf_config_free, lwolf_config_from_env, lwolf_config_new, lwolf_config_set,
};
pub use log::{
    lwolf_log_fn, lwolf_set_log_callback, LWOLF_LOG_DEBUG, LWOLF_LOG_ERROR, LWOLF_LOG_INFO,
    LWOLF_LOG_TRACE, LWOLF_LOG_WARN,
};
pub use request::{
    lwolf_request, lwolf_request_body, lwolf_request_free, lwolf_request_header, lwolf_request_new,
    lwolf_request_query, lwolf_request_timeout_ms, lwolf_write_fn,
};
pub use response::{
    lwolf_response, lwolf_response_body, lwolf_response_free, lwolf_response_header,
    lwolf_response_header_at, lwolf_response_header_count, lwolf_response_request_id,
    lwolf_response_status,
};
pub use signer::{lwolf_config_set_signer, lwolf_sign_fn};
pub use stats::{lwolf_client_stats, lwolf_stats};
pub use status::{
    lwolf_last_error_code, lwolf_last_error_http_status, lwolf_last_error_message,
    lwolf_last_error_transport_kind, lwolf_status, lwolf_status_name, lwolf_version,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::ptr;

    fn last_error() -> String {
        // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
        unsafe { CStr::from_ptr(lwolf_last_error_message()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn panic_becomes_internal_with_message() {
        let mut cfg: *mut lwolf_config = ptr::null_mut();
        assert_eq!(
            unsafe { lwolf_config_new(&mut cfg) },
            lwolf_status::LWOLF_OK
        );
        let status =
            unsafe { lwolf_config_set(cfg, c"__lwolf_test_panic".as_ptr(), c"1".as_ptr()) };
        assert_eq!(status, lwolf_status::LWOLF_ERR_INTERNAL);
        let msg = last_error();
        assert!(msg.contains("panic"), "{msg}");
        assert!(msg.contains("test panic requested"), "{msg}");
        // The handle is still usable after the panic.
        assert_eq!(
            unsafe { lwolf_config_set(cfg, c"client_id".as_ptr(), c"x".as_ptr()) },
            lwolf_status::LWOLF_OK
        );
        assert_eq!(last_error(), "");
        unsafe { lwolf_config_free(cfg) };
    }

    #[test]
    fn last_error_is_cleared_on_entry_and_kept_by_readers() {
        assert_eq!(
            unsafe { lwolf_config_new(ptr::null_mut()) },
            lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(last_error(), "invalid argument: out is NULL");
        // Reading the message, the version or a status name does not clear it.
        let _ = unsafe { lwolf_version() };
        let _ = unsafe { lwolf_status_name(3) };
        assert_eq!(last_error(), "invalid argument: out is NULL");
        let mut cfg: *mut lwolf_config = ptr::null_mut();
        assert_eq!(
            unsafe { lwolf_config_new(&mut cfg) },
            lwolf_status::LWOLF_OK
        );
        assert_eq!(last_error(), "");
        unsafe { lwolf_config_free(cfg) };
    }

    #[test]
    fn version_matches_the_crate() {
        // SAFETY: static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(lwolf_version()) };
        assert_eq!(v.to_str().unwrap(), lwolf_auth::VERSION);
    }
}
