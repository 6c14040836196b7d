//! Cheap randomness for spreading things out: retry waits, refresh times, temp file names.
//! Not cryptographic: `fastrand`'s generator, one per thread.
//!
//! A child of `fork()` inherits the forking thread's generator, so the children of one
//! parent would draw the same sequence (and refresh in step, the very thing jitter is for):
//! each child reseeds it from the system's random source (`reseed`, from the fork handler).

#![forbid(unsafe_code)]

/// A uniformly distributed number in `[0, 1)`.
pub(crate) fn fraction() -> f64 {
    fastrand::f64()
}

/// 32 random bits, for names that must not collide between processes.
pub(crate) fn u32() -> u32 {
    fastrand::u32(..)
}

/// Gives this thread (a child of a fork's only one) a generator of its own.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn reseed() {
    let mut seed = [0u8; 8];
    let fresh = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
    let seed = match fresh {
        Ok(()) => u64::from_le_bytes(seed),
        // No random source: the pid still tells siblings apart.
        Err(_) => (u64::from(std::process::id()) << 32) ^ fastrand::u64(..),
    };
    fastrand::seed(seed);
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
