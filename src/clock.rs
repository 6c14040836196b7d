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

/// The wall clock for expiry checks: `CLOCK_REALTIME_COARSE` on Linux.
pub(crate) fn wall_now() -> SystemTime {
    #[cfg(target_os = "linux")]
    {
        use std::time::UNIX_EPOCH;
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            return UNIX_EPOCH + Duration::new(secs, nanos);
        }
    }
    SystemTime::now()
}

/// `t` as RFC 3339 in UTC, in whole seconds rounded down: `2026-11-30T02:28:38Z`. For
/// showing a token's times ([`AccessToken::expires_at`](crate::AccessToken::expires_at)…)
/// without a date library. Times before 1970 are shown as 1970-01-01T00:00:00Z.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(lwolf_auth::rfc3339(t), "2023-11-14T22:13:20Z");
/// ```
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

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
