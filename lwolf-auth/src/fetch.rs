//! The token request: its body, its retries, and what each answer means.

#![forbid(unsafe_code)]

use std::time::{Instant, SystemTime};

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ureq::http::Method;
use zeroize::Zeroizing;

use crate::clock::Mono;
use crate::config::{ClientAuth, Config, TokenFormat};
use crate::credential::Credential;
use crate::dpop;
use crate::error::{Error, HttpFailure};
use crate::http::{attempt_timeout, Exchange, Failure, Http, RawResponse, Read};
use crate::log;
use crate::retry::{self, is_retryable_status, Attempt};
use crate::secret::{scrub, SecretString};
use crate::stats::Counters;
use crate::token::{AccessToken, Timing, TokenType, MAX_TOKEN_RESPONSE_BYTES};
use crate::token_response::{error_fields_of, parse_scrubbed};

/// RFC 7523's `client_assertion_type` for a JWT assertion.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Asks the token endpoint for a new token, retrying as the contract says.
pub(crate) fn fetch_token(
    http: &Http,
    config: &Config,
    lwt_client_id: Option<&str>,
    deadline: Instant,
    counters: &Counters,
) -> Result<AccessToken, Error> {
    let secret = config.credential.secret().map(SecretString::expose);
    let basic = match (config.client_auth, secret) {
        (ClientAuth::Basic, Some(secret)) => Some(basic_authorization(&config.client_id, secret)),
        _ => None,
    };
    // A secret's body is the same for every attempt; an assertion is new for each.
    let signer = match &config.credential {
        Credential::PrivateKeyJwt(signer) => Some(signer),
        Credential::Secret(_) => None,
    };
    let fixed_body = signer
        .is_none()
        .then(|| request_body(config, lwt_client_id, None));
    let content_type = match config.token_format {
        TokenFormat::Json => "application/json",
        TokenFormat::Form => "application/x-www-form-urlencoded",
    };
    let mut headers = vec![
        ("content-type", content_type),
        ("accept", "application/json"),
    ];
    if let Some(value) = &basic {
        headers.push(("authorization", value.as_str()));
    }
    // What a server echoing the request back could give the secret away in: the secret
    // itself, as the form body carries it, and HTTP Basic's base64 credentials.
    let mut form_secret = Zeroizing::new(String::new());
    if let Some(secret) = secret {
        form_encode(secret, &mut form_secret);
    }
    let basic_credentials = basic.as_ref().and_then(|b| b.strip_prefix("Basic "));
    let echoes = [
        secret,
        secret.map(|_| form_secret.as_str()),
        basic_credentials,
    ];
    retry::run(
        &"token request",
        config.backoff(),
        config.max_retries,
        deadline,
        |attempts| {
            if attempts > 1 {
                Counters::bump(&counters.retries);
            }
            let assertion = match signer.map(|s| s.assertion(&config.client_id, SystemTime::now()))
            {
                Some(Ok(assertion)) => Some(assertion),
                Some(Err(e)) => return Attempt::Done(Err(e)),
                None => None,
            };
            // A signer (an HSM, a KMS) may be slow: what it took counts against the call.
            if signer.is_some() && Instant::now() >= deadline {
                return Attempt::Done(Err(Error::deadline(
                    "the call's deadline_ms passed while the assertion was being signed; \
                     nothing was sent",
                )));
            }
            let fresh_body;
            let body = match &fixed_body {
                Some(body) => body,
                None => {
                    fresh_body = request_body(
                        config,
                        lwt_client_id,
                        assertion.as_deref().map(String::as_str),
                    );
                    &fresh_body
                }
            };
            let clean = |text: &str| {
                echoes
                    .iter()
                    .flatten()
                    .copied()
                    .chain(assertion.as_deref().map(String::as_str))
                    .fold(text.to_owned(), |text, echo| scrub(&text, echo))
            };
            let (outcome, timing) =
                match send_with_proof(http, config, &headers, body, deadline, counters) {
                    Ok(sent) => sent,
                    Err(e) => return Attempt::Done(Err(e)),
                };
            let resp = match outcome {
                Ok(resp) => resp,
                Err(failure) => {
                    return failure
                        .into_attempt(attempts, || "token response larger than 64 KiB".into())
                }
            };
            if (200..300).contains(&resp.status) {
                return Attempt::Done(accept(&resp, &timing, clean, config.dpop.is_some()));
            }
            if (300..400).contains(&resp.status) {
                return Attempt::Done(Err(Error::invalid_response(format!(
                    "token endpoint answered with a redirect (http status {}); not followed",
                    resp.status
                ))));
            }
            let (error, description) = error_fields_of(&resp.body, &clean);
            let last = Err(Error::from_token_status(HttpFailure {
                status: resp.status,
                error,
                description,
                attempts,
            }));
            if !is_retryable_status(resp.status) {
                return Attempt::Done(last);
            }
            Attempt::Again {
                reason: format!("http status {}", resp.status),
                asked: resp.server_wait(),
                last,
            }
        },
    )
}

