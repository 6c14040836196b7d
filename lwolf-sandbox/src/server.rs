//! What the sandbox keeps, and the routing of a request to its answer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::api::{api, api_error};
pub(super) use super::message::{Method, Reply, Request};
use super::oauth::token_endpoint;
use super::transact::transact;
use crate::printable as sanitize_to;
use lwolf_auth::SecretString;

/// What the workers share.
pub(super) struct State {
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    /// For `private_key_jwt`: the client's RSA public key (DER `RSAPublicKey`), if given.
    pub(super) client_public_key: Option<Vec<u8>>,
    /// The assertions' `aud`: this sandbox's origin and `/`.
    pub(super) issuer: String,
    /// With DPoP nonces asked for: the nonce every proof must carry.
    pub(super) dpop_nonce: Option<String>,
    /// Every assertion and DPoP proof `jti` seen: each is used once.
    pub(super) seen_jtis: Mutex<std::collections::HashSet<String>>,
    pub(super) subscription_key: SecretString,
    pub(super) token_ttl: Duration,
    pub(super) rate_limit: Option<u32>,
    pub(super) token_requests: AtomicU64,
    pub(super) tokens_issued: AtomicU64,
    pub(super) api_requests: AtomicU64,
    /// How long every API answer takes.
    pub(super) api_latency: Duration,
    /// How long every token endpoint answer takes.
    pub(super) token_latency: Duration,
    /// API requests being answered now, and the most there ever were at once.
    pub(super) api_in_flight: AtomicU64,
    pub(super) api_in_flight_peak: AtomicU64,
    /// Valid tokens, by value.
    pub(super) tokens: Mutex<HashMap<String, Issued>>,
    /// When the token requests admitted within the last second arrived.
    pub(super) recent_token_requests: Mutex<VecDeque<Instant>>,
    /// Transactions created with `POST`.
    pub(super) created: Mutex<Vec<Value>>,
    pub(super) next_transaction: AtomicU64,
    /// Tiers by id: the record and its version (the `ETag`).
    pub(super) tiers: Mutex<HashMap<String, (Value, u64)>>,
}

/// An issued token's bookkeeping.
pub(super) struct Issued {
    pub(super) expires: Instant,
    /// Echoed on API answers as `X-Sandbox-Lwt-Client-Id`, so tests can tell tenants apart.
    pub(super) lwt_client_id: Option<String>,
    /// For a DPoP-bound token: the thumbprint of the key it is bound to (`cnf.jkt`).
    pub(super) jkt: Option<String>,
}

