//! Cheap randomness for spreading things out: retry waits, refresh times, temp file names,
//! the sandbox's made-up tokens and ids. Not cryptographic.

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use once_cell::sync::Lazy;

/// 64 random bits: a counter hashed with keys the standard library draws from the OS once.
pub(crate) fn u64() -> u64 {
    static KEYS: Lazy<RandomState> = Lazy::new(RandomState::new);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEYS.build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
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
