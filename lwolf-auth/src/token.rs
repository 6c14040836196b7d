//! Access tokens and their timing: when one is due, when it stops being served. Reading a
//! token response is in `token_response.rs`.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::{self, Mono};
use crate::secret::SecretString;

/// The largest token response that is read.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// The lifetime assumed when the response gives none and the token is not a JWT.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Lifetimes beyond this are clamped, so time arithmetic cannot overflow; shorter than
/// the monotonic clock's headroom before boot (`clock::HEADROOM`).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const _: () = assert!(MAX_LIFETIME.as_secs() < clock::HEADROOM.as_secs());
/// The shortest lifetime accepted: anything shorter is refused, not refetched in a loop.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// The least safety margin before expiry: more than a tick of any clock read here.
const MIN_MARGIN: Duration = Duration::from_millis(10);
/// The jitter may move the refresh this fraction of the lifetime earlier.
pub(crate) const MAX_JITTER_RATIO: f64 = 0.05;

/// How a token is sent: `Authorization: Bearer`, or (RFC 9449) `Authorization: DPoP` with a
/// proof of the key it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenType {
    /// A bearer token: whoever holds it may use it.
    #[default]
    Bearer,
    /// A DPoP-bound token: useless without this client's key.
    Dpop,
}

impl TokenType {
    /// The scheme of the `Authorization` header: `Bearer` or `DPoP`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Bearer => "Bearer",
            TokenType::Dpop => "DPoP",
        }
    }
}

/// Where this process got a token from: the layer that served it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenSource {
    /// The token endpoint: this process asked for it.
    #[default]
    TokenEndpoint,
    /// The shared cache directory (`cache_dir`): another process of this host asked.
    CacheDir,
    /// The fleet cache (`cache_url`): a process of the fleet asked.
    CacheUrl,
}

impl TokenSource {
    /// `token endpoint`, `cache_dir` or `cache_url`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::TokenEndpoint => "token endpoint",
            TokenSource::CacheDir => "cache_dir",
            TokenSource::CacheUrl => "cache_url",
        }
    }
}

/// A bearer token with the times that govern it.
///
/// Cheap to clone (an `Arc`). `Debug` and `Display` show the fingerprint, never the token;
/// the token's memory is zeroed when the last clone is dropped.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenData>);

struct TokenData {
    value: SecretString,
    token_type: TokenType,
    source: TokenSource,
    fingerprint: String,
    lifetime: Duration,
    refresh_at: Mono,
    refresh_at_wall: SystemTime,
    usable_until: Mono,
    usable_until_wall: SystemTime,
    expires_at_wall: SystemTime,
}

/// When a token was asked for, and how its refresh is placed.
pub(crate) struct Timing {
    pub sent: Mono,
    pub sent_wall: SystemTime,
    pub refresh_ratio: f64,
    /// In `[0, 1)`: how much of the allowed jitter to apply.
    pub jitter: f64,
}

impl AccessToken {
    #[cfg(test)]
    pub(crate) fn new(value: SecretString, lifetime: Duration, t: &Timing) -> AccessToken {
        AccessToken::typed(value, TokenType::Bearer, lifetime, t)
    }

    /// [`new`](Self::new), for a token of `token_type`.
    pub(crate) fn typed(
        value: SecretString,
        token_type: TokenType,
        lifetime: Duration,
        t: &Timing,
    ) -> AccessToken {
        let lifetime = lifetime.min(MAX_LIFETIME);
        // Served until a safety margin before expiry; refreshed at the ratio, a little
        // earlier by jitter, and never after the margin. The margin outlasts a tick of the
        // coarse clocks, or a token could be handed out in the tick it expires in.
        let margin = Duration::from_secs(60)
            .min(lifetime.mul_f64(0.05))
            .max(MIN_MARGIN)
            .min(lifetime);
        let usable_for = lifetime - margin;
        // Total for any ratio: a jitter larger than the ratio refreshes at once, never
        // before the token was had (`mul_f64` panics on a negative factor).
        let factor = t.refresh_ratio - MAX_JITTER_RATIO * t.jitter.clamp(0.0, 1.0);
        let refresh_after = lifetime.mul_f64(factor.clamp(0.0, 1.0)).min(usable_for);
        AccessToken(Arc::new(TokenData {
            fingerprint: fingerprint(value.expose()),
            value,
            token_type,
            source: TokenSource::TokenEndpoint,
            lifetime,
            refresh_at: t.sent + refresh_after,
            refresh_at_wall: t.sent_wall + refresh_after,
            usable_until: t.sent + usable_for,
            usable_until_wall: t.sent_wall + usable_for,
            expires_at_wall: t.sent_wall + lifetime,
        }))
    }

