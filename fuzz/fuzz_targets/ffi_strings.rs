#![no_main]
//! The C ABI's string inputs on arbitrary bytes: what is done with each input is
//! `fuzz/ffi_strings_input.rs`, which `tests/ffi_fuzz_regressions.rs` replays the kept
//! inputs through.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lwolf_auth_ffi::lwolf_client;

#[path = "../../test-support/src/c_calls.rs"]
mod c_calls;
#[path = "../ffi_strings_input.rs"]
mod ffi_strings_input;

struct Shared(*mut lwolf_client);
// SAFETY: an lwolf_client is thread-safe by contract (shared across threads in C).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<Shared> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| Shared(ffi_strings_input::dead_client()))
        .0;
    ffi_strings_input::replay(client, data);
});