/// One attempt at the token endpoint, with a DPoP proof when `dpop` is on: a 400 that asks
/// for a nonce (and gives one) is sent once more at once with it, not counted as a retry.
/// The timing is that of the send whose answer is returned.
fn send_with_proof(
    http: &Http,
    config: &Config,
    headers: &[(&str, &str)],
    body: &[u8],
    deadline: Instant,
    counters: &Counters,
) -> Result<(Result<RawResponse, Failure>, Timing), Error> {
    let mut sends = 0;
    loop {
        sends += 1;
        let timing = Timing {
            sent: Mono::now(),
            sent_wall: SystemTime::now(),
            refresh_ratio: config.refresh_ratio,
            jitter: crate::jitter::fraction(),
        };
        let proof = match &config.dpop {
            Some(key) => Some(key.proof("POST", &config.token_url, None)?),
            None => None,
        };
        let mut all = headers.to_vec();
        if let Some(proof) = &proof {
            all.push(("dpop", proof.as_str()));
        }
        let exchange = Exchange {
            method: &Method::POST,
            url: &config.token_url,
            headers: &all,
            body: Some(crate::http::Payload::Bytes(body)),
            timeout: attempt_timeout(config.timeout, false, deadline),
        };
        Counters::bump(&counters.token_requests);
        let outcome = http.send(&exchange, Read::Whole(MAX_TOKEN_RESPONSE_BYTES));
        if let (Some(key), Ok(resp)) = (&config.dpop, &outcome) {
            if let Some(nonce) = resp.header("dpop-nonce") {
                key.remember_nonce(&config.token_url, nonce);
                if sends == 1 && resp.status == 400 && dpop::asks_for_nonce(&resp.body, None) {
                    log::debug!("the token endpoint asked for a DPoP nonce; sending once more");
                    continue;
                }
            }
        }
        return Ok((outcome, timing));
    }
}

/// The token of a 2xx answer, placed by `timing`; `clean` scrubs echoes of the secret out
/// of a parse error. A DPoP-bound token is accepted only when `dpop` is on.
fn accept(
    resp: &RawResponse,
    timing: &Timing,
    clean: impl Fn(&str) -> String,
    dpop: bool,
) -> Result<AccessToken, Error> {
    // Scrubbed before server text is cut to fit, and once more after, for what the
    // parser adds around it.
    let parsed =
        parse_scrubbed(&resp.body, timing.sent_wall, &clean).map_err(|e| scrub_error(e, &clean))?;
    if parsed.token_type == TokenType::Dpop && !dpop {
        return Err(Error::invalid_response(
            "the token endpoint answered with a DPoP-bound token, but dpop is off",
        ));
    }
    let token = AccessToken::typed(
        parsed.access_token,
        parsed.token_type,
        parsed.lifetime,
        timing,
    );
    log::info!(
        "token {} fetched, lifetime {}s{}",
        token.fingerprint(),
        token.lifetime().as_secs(),
        if token.token_type() == TokenType::Dpop {
            ", DPoP-bound"
        } else {
            ""
        }
    );
    Ok(token)
}