    /// A token obtained at `obtained_at` on the wall clock by another process, as read from
    /// `source` (a shared cache), placed on this process's monotonic clock:
    /// `Mono::now() - (SystemTime::now() - obtained_at)`; the clock's headroom places any
    /// age up to the longest lifetime, whatever the uptime. A start in the future is taken
    /// as now. The placement rules are those of [`AccessToken::new`].
    pub(crate) fn from_wall_clock(
        source: TokenSource,
        value: SecretString,
        token_type: TokenType,
        lifetime: Duration,
        obtained_at: SystemTime,
        refresh_ratio: f64,
        jitter: f64,
    ) -> AccessToken {
        let now = Mono::now();
        let now_wall = SystemTime::now();
        let (sent, sent_wall) = match now_wall.duration_since(obtained_at) {
            Ok(age) => (now.saturating_sub(age), obtained_at),
            Err(_) => (now, now_wall),
        };
        let mut token = AccessToken::typed(
            value,
            token_type,
            lifetime,
            &Timing {
                sent,
                sent_wall,
                refresh_ratio,
                jitter,
            },
        );
        if let Some(data) = Arc::get_mut(&mut token.0) {
            data.source = source;
        }
        token
    }

    /// When the request that got this token was sent, by the wall clock.
    pub(crate) fn obtained_at(&self) -> SystemTime {
        self.0.expires_at_wall - self.0.lifetime
    }

    /// How the token is sent: [`TokenType::Bearer`], or [`TokenType::Dpop`] (only with
    /// `dpop` on, when the server bound it to the client's key).
    pub fn token_type(&self) -> TokenType {
        self.0.token_type
    }

    /// Where this process got the token: the token endpoint, or a shared cache another
    /// process had filled.
    pub fn source(&self) -> TokenSource {
        self.0.source
    }

    /// The bearer token itself. Put it on the wire; never in a log.
    pub fn secret(&self) -> &str {
        self.0.value.expose()
    }

    /// A short, stable, non-reversible name for this token (the first 12 hex digits of its
    /// SHA-256), safe to log and to compare across processes.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }

    /// The lifetime the server granted, counted from when the request was sent.
    pub fn lifetime(&self) -> Duration {
        self.0.lifetime
    }

    /// When the token expires, by the wall clock.
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at_wall
    }

    /// When the token is due for refresh, by the wall clock (jitter applied).
    pub fn refresh_at(&self) -> SystemTime {
        self.0.refresh_at_wall
    }

    /// The last moment the token is handed out: expiry less a safety margin of
    /// min(60 s, 5% of the lifetime).
    pub fn usable_until(&self) -> SystemTime {
        self.0.usable_until_wall
    }

    /// Whether the token may still be handed out: both clocks must agree, because the
    /// monotonic clock stops while the machine sleeps and the wall clock can jump.
    pub(crate) fn is_usable(&self, now: Mono, now_wall: SystemTime) -> bool {
        now < self.0.usable_until && now_wall < self.0.usable_until_wall
    }

    /// Whether a refresh is due by either clock.
    pub(crate) fn is_due(&self, now: Mono, now_wall: SystemTime) -> bool {
        now >= self.0.refresh_at || now_wall >= self.0.refresh_at_wall
    }

    /// [`is_usable`](Self::is_usable), reading both clocks.
    pub(crate) fn is_usable_now(&self) -> bool {
        self.is_usable(Mono::now(), clock::wall_now())
    }

    /// [`is_due`](Self::is_due), reading both clocks.
    pub(crate) fn is_due_now(&self) -> bool {
        self.is_due(Mono::now(), clock::wall_now())
    }

    pub(crate) fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("fingerprint", &self.0.fingerprint)
            .field("token_type", &self.0.token_type)
            .field("source", &self.0.source)
            .field("lifetime", &self.0.lifetime)
            .field("expires_at", &unix_secs(self.0.expires_at_wall))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token {}", self.0.fingerprint)
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The first 12 hex digits of the SHA-256 of `token`.
pub(crate) fn fingerprint(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    hex(&digest.as_ref()[..6])
}

