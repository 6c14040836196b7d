//! The clocks of the token deadlines, and the one RFC 3339 formatter of the crate.
//!
//! A token is checked against a monotonic clock (it stops while the machine sleeps, as
//! `Instant` does) and the wall clock (it jumps, but says when a sleeping machine woke up
//! past the expiry). On Linux both are the kernel's *coarse* clocks: they trail the precise
//! ones by at most one kernel tick (1-4 ms), far inside a token's safety margin of
//! min(60 s, 5% of its lifetime), and cost a quarter of a precise read on virtual machines,
//! where the precise reads dominate the whole cached-token path (BENCHMARKS.md, rows 1.x).

#![forbid(unsafe_code)]

use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime};

/// A point on the monotonic clock. Only differences between points mean anything.
///
/// The kernel's clock counts from boot, so a token obtained before the boot (read from the
/// shared disk cache on a machine up for a minute) could not be placed on it. Every reading
/// is therefore shifted by [`HEADROOM`], longer than any lifetime a token is given: any
/// token the wall clock can place, the monotonic clock can place too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mono(Duration);

/// How far before the clock's origin a point may lie: longer than the longest lifetime a
/// token is given (`token::MAX_LIFETIME`), so a token placed at the earliest point is
/// already expired.
pub(crate) const HEADROOM: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

impl Mono {
    /// Now, on the monotonic clock.
    pub(crate) fn now() -> Mono {
        #[cfg(target_os = "linux")]
        {
            let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                return Mono(Duration::new(secs, nanos) + HEADROOM);
            }
        }
        portable_now()
    }

    /// The point `d` earlier, or the earliest point if `d` reaches back further: a token
    /// placed there is past every deadline, as it should be.
    pub(crate) fn saturating_sub(self, d: Duration) -> Mono {
        Mono(self.0.saturating_sub(d))
    }

    /// Time since `earlier`, or zero if `earlier` is later.
    pub(crate) fn saturating_since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Elsewhere: `Instant`, counted from the first reading in this process.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn portable_now() -> Mono {
    use once_cell::sync::Lazy;
    use std::time::Instant;
    static ORIGIN: Lazy<Instant> = Lazy::new(Instant::now);
    Mono(ORIGIN.elapsed() + HEADROOM)
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(d))
    }
}

impl Sub for Mono {
    type Output = Duration;
    fn sub(self, earlier: Mono) -> Duration {
        self.saturating_since(earlier)
    }
}

/// The most the kernel's coarse clocks trail the precise ones: one tick, 10 ms at the lowest
/// tick rate Linux has (HZ=100).
#[cfg(target_os = "linux")]
const COARSE_LAG: Duration = Duration::from_millis(10);

/// The wall clock for expiry checks: `CLOCK_REALTIME_COARSE` on Linux, moved on by the most
/// it can trail the precise clock, so that it is never behind it: a token is never handed out
/// once the precise clock has passed its usable time (it loses at most 10 ms of use).
pub(crate) fn wall_now() -> SystemTime {
    #[cfg(target_os = "linux")]
    {
        use std::time::UNIX_EPOCH;
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            return UNIX_EPOCH + Duration::new(secs, nanos) + COARSE_LAG;
        }
    }
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_wall_clock_is_never_behind_the_precise_one() {
        for _ in 0..1000 {
            let precise = SystemTime::now();
            let ours = wall_now();
            // Never behind (a token past its time by the precise clock is never handed
            // out), and ahead by at most the bound plus this loop's own time.
            let lead = ours
                .duration_since(precise)
                .expect("wall_now() was behind the precise clock");
            assert!(lead <= Duration::from_millis(30), "lead {lead:?}");
        }
    }

    #[test]
    fn monotonic_clock_advances_with_instant_within_a_tick() {
        let (m0, i0) = (Mono::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (m1, i1) = (Mono::now(), Instant::now());
        assert!(m1 >= m0, "the monotonic clock went back");
        let diff = (m1 - m0).as_secs_f64() - (i1 - i0).as_secs_f64();
        assert!(
            diff.abs() < 0.025,
            "coarse and precise disagree by {diff} s"
        );
        assert_eq!(m0 + Duration::from_secs(1) - m0, Duration::from_secs(1));
        // A whole token lifetime before boot is still a distinct point, whatever the uptime.
        let long_ago = Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(m0 - m0.saturating_sub(long_ago), long_ago);
    }
}