fn scrub_error(e: Error, clean: &dyn Fn(&str) -> String) -> Error {
    match e {
        Error::InvalidResponse(m) => Error::invalid_response(clean(&m)),
        other => other,
    }
}

/// The token request's fields, serialized straight from borrowed strings so that no
/// stray copy of the secret is left in freed memory.
#[derive(serde::Serialize)]
struct TokenRequest<'a> {
    grant_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_assertion_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_assertion: Option<&'a str>,
    audience: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lwt_client_id: Option<&'a str>,
}

/// The body, zeroed on drop, since it may hold the secret; with `private_key_jwt`, it
/// carries `assertion` instead.
fn request_body(
    config: &Config,
    lwt_client_id: Option<&str>,
    assertion: Option<&str>,
) -> Zeroizing<Vec<u8>> {
    let in_body = config.client_auth != ClientAuth::Basic;
    let request = TokenRequest {
        grant_type: "client_credentials",
        client_id: in_body.then_some(config.client_id.as_str()),
        client_secret: in_body
            .then(|| config.credential.secret().map(SecretString::expose))
            .flatten(),
        client_assertion_type: assertion.map(|_| ASSERTION_TYPE),
        client_assertion: assertion,
        audience: &config.audience,
        lwt_client_id,
    };
    // Sized up front (escaping at most sextuples a byte) so the buffer never reallocates
    // and leaves a partial copy of the secret behind.
    let fields = [
        request.client_id,
        request.client_secret,
        request.client_assertion_type,
        request.client_assertion,
        Some(request.audience),
        request.lwt_client_id,
    ];
    let capacity = 160 + fields.iter().flatten().map(|f| f.len() * 6).sum::<usize>();
    let mut body = Zeroizing::new(Vec::with_capacity(capacity));
    match config.token_format {
        TokenFormat::Json => {
            // Serializing borrowed strings into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *body, &request);
            body
        }
        TokenFormat::Form => {
            let pairs = [
                ("grant_type", Some(request.grant_type)),
                ("client_id", request.client_id),
                ("client_secret", request.client_secret),
                ("client_assertion_type", request.client_assertion_type),
                ("client_assertion", request.client_assertion),
                ("audience", Some(request.audience)),
                ("lwt_client_id", request.lwt_client_id),
            ];
            let mut out = String::with_capacity(capacity);
            for (name, value) in pairs.iter().filter_map(|(n, v)| v.map(|v| (n, v))) {
                if !out.is_empty() {
                    out.push('&');
                }
                form_encode(name, &mut out);
                out.push('=');
                form_encode(value, &mut out);
            }
            body.extend_from_slice(out.as_bytes());
            zeroize::Zeroize::zeroize(&mut out);
            body
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 asks.
fn basic_authorization(id: &str, secret: &str) -> Zeroizing<String> {
    let mut pair = Zeroizing::new(String::with_capacity(3 * (id.len() + secret.len()) + 1));
    form_encode(id, &mut pair);
    pair.push(':');
    form_encode(secret, &mut pair);
    let mut value = Zeroizing::new(String::with_capacity(6 + pair.len().div_ceil(3) * 4));
    value.push_str("Basic ");
    base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut value);
    value
}

/// What application/x-www-form-urlencoded leaves as it is (WHATWG URL standard): letters,
/// digits and `-._*`; a space becomes `+`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// application/x-www-form-urlencoded, as the WHATWG URL standard defines it, appended to
/// `out` piece by piece (no copy of a secret is made on the way).
fn form_encode(s: &str, out: &mut String) {
    for piece in utf8_percent_encode(s, FORM) {
        out.push_str(if piece == "%20" { "+" } else { piece });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        let mut s = String::new();
        form_encode("a b&c=d/é~", &mut s);
        assert_eq!(s, "a+b%26c%3Dd%2F%C3%A9%7E");
    }
}
