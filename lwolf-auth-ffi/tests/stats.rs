//! `lwolf_client_stats` and its size-prefixed struct, as the contract has it: the caller sets
//! `size`, the library writes whole fields up to it and not a byte past (nor the padding
//! after `size`), so a program built against an older, shorter `lwolf_stats` keeps working.

use lwolf_test_support::{c_calls, common};

use std::mem::{offset_of, size_of};

use common::{Server, CLIENT_ID, SECRET};
use lwolf_auth_ffi::{lwolf_client_free, lwolf_client_stats, lwolf_stats, lwolf_status};

const CANARY: u8 = 0xA5;

/// The struct's bytes after a call with `size` set, the rest of them filled with the canary,
/// and the status.
fn call(client: *const lwolf_auth_ffi::lwolf_client, size: u32) -> (lwolf_status, Vec<u8>) {
    let mut bytes = vec![CANARY; size_of::<lwolf_stats>()];
    bytes[..4].copy_from_slice(&size.to_ne_bytes());
    // SAFETY: a live client; `bytes` is a whole lwolf_stats' worth of writable memory (the
    // library may write up to `size` of them), read unaligned by the library.
    let status = unsafe { lwolf_client_stats(client, bytes.as_mut_ptr().cast::<lwolf_stats>()) };
    (status, bytes)
}

fn field(bytes: &[u8], offset: usize) -> u64 {
    u64::from_ne_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

#[test]
fn only_whole_fields_up_to_size_are_written() {
    let server = Server::tokens();
    let client = c_calls::client(&[
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("token_url", &server.token_url()),
    ]);
    c_calls::token(client).unwrap();
    let first = offset_of!(lwolf_stats, token_requests);

    // Too small for one field: refused, nothing written past `size`.
    for size in [0, 4, first as u32 + 7] {
        let (status, bytes) = call(client, size);
        assert_eq!(
            status,
            lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
            "size {size}"
        );
        assert!(bytes[4..].iter().all(|&b| b == CANARY), "size {size}");
        assert!(
            c_calls::last_error().contains("size"),
            "{}",
            c_calls::last_error()
        );
    }

    // One field, and half of the next: the first only; the padding after `size` untouched.
    let (status, bytes) = call(client, first as u32 + 8 + 4);
    assert_eq!(status, lwolf_status::LWOLF_OK);
    assert!(bytes[4..first].iter().all(|&b| b == CANARY), "{bytes:?}");
    assert_eq!(field(&bytes, first), 1, "one token request");
    assert!(bytes[first + 8..].iter().all(|&b| b == CANARY), "{bytes:?}");

    // The whole struct: every field, the token's expiry last.
    let (status, bytes) = call(client, size_of::<lwolf_stats>() as u32);
    assert_eq!(status, lwolf_status::LWOLF_OK);
    assert_eq!(field(&bytes, first), 1);
    assert_eq!(field(&bytes, offset_of!(lwolf_stats, retries)), 0);
    let expires = field(&bytes, offset_of!(lwolf_stats, token_expires_at_ms)) as i64;
    assert!(expires > 1_700_000_000_000, "{expires}");
    // `size` is the caller's, as set.
    assert_eq!(
        u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
        size_of::<lwolf_stats>() as u32
    );

    // NULL arguments are refused.
    // SAFETY: NULLs are what is tested.
    let status = unsafe { lwolf_client_stats(client, std::ptr::null_mut()) };
    assert_eq!(status, lwolf_status::LWOLF_ERR_INVALID_ARGUMENT);
    let mut stats = lwolf_stats {
        size: size_of::<lwolf_stats>() as u32,
        ..Default::default()
    };
    // SAFETY: as above.
    let status = unsafe { lwolf_client_stats(std::ptr::null(), &mut stats) };
    assert_eq!(status, lwolf_status::LWOLF_ERR_INVALID_ARGUMENT);
    // SAFETY: made above, freed once.
    unsafe { lwolf_client_free(client) };
}