/// `bytes` in lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(jitter: f64) -> Timing {
        Timing {
            sent: Mono::now(),
            sent_wall: SystemTime::now(),
            refresh_ratio: 0.9,
            jitter,
        }
    }

    #[test]
    fn refresh_placement() {
        let l = Duration::from_secs(86_400);
        let t = timing(0.0);
        let tok = AccessToken::new("x".into(), l, &t);
        assert_eq!(tok.0.refresh_at - t.sent, l.mul_f64(0.9));
        assert_eq!(tok.0.usable_until - t.sent, l - Duration::from_secs(60));
        let t = timing(0.999_999);
        let tok = AccessToken::new("x".into(), l, &t);
        assert!(tok.0.refresh_at - t.sent >= l.mul_f64(0.85));
        // A ratio beyond the margin is pulled back to it.
        let t = Timing {
            refresh_ratio: 0.99,
            ..timing(0.0)
        };
        let tok = AccessToken::new("x".into(), Duration::from_secs(100), &t);
        assert_eq!(tok.0.refresh_at, tok.0.usable_until);
    }

    #[test]
    fn the_margin_outlasts_a_clock_tick() {
        // 5% of 100 ms would be 5 ms, less than a coarse tick: the margin is 10 ms.
        let t = timing(0.0);
        let tok = AccessToken::new("x".into(), Duration::from_millis(100), &t);
        assert_eq!(tok.0.usable_until - t.sent, Duration::from_millis(90));
        assert!(tok.0.refresh_at <= tok.0.usable_until);
        // At a second, 5% (50 ms) is above the floor and stands.
        let tok = AccessToken::new("x".into(), Duration::from_secs(1), &t);
        assert_eq!(tok.0.usable_until - t.sent, Duration::from_millis(950));
    }

    #[test]
    fn wall_clock_placement() {
        let l = Duration::from_secs(3600);
        let hour_ago = SystemTime::now() - Duration::from_secs(3000);
        let tok = AccessToken::from_wall_clock(
            TokenSource::CacheDir,
            "x".into(),
            TokenType::Bearer,
            l,
            hour_ago,
            0.9,
            0.0,
        );
        assert_eq!(tok.obtained_at(), hour_ago);
        assert_eq!(tok.expires_at(), hour_ago + l);
        let now = Mono::now();
        assert!(tok.is_usable(now, SystemTime::now()));
        assert!(!tok.is_due(now, SystemTime::now()));
        // The monotonic deadlines sit where the wall-clock ones do, give or take the test.
        let left = tok.0.refresh_at - now;
        assert!(left <= Duration::from_secs(240) && left > Duration::from_secs(230));
        // Due, but still usable.
        let tok = AccessToken::from_wall_clock(
            TokenSource::CacheDir,
            "x".into(),
            TokenType::Bearer,
            l,
            SystemTime::now() - Duration::from_secs(3300),
            0.9,
            0.0,
        );
        assert!(tok.is_usable_now());
        assert!(tok.is_due_now());
        // Expired by both clocks.
        let tok = AccessToken::from_wall_clock(
            TokenSource::CacheDir,
            "x".into(),
            TokenType::Bearer,
            l,
            SystemTime::now() - Duration::from_secs(3590),
            0.9,
            0.0,
        );
        assert!(!tok.is_usable_now());
        // A start in the future is taken as now.
        let before = SystemTime::now();
        let tok = AccessToken::from_wall_clock(
            TokenSource::CacheDir,
            "x".into(),
            TokenType::Bearer,
            l,
            SystemTime::now() + Duration::from_secs(600),
            0.9,
            0.0,
        );
        assert!(tok.obtained_at() >= before && tok.obtained_at() <= SystemTime::now());
        // Older than any lifetime: expired by both clocks, not only by the wall clock.
        let tok = AccessToken::from_wall_clock(
            TokenSource::CacheDir,
            "x".into(),
            TokenType::Bearer,
            l,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1),
            0.9,
            0.0,
        );
        assert!(!tok.is_usable(Mono::now(), SystemTime::UNIX_EPOCH));
        assert!(!tok.is_usable_now());
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
    }
}
