//! Backoff with full jitter, the server's own word on when to come back, and the one
//! retry loop of the token and API requests.

#![forbid(unsafe_code)]

use crate::log;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        self.ceiling(retry).mul_f64(crate::jitter::fraction())
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
/// assert_eq!(lwolf_auth::unversioned::parse_retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(lwolf_auth::unversioned::parse_retry_after("soon", now), None);
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

/// What one attempt came to, for [`run`].
pub(crate) enum Attempt<T, E> {
    /// The outcome: no other attempt is worth making.
    Done(Result<T, E>),
    /// Worth another attempt, if the budget allows: why (for the log), the wait the server
    /// asked for, and the outcome to hand back if no attempt is left.
    Again {
        reason: String,
        asked: Option<Duration>,
        last: Result<T, E>,
    },
}

/// Makes attempts until one is [`Attempt::Done`], `max_retries` retries have been made, or
/// the next wait would end past `deadline`, waiting `backoff` (or what the server asked,
/// capped) between them. `attempt` gets the attempt's number, from 1. `what` names the
/// request in the log (`"token request"`).
pub(crate) fn run<T, E>(
    what: &dyn std::fmt::Display,
    backoff: Backoff,
    max_retries: u32,
    deadline: Instant,
    mut attempt: impl FnMut(u32) -> Attempt<T, E>,
) -> Result<T, E> {
    let mut number = 0;
    loop {
        number += 1;
        let (reason, asked, last) = match attempt(number) {
            Attempt::Done(outcome) => return outcome,
            Attempt::Again { last, .. } if number > max_retries => return last,
            Attempt::Again {
                reason,
                asked,
                last,
            } => (reason, asked, last),
        };
        let wait = backoff.delay(number - 1, asked);
        if Instant::now() + wait >= deadline {
            log::warn!("{what} failed ({reason}); no retry: the call's deadline comes first");
            return last;
        }
        drop(last);
        // WARN: a host that logs at WARN must see the gateway or the API failing.
        log::warn!(
            "{what} failed ({reason}); retry {number} of {max_retries} in {} ms",
            wait.as_millis()
        );
        std::thread::sleep(wait);
    }
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
    fn run_stops_at_done_or_when_the_retries_run_out() {
        let backoff = Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        let mut seen = Vec::new();
        let later = Instant::now() + Duration::from_secs(3600);
        let out: Result<u32, u32> = run(&"test", backoff, 3, later, |n| {
            seen.push(n);
            Attempt::Again {
                reason: "again".into(),
                asked: None,
                last: Err(n),
            }
        });
        assert_eq!((out, seen), (Err(4), vec![1, 2, 3, 4]));
        let out: Result<u32, u32> = run(&"test", backoff, 3, later, |n| match n {
            2 => Attempt::Done(Ok(n)),
            _ => Attempt::Again {
                reason: "again".into(),
                asked: None,
                last: Err(n),
            },
        });
        assert_eq!(out, Ok(2));
        // A wait that would end past the deadline is not begun.
        let slow = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(10),
        };
        let soon = Instant::now() + Duration::from_millis(50);
        let out: Result<u32, u32> = run(&"test", slow, 3, soon, |n| Attempt::Again {
            reason: "again".into(),
            asked: Some(Duration::from_secs(10)),
            last: Err(n),
        });
        assert_eq!(out, Err(1));
    }
}
