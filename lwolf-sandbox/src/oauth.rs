//! `POST /oauth/token`, as the vendor's guide describes it (an Auth0 tenant).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Map, Value};

use super::server::{
    has_scheme, header, percent_decode, read_body, Issued, Method, Reply, Request, State,
};
use super::{assertion, dpop};
use super::{DEFAULT_TOKEN_TTL, ISSUER, SWEEP_ABOVE};
use crate::printable as sanitize_to;
use lwolf_auth::defaults::DEFAULT_AUDIENCE;

pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
    .with("Cache-Control", "no-store")
    .with("Pragma", "no-cache")
}

pub(super) fn token_endpoint(state: &State, request: &mut Request) -> Reply {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    if !state.token_latency.is_zero() {
        std::thread::sleep(state.token_latency);
    }
    if *request.method() != Method::Post {
        return oauth_error(405, "invalid_request", "method not allowed: use POST")
            .with("Allow", "POST");
    }
    if !admit(state) {
        return oauth_error(429, "too_many_requests", "Rate limit exceeded")
            .with("Retry-After", "1");
    }
    let params = match token_params(request) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let get = |name: &str| params.get(name).map(String::as_str);

    // Client authentication: HTTP Basic, or the body; not both (RFC 6749 §2.3).
    let basic = match header(request, "Authorization") {
        Some(value) if has_scheme(value, "basic") => match parse_basic(&value[6..]) {
            Some(pair) => Some(pair),
            None => return oauth_error(400, "invalid_request", "malformed Basic authorization"),
        },
        _ => None,
    };
    let (client_id, client_secret) = match &basic {
        Some((id, secret)) => {
            if get("client_secret").is_some() {
                return oauth_error(
                    400,
                    "invalid_request",
                    "more than one client authentication method",
                );
            }
            if get("client_id").is_some_and(|body_id| body_id != id) {
                return oauth_error(
                    400,
                    "invalid_request",
                    "client_id in the body differs from the Basic authorization",
                );
            }
            (id.as_str(), secret.as_str())
        }
        None => ("", ""),
    };

    let grant_type = match get("grant_type") {
        Some(g) => g,
        None => return missing("grant_type"),
    };
    if grant_type != "client_credentials" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {}", sanitize_to(grant_type, 100)),
        );
    }
    // private_key_jwt: a signed assertion instead of a secret (RFC 7523).
    let asserted = match get("client_assertion") {
        Some(_) if basic.is_some() || get("client_secret").is_some() => {
            return oauth_error(
                400,
                "invalid_request",
                "more than one client authentication method",
            )
        }
        Some(jwt) => match assertion::verify(state, get("client_assertion_type"), jwt) {
            Ok(id) => Some(id),
            Err(reply) => return reply,
        },
        None => None,
    };
    let (client_id, client_secret) = if basic.is_some() {
        (client_id, client_secret)
    } else if let Some(id) = &asserted {
        if get("client_id").is_some_and(|body_id| body_id != id) {
            return oauth_error(
                400,
                "invalid_request",
                "client_id differs from the assertion's",
            );
        }
        (id.as_str(), "")
    } else {
        match (get("client_id"), get("client_secret")) {
            (None, _) => return missing("client_id"),
            (_, None) => return missing("client_secret"),
            (Some(id), Some(secret)) => (id, secret),
        }
    };
    let audience = match get("audience") {
        Some(a) => a,
        None => return missing("audience"),
    };
    let lwt_client_id = match get("lwt_client_id") {
        Some("") => return oauth_error(400, "invalid_request", "lwt_client_id must not be empty"),
        other => other,
    };

    let id_ok = constant_time_eq(client_id.as_bytes(), state.client_id.as_bytes());
    let secret_ok = asserted.is_some()
        || constant_time_eq(
            client_secret.as_bytes(),
            state.client_secret.expose().as_bytes(),
        );
    if !(id_ok && secret_ok) {
        let reply = oauth_error(401, "access_denied", "Unauthorized");
        return if basic.is_some() {
            reply.with("WWW-Authenticate", "Basic realm=\"lwolf-sandbox\"")
        } else {
            reply
        };
    }
    if audience != DEFAULT_AUDIENCE {
        return oauth_error(
            403,
            "access_denied",
            &format!(
                "Service not enabled within domain: {}",
                sanitize_to(audience, 200)
            ),
        );
    }

    // DPoP: a proof binds the token to its key.
    let proof = match header(request, "DPoP") {
        Some(proof) => {
            let htu = format!("{}oauth/token", state.issuer);
            match dpop::verify(state, proof, "POST", &htu, None) {
                Ok(proof) => Some(proof),
                Err(why) => return oauth_error(400, "invalid_dpop_proof", why),
            }
        }
        None => None,
    };
    if let (Some(proof), Some(nonce)) = (&proof, &state.dpop_nonce) {
        if dpop::lacks_nonce(state, proof) {
            return oauth_error(
                400,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof",
            )
            .with("DPoP-Nonce", nonce.as_str());
        }
    }
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let (token, expires_in) = issue(state, client_id, audience, lwt_client_id, jkt);
    Reply::json(
        200,
        &json!({
            "access_token": token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": expires_in,
        }),
    )
    .with("Cache-Control", "no-store")
    .with("Pragma", "no-cache")
}

