//! The wall clock of the cached-token hot path.

#![forbid(unsafe_code)]

use std::time::SystemTime;

/// The wall clock for expiry checks. On Linux this is `CLOCK_REALTIME_COARSE`: it trails the
/// precise clock by at most one kernel tick (1-4 ms), far inside a token's safety margin of
/// min(60 s, 5% of its lifetime), and costs a quarter of a precise read on virtual machines,
/// where the precise read dominates the whole cached path (BENCHMARKS.md, rows 1.x).
/// The monotonic check beside it stays precise.
pub(crate) fn wall_now() -> SystemTime {
    #[cfg(target_os = "linux")]
    {
        use std::time::{Duration, UNIX_EPOCH};
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            return UNIX_EPOCH + Duration::new(secs, nanos);
        }
    }
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn coarse_wall_clock_trails_the_precise_one_by_at_most_a_tick() {
        for _ in 0..1000 {
            let coarse = wall_now();
            let precise = SystemTime::now();
            // Coarse may lag (a tick is at most 10 ms, at HZ=100) but never leads.
            let lag = precise
                .duration_since(coarse)
                .expect("the coarse clock ran ahead of the precise one");
            assert!(lag <= Duration::from_millis(20), "lag {lag:?}");
        }
    }
}
