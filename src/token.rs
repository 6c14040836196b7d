//! Access tokens, their timing, and the tolerant-but-strict reading of token responses.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;

use crate::clock::{self, Mono};
use crate::error::Error;
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

/// A bearer token with the times that govern it.
///
/// Cheap to clone (an `Arc`). `Debug` and `Display` show the fingerprint, never the token;
/// the token's memory is zeroed when the last clone is dropped.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenData>);

struct TokenData {
    value: SecretString,
    token_type: TokenType,
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
        let refresh_after = lifetime
            .mul_f64(t.refresh_ratio - MAX_JITTER_RATIO * t.jitter.clamp(0.0, 1.0))
            .min(usable_for);
        AccessToken(Arc::new(TokenData {
            fingerprint: fingerprint(value.expose()),
            value,
            token_type,
            lifetime,
            refresh_at: t.sent + refresh_after,
            refresh_at_wall: t.sent_wall + refresh_after,
            usable_until: t.sent + usable_for,
            usable_until_wall: t.sent_wall + usable_for,
            expires_at_wall: t.sent_wall + lifetime,
        }))
    }

    /// A token obtained at `obtained_at` on the wall clock (by this process or another, as
    /// read from the shared disk cache), placed on this process's monotonic clock:
    /// `Mono::now() - (SystemTime::now() - obtained_at)`; the clock's headroom places any
    /// age up to the longest lifetime, whatever the uptime. A start in the future is taken
    /// as now. The placement rules are those of [`AccessToken::new`].
    pub(crate) fn from_wall_clock(
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
        AccessToken::typed(
            value,
            token_type,
            lifetime,
            &Timing {
                sent,
                sent_wall,
                refresh_ratio,
                jitter,
            },
        )
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

/// An accepted token response.
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: SecretString,
    /// `Bearer`, or `DPoP` for a token bound to the client's key.
    pub token_type: TokenType,
    /// Its lifetime: `expires_in`, else the JWT `exp` claim, else one hour.
    pub lifetime: Duration,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Reads a 2xx token response body by the contract's rules: a JSON object with a non-empty
/// string `access_token`, `token_type` `bearer` or `DPoP` in any case (or absent), and `expires_in` a
/// number or numeric string of at least 1 s (or absent: then the JWT `exp`, else 3600 s).
/// Anything else is [`Error::InvalidResponse`]. `now` is the wall clock, for JWT `exp`.
///
/// ```
/// let r = lwolf_auth::parse_token_response(
///     br#"{"access_token":"abc","token_type":"Bearer","expires_in":"600"}"#,
///     std::time::SystemTime::now(),
/// ).unwrap();
/// assert_eq!(r.lifetime.as_secs(), 600);
/// assert!(lwolf_auth::parse_token_response(b"<html>", std::time::SystemTime::now()).is_err());
/// ```
pub fn parse_token_response(body: &[u8], now: SystemTime) -> Result<TokenResponse, Error> {
    if body.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(Error::invalid_response("token response larger than 64 KiB"));
    }
    let json: Value = serde_json::from_slice(body).map_err(|_| {
        Error::invalid_response(format!("token response is not JSON ({})", sniff(body)))
    })?;
    let obj = json
        .as_object()
        .ok_or_else(|| Error::invalid_response("token response is not a JSON object"))?;
    let access_token = match obj.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err(Error::invalid_response("access_token is empty")),
        Some(_) => return Err(Error::invalid_response("access_token is not a string")),
        None => {
            let (error, description) = error_fields(&json);
            let detail = match (error, description) {
                (Some(e), Some(d)) => format!(" (error {e}: {d})"),
                (Some(e), None) => format!(" (error {e})"),
                (None, Some(d)) => format!(" ({d})"),
                (None, None) => String::new(),
            };
            return Err(Error::invalid_response(format!(
                "token response has no access_token{detail}"
            )));
        }
    };
    // The token goes into a header: refuse what would corrupt or inject one.
    if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_response(
            "access_token holds characters not allowed in a header",
        ));
    }
    let token_type = match obj.get("token_type") {
        None | Some(Value::Null) => TokenType::Bearer,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => TokenType::Bearer,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("dpop") => TokenType::Dpop,
        Some(Value::String(t)) => {
            return Err(Error::invalid_response(format!(
                "token_type {:?} is neither bearer nor DPoP",
                sanitize(t)
            )))
        }
        Some(_) => return Err(Error::invalid_response("token_type is not a string")),
    };
    let lifetime = match obj.get("expires_in") {
        None | Some(Value::Null) => match jwt_expiry(access_token) {
            Some(exp) => {
                let now_secs = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let left = exp - now_secs;
                if left <= 0.0 {
                    return Err(Error::invalid_response("the JWT exp claim is in the past"));
                }
                if left < MIN_LIFETIME.as_secs_f64() {
                    return Err(Error::invalid_response(
                        "the JWT exp claim is less than 1 s away",
                    ));
                }
                Duration::from_secs_f64(left.min(MAX_LIFETIME.as_secs_f64()))
            }
            None => DEFAULT_LIFETIME,
        },
        Some(Value::Number(n)) => positive_secs(n.as_f64())?,
        Some(Value::String(s)) => positive_secs(parse_decimal(s))?,
        Some(_) => return Err(Error::invalid_response("expires_in is not a number")),
    };
    Ok(TokenResponse {
        access_token: SecretString::from(access_token.as_str()),
        token_type,
        lifetime,
    })
}