pub(super) fn missing(name: &str) -> Reply {
    oauth_error(
        400,
        "invalid_request",
        &format!("missing parameter: {name}"),
    )
}

/// Whether one more token request fits the rate limit; if it does, it is counted.
pub(super) fn admit(state: &State) -> bool {
    let Some(limit) = state.rate_limit else {
        return true;
    };
    let now = Instant::now();
    let mut recent = state.recent_token_requests.lock();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        recent.pop_front();
    }
    if recent.len() >= limit as usize {
        return false;
    }
    recent.push_back(now);
    true
}

/// The token request's parameters, from a JSON or form-encoded body.
pub(super) fn token_params(request: &mut Request) -> Result<HashMap<String, String>, Reply> {
    let body = read_body(request).map_err(|why| oauth_error(400, "invalid_request", why))?;
    let content_type = header(request, "Content-Type")
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|_| oauth_error(400, "invalid_request", "malformed JSON body"))?;
            let Value::Object(map) = value else {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "the body must be a JSON object",
                ));
            };
            let mut params = HashMap::new();
            for (key, value) in map {
                match value {
                    Value::String(s) => {
                        params.insert(key, s);
                    }
                    Value::Null => {}
                    _ => {
                        return Err(oauth_error(
                            400,
                            "invalid_request",
                            &format!("parameter {} must be a string", sanitize_to(&key, 50)),
                        ))
                    }
                }
            }
            Ok(params)
        }
        "application/x-www-form-urlencoded" => {
            let mut params = HashMap::new();
            for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
                let (key, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                let (Some(key), Some(value)) = (form_decode(key), form_decode(value)) else {
                    return Err(oauth_error(400, "invalid_request", "malformed form body"));
                };
                // RFC 6749 §3.2: parameters must not be repeated.
                if params.insert(key.clone(), value).is_some() {
                    return Err(oauth_error(
                        400,
                        "invalid_request",
                        &format!("repeated parameter: {}", sanitize_to(&key, 50)),
                    ));
                }
            }
            Ok(params)
        }
        _ => Err(oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret).
pub(super) fn parse_basic(encoded: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let id = form_decode(&raw[..colon])?;
    let secret = form_decode(&raw[colon + 1..])?;
    Some((id, secret))
}

/// Reverses application/x-www-form-urlencoded; `None` for a bad escape or bad UTF-8.
fn form_decode(bytes: &[u8]) -> Option<String> {
    percent_decode(bytes, true)
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

/// Makes, records and counts a new token; returns it with its `expires_in`.
pub(super) fn issue(
    state: &State,
    client_id: &str,
    audience: &str,
    lwt_client_id: Option<&str>,
    jkt: Option<&str>,
) -> (String, u64) {
    let expires_in = state.token_ttl.as_secs().max(1);
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = Map::new();
    claims.insert("iss".into(), ISSUER.into());
    claims.insert("sub".into(), client_id.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), iat.saturating_add(expires_in).into());
    if let Some(id) = lwt_client_id {
        claims.insert("lwt_client_id".into(), id.into());
    }
    if let Some(jkt) = jkt {
        claims.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(&Value::Object(claims)).unwrap_or_default());
    let signature = crate::random_bytes::<32>();
    let token = format!("{header}.{payload}.{}", b64.encode(signature));

    let now = Instant::now();
    let expires = now
        .checked_add(state.token_ttl)
        .unwrap_or(now + DEFAULT_TOKEN_TTL);
    {
        let mut tokens = state.tokens.lock();
        if tokens.len() >= SWEEP_ABOVE {
            tokens.retain(|_, t| t.expires > now);
        }
        tokens.insert(
            token.clone(),
            Issued {
                expires,
                lwt_client_id: lwt_client_id.map(str::to_owned),
                jkt: jkt.map(str::to_owned),
            },
        );
    }
    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    (token, expires_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_parsing() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%3Aid:s%26cret");
        assert_eq!(
            parse_basic(&encoded),
            Some(("my:id".to_owned(), "s&cret".to_owned()))
        );
        assert_eq!(parse_basic("!!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(parse_basic(&no_colon), None);
    }
}
