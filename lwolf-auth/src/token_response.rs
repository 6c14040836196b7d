//! Token responses: the tolerant-but-strict reading of what a token endpoint answers, and
//! the cleaning of server text before it reaches a message.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;

use crate::error::Error;
use crate::secret::SecretString;
use crate::token::{
    TokenType, DEFAULT_LIFETIME, MAX_LIFETIME, MAX_TOKEN_RESPONSE_BYTES, MIN_LIFETIME,
};

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
/// let r = lwolf_auth::unversioned::parse_token_response(
///     br#"{"access_token":"abc","token_type":"Bearer","expires_in":"600"}"#,
///     std::time::SystemTime::now(),
/// ).unwrap();
/// assert_eq!(r.lifetime.as_secs(), 600);
/// assert!(lwolf_auth::unversioned::parse_token_response(b"<html>", std::time::SystemTime::now()).is_err());
/// ```
pub fn parse_token_response(body: &[u8], now: SystemTime) -> Result<TokenResponse, Error> {
    parse_scrubbed(body, now, &|text| text.to_owned())
}

/// [`parse_token_response`], with `clean` (which takes echoes of the secret out of server
/// text) applied to server text before it is cut to fit a message: a secret that straddles
/// the cut would otherwise leak in part.
pub(crate) fn parse_scrubbed(
    body: &[u8],
    now: SystemTime,
    clean: &dyn Fn(&str) -> String,
) -> Result<TokenResponse, Error> {
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
            let (error, description) = error_fields(&json, clean);
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
                sanitize(&clean(t))
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

/// The OAuth `error` / `error_description`, or the API's `code` / `message`, scrubbed with
/// `clean`, then cut to fit a message.
pub(crate) fn error_fields(
    json: &Value,
    clean: &dyn Fn(&str) -> String,
) -> (Option<String>, Option<String>) {
    let field = |names: &[&str]| {
        names.iter().find_map(|n| match json.get(*n) {
            Some(Value::String(s)) if !s.is_empty() => Some(sanitize(&clean(s))),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    (
        field(&["error", "code"]),
        field(&["error_description", "message"]),
    )
}

/// The error fields of a response body, if it is JSON (see [`error_fields`]).
pub(crate) fn error_fields_of(
    body: &[u8],
    clean: &dyn Fn(&str) -> String,
) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(json @ Value::Object(_)) => error_fields(&json, clean),
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