impl Reply {
    pub(super) fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub(super) fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// The answer to `request`.
pub(super) fn handle(state: &State, request: &mut Request) -> Reply {
    let url = request.url().to_owned();
    let path = url.split(['?', '#']).next().unwrap_or("");
    let method = request.method().clone();
    let reply = if path == "/oauth/token" {
        token_endpoint(state, request)
    } else if path == "/backoffice" || path.starts_with("/backoffice/") {
        in_flight(state, || {
            api(state, request, &path["/backoffice".len()..], &url)
        })
    } else if let Some(rest) = path.strip_prefix("/transact-workflow") {
        in_flight(state, || transact(state, request, rest, &url))
    } else if path == "/_sandbox/stats" {
        if matches!(method, Method::Get | Method::Head) {
            Reply::json(
                200,
                &json!({
                    "token_requests": state.token_requests.load(Ordering::SeqCst),
                    "tokens_issued": state.tokens_issued.load(Ordering::SeqCst),
                    "api_requests": state.api_requests.load(Ordering::SeqCst),
                    "api_in_flight_peak": state.api_in_flight_peak.load(Ordering::SeqCst),
                }),
            )
            .with("Cache-Control", "no-store")
        } else {
            api_error(405, "method_not_allowed", "method not allowed").with("Allow", "GET")
        }
    } else if path == "/_sandbox/echo" {
        echo(request, &url)
    } else {
        api_error(404, "not_found", "no such resource")
    };
    // The path only: a query string could carry anything.
    log::debug!("{} {} -> {}", method, sanitize_to(path, 100), reply.status);
    reply
}

/// Answers an API request, counted (as received at once, and as in flight for the while),
/// after the configured latency.
fn in_flight(state: &State, answer: impl FnOnce() -> Reply) -> Reply {
    state.api_requests.fetch_add(1, Ordering::SeqCst);
    let now = state.api_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.api_in_flight_peak.fetch_max(now, Ordering::SeqCst);
    if !state.api_latency.is_zero() {
        std::thread::sleep(state.api_latency);
    }
    let reply = answer();
    state.api_in_flight.fetch_sub(1, Ordering::SeqCst);
    reply
}

/// `/_sandbox/echo`: what the client sent, for the tests of other languages' bindings: the
/// method, the query as decoded pairs (`+` is a plus: RFC 3986), the headers but the two
/// that carry credentials, and the body's length and type. Needs no token.
fn echo(request: &mut Request, url: &str) -> Reply {
    let pairs: Vec<Value> = query_pairs(url)
        .into_iter()
        .map(|(name, value)| json!([name, value]))
        .collect();
    let headers: Vec<Value> = request
        .headers()
        .iter()
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("authorization")
                && !name.eq_ignore_ascii_case("lw-subscription-key")
        })
        .map(|(name, value)| json!([name.to_ascii_lowercase(), value]))
        .collect();
    let subscription_key = header(request, "lw-subscription-key").is_some();
    let method = request.method().as_str().to_owned();
    match read_body(request) {
        Ok(body) => Reply::json(
            200,
            &json!({
                "method": method,
                "query": pairs,
                "headers": headers,
                "has_subscription_key": subscription_key,
                "body_len": body.len(),
            }),
        ),
        Err(why) => api_error(400, "bad_request", why),
    }
}

/// The decoded `name=value` pairs of a URL's query (`+` is a plus: RFC 3986); a part that
/// does not decode is empty.
pub(super) fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let decode = |s: &str| percent_decode(s.as_bytes(), false).unwrap_or_default();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// `%XX` escapes decoded, and `+` as a space too when `plus_is_space` (form encoding);
/// `None` for a bad escape or a result that is not UTF-8.
pub(super) fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Option<String> {
    // A `%` not followed by two hex digits is an error here (the crate keeps it as it is).
    let bad_escape = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if bad_escape {
        return None;
    }
    let spaced;
    let bytes = if plus_is_space && bytes.contains(&b'+') {
        spaced = bytes
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect::<Vec<u8>>();
        &spaced[..]
    } else {
        bytes
    };
    let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
    String::from_utf8(decoded).ok()
}

/// The body, or why it is refused: over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) or
/// unreadable.
pub(super) fn read_body(request: &mut Request) -> Result<Vec<u8>, &'static str> {
    request.take_body()
}

/// The first value of a header, any case.
pub(super) fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.header(name)
}

/// Whether `value` is `<scheme> <credentials>`, the scheme in any case.
pub(super) fn has_scheme(value: &str, scheme: &str) -> bool {
    value.len() > scheme.len()
        && value.as_bytes()[scheme.len()] == b' '
        && value[..scheme.len()].eq_ignore_ascii_case(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode(b"a+b%26c%3Dd", true).as_deref(),
            Some("a b&c=d")
        );
        assert_eq!(percent_decode(b"a+b%2B", false).as_deref(), Some("a+b+"));
        assert_eq!(percent_decode(b"%C3%A9", false).as_deref(), Some("é"));
        for bad in [&b"%ZZ"[..], b"%4", b"%FF", b"%+1"] {
            assert_eq!(percent_decode(bad, false), None, "{bad:?}");
        }
        assert_eq!(
            query_pairs("/x?a=1&b=%20&c&=d"),
            [("a", "1"), ("b", " "), ("c", ""), ("", "d")].map(|(n, v)| (n.into(), v.into()))
        );
    }

    #[test]
    fn scheme_matching() {
        assert!(has_scheme("Bearer abc", "bearer"));
        assert!(has_scheme("bAsIc abc", "basic"));
        assert!(!has_scheme("Bearer", "bearer"));
        assert!(!has_scheme("Bearerabc", "bearer"));
        assert!(!has_scheme("Beaé abc", "bearer"));
    }
}
