//! `lwolf_sign_fn`: a signer of `private_key_jwt` assertions whose key the library never
//! sees (an HSM, a cloud KMS, a TPM), and `lwolf_config_set_signer`.

use std::ffi::c_void;
use std::sync::Arc;

use crate::config::lwolf_config;
use crate::{ffi_boundary, lwolf_status, null_argument};
use lwolf_auth::{AssertionAlg, Signer};

/// The most room given for a signature: an RSA key of 8192 bits.
const SIGNATURE_ROOM: usize = 1024;

/// A signer: writes the signature of `input[0..input_len]` (the assertion's signing input)
/// into `sig` (room for `sig_cap` bytes, 1024: enough for any RSA key up to 8192 bits) and
/// its length into `*sig_len`, and returns 0. RS256 and RS384 are RSASSA-PKCS1-v1_5 with
/// SHA-256 and SHA-384, PS256 is RSASSA-PSS with SHA-256; the raw signature bytes. Any other
/// return value fails that token request with `LWOLF_ERR_CONFIG`, the message naming the
/// value. `userdata` is what was given to `lwolf_config_set_signer`. It may be called from
/// any thread, and never under a lock of a token's fetch (it may call `lwolf_` functions;
/// a `lwolf_client_token` of the same client from inside it waits for its own fetch, so it
/// fails at its deadline). It should bound its own time: the library cannot interrupt it,
/// and the call that asked fails with `LWOLF_ERR_DEADLINE` once it returns late.
pub type lwolf_sign_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        input: *const u8,
        input_len: usize,
        sig: *mut u8,
        sig_cap: usize,
        sig_len: *mut usize,
    ) -> i32,
>;

/// The C signer and its userdata.
struct CSigner {
    sign: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8, usize, *mut usize) -> i32,
    userdata: *mut c_void,
}

// SAFETY: the caller of `lwolf_config_set_signer` promises that the signer may be called
// from any thread with this userdata, for as long as a client made with the configuration
// lives.
unsafe impl Send for CSigner {}
unsafe impl Sync for CSigner {}

impl Signer for CSigner {
    fn sign(&self, _alg: AssertionAlg, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut sig = vec![0u8; SIGNATURE_ROOM];
        let mut len = 0usize;
        // SAFETY: the callback and userdata are the caller's, valid as promised; `input`
        // and `sig` are live buffers of the lengths given, and `len` a writable usize.
        let rc = unsafe {
            (self.sign)(
                self.userdata,
                input.as_ptr(),
                input.len(),
                sig.as_mut_ptr(),
                sig.len(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(format!("the signer returned {rc}"));
        }
        if len > sig.len() {
            return Err(format!(
                "the signer wrote a length of {len}, more than the {SIGNATURE_ROOM} bytes of room"
            ));
        }
        sig.truncate(len);
        Ok(sig)
    }
}

/// Signs the `private_key_jwt` assertions of clients made from `cfg` with `sign` (see
/// `lwolf_sign_fn`), passing `userdata`: the key never enters the library. With a signer,
/// `client_auth` is `private_key_jwt`, no `private_key_file` is read, and `private_key_id`
/// is required (the assertion's `kid`, which names the key; `lwolf_client_new` fails with
/// `LWOLF_ERR_CONFIG` without it). `assertion_alg` says which signature is asked for.
/// `sign` and `userdata` must stay valid for as long as any client made from `cfg` lives,
/// and a little longer: a refresh begun before the last `lwolf_client_free` finishes on its
/// own thread and may sign. Keep them for the life of the process (or of the program's use of
/// the library). With `cache_dir` or `cache_url`, the signer is also asked once, by
/// `lwolf_client_new`, for the key the shared caches seal tokens with (RS256 and RS384 only:
/// the signature of a fixed text, so it must be deterministic, as PKCS #1 v1.5 is).
/// A NULL `sign` removes the signer. NULL `cfg` is `LWOLF_ERR_INVALID_ARGUMENT`.
///
/// With a shared cache (`cache_dir`, `cache_url`) and RS256 or RS384, making a client asks
/// the signer once more, for the signature of a fixed text: the key that seals the shared
/// tokens (deterministic, and made only with the key). With PS256 (randomized) tokens are
/// not shared.
#[no_mangle]
pub unsafe extern "C" fn lwolf_config_set_signer(
    cfg: *mut lwolf_config,
    sign: lwolf_sign_fn,
    userdata: *mut c_void,
) -> lwolf_status {
    ffi_boundary(|| {
        if cfg.is_null() {
            return Err(null_argument("cfg"));
        }
        // SAFETY: non-NULL; the caller promises a live configuration used by this thread.
        let cfg = unsafe { &mut *cfg };
        let builder = std::mem::take(&mut cfg.builder);
        cfg.builder = match sign {
            Some(sign) => builder.signer(Arc::new(CSigner { sign, userdata })),
            None => builder.without_signer(),
        };
        Ok(lwolf_status::LWOLF_OK)
    })
}
