//! Backoff with full jitter, and the server's own word on when to come back.

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use once_cell::sync::Lazy;

use crate::http::RawResponse;

/// Statuses worth another attempt: timeouts, rate limits and transient server failures.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Exponential backoff with full jitter (the AWS Architecture Blog's "full jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub base: Duration,
    /// The largest single wait.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for retry number `retry` (0 for the first retry): `base * 2^retry`,
    /// capped at `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait drawn uniformly from `[0, ceiling(retry)]`, so that clients that failed
    /// together do not come back together.
    pub fn wait(&self, retry: u32) -> Duration {
        self.ceiling(retry).mul_f64(random_fraction())
    }

    /// The wait before retry number `retry`: what the server `asked` for, else
    /// [`wait`](Self::wait); never more than `max`.
    pub(crate) fn delay(&self, retry: u32, asked: Option<Duration>) -> Duration {
        asked.unwrap_or_else(|| self.wait(retry)).min(self.max)
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date. A date in the past is zero.
/// Returns `None` for anything else.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::now();
/// assert_eq!(lwolf_auth::retry::parse_retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(lwolf_auth::retry::parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurd numbers rather than reject them: the caller caps the wait anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an `X-RateLimit-Reset` value: a UNIX time in seconds. Small values (below
/// 10^9, i.e. before 2001) are taken as seconds from now, as some gateways send them.
pub fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let secs: f64 = value.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs < 1e9 {
        return Some(Duration::from_secs_f64(secs.min(1e9)));
    }
    let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(Duration::from_secs_f64((secs - now_secs).clamp(0.0, 1e9)))
}

/// The wait a 408/429/5xx response asked for, if any: `Retry-After`, or on a 429
/// `X-RateLimit-Reset`.
pub(crate) fn server_wait(resp: &RawResponse) -> Option<Duration> {
    let now = SystemTime::now();
    if let Some(wait) = resp
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now))
    {
        return Some(wait);
    }
    if resp.status == 429 {
        return resp
            .header("x-ratelimit-reset")
            .and_then(|v| parse_rate_limit_reset(v, now));
    }
    None
}

/// A uniformly distributed number in `[0, 1)`. Not cryptographic: for jitter only.
pub(crate) fn random_fraction() -> f64 {
    static KEYS: Lazy<RandomState> = Lazy::new(RandomState::new);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEYS.build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits make every f64 in [0, 1) at that spacing equally likely.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_millis(30_000),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(1), Duration::from_millis(1000));
        assert_eq!(b.ceiling(5), Duration::from_millis(16_000));
        assert_eq!(b.ceiling(6), Duration::from_millis(30_000));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(30_000));
        for retry in 0..40 {
            assert!(b.wait(retry) <= b.ceiling(retry));
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(10)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn rate_limit_reset_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_rate_limit_reset("1700000005", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_rate_limit_reset("1600000000", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_rate_limit_reset("2", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse_rate_limit_reset("x", now), None);
    }

    #[test]
    fn fractions_stay_in_range_and_vary() {
        let draws: Vec<f64> = (0..1000).map(|_| random_fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(draws.iter().any(|f| *f < 0.1) && draws.iter().any(|f| *f > 0.9));
    }
}