fn positive_secs(secs: Option<f64>) -> Result<Duration, Error> {
    match secs {
        Some(s) if s.is_finite() && s >= MIN_LIFETIME.as_secs_f64() => {
            Ok(Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64())))
        }
        Some(s) if s.is_finite() && s > 0.0 => Err(Error::invalid_response(
            "expires_in is under 1 s: too short to serve",
        )),
        Some(_) => Err(Error::invalid_response("expires_in is not positive")),
        None => Err(Error::invalid_response("expires_in is not a number")),
    }
}

/// A plain decimal (`"3600"`, `"3600.5"`); no signs, exponents or words like `"inf"`.
fn parse_decimal(s: &str) -> Option<f64> {
    let s = s.trim();
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s.bytes().any(|b| b.is_ascii_digit());
    if plain {
        s.parse().ok()
    } else {
        None
    }
}

/// The `exp` claim of a JWT, read without verifying it: we only schedule by it.
fn jwt_expiry(token: &str) -> Option<f64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > MAX_TOKEN_RESPONSE_BYTES {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_f64()
}

/// The OAuth `error` / `error_description`, or the API's `code` / `message`, cleaned for
/// display.
pub(crate) fn error_fields(json: &Value) -> (Option<String>, Option<String>) {
    let field = |names: &[&str]| {
        names.iter().find_map(|n| match json.get(*n) {
            Some(Value::String(s)) if !s.is_empty() => Some(sanitize(s)),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    (
        field(&["error", "code"]),
        field(&["error_description", "message"]),
    )
}

/// The error fields of a response body, if it is JSON.
pub(crate) fn error_fields_of(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(json @ Value::Object(_)) => error_fields(&json),
        _ => (None, None),
    }
}

/// At most 200 printable characters: server text goes into error messages and logs.
pub(crate) fn sanitize(s: &str) -> String {
    sanitize_to(s, 200)
}

/// At most `max` characters, control characters dropped: untrusted text made fit for a
/// message or a log line.
pub(crate) fn sanitize_to(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn sniff(body: &[u8]) -> &'static str {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &body[i..]);
    if body.is_empty() {
        "empty"
    } else if start.starts_with(b"<") {
        "looks like HTML"
    } else {
        "unparsable"
    }
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
        let tok =
            AccessToken::from_wall_clock("x".into(), TokenType::Bearer, l, hour_ago, 0.9, 0.0);
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
