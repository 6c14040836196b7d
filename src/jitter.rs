//! Cheap randomness for spreading things out: retry waits, refresh times, temp file names,
//! the sandbox's made-up tokens and ids. Not cryptographic.
//!
//! A child of `fork()` inherits the state, so the children of one parent would draw the
//! same sequence (and refresh in step, the very thing jitter is for): each child mixes a
//! salt of its own into it (`reseed`, from the fork handler).

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use once_cell::sync::Lazy;

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// This process's salt: 0 in the first process, new in each child of a fork.
static SALT: AtomicU64 = AtomicU64::new(0);

/// 64 random bits: a counter and this process's salt hashed with keys the standard library
/// draws from the OS once.
pub(crate) fn u64() -> u64 {
    static KEYS: Lazy<RandomState> = Lazy::new(RandomState::new);
    let mut hasher = KEYS.build_hasher();
    hasher.write_u64(SALT.load(Ordering::Relaxed));
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Gives this process a salt of its own: called in a child of a fork, where the keys and
/// the counter are the parent's (and every sibling's).
pub(crate) fn reseed() {
    let mut salt = [0u8; 8];
    let fresh = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
    let salt = match fresh {
        Ok(()) => u64::from_le_bytes(salt),
        // No random source: the pid still tells siblings apart.
        Err(_) => u64::from(std::process::id()) << 32 | 1,
    };
    SALT.store(salt, Ordering::Relaxed);
}

/// A uniformly distributed number in `[0, 1)`.
pub(crate) fn fraction() -> f64 {
    // 53 random bits make every f64 in [0, 1) at that spacing equally likely.
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 32 random bits, for names that must not collide between processes.
pub(crate) fn u32() -> u32 {
    (u64() >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_stay_in_range_and_vary() {
        let draws: Vec<f64> = (0..1000).map(|_| fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(draws.iter().any(|f| *f < 0.1) && draws.iter().any(|f| *f > 0.9));
        assert_ne!(u32(), u32());
    }
}
