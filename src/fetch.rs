//! The token request: its body, its retries, and what each answer means.

#![forbid(unsafe_code)]

use std::time::{Instant, SystemTime};

use base64::Engine;
use ureq::http::Method;
use zeroize::Zeroizing;

use crate::config::{ClientAuth, Config, TokenFormat};
use crate::error::{Error, HttpFailure};
use crate::http::{Failure, Http};
use crate::retry::{is_retryable_status, server_wait, Backoff};
use crate::secret::scrub;
use crate::token::{
    error_fields_of, parse_token_response, AccessToken, Timing, MAX_TOKEN_RESPONSE_BYTES,
};

/// Asks the token endpoint for a new token, retrying as the contract says.
pub(crate) fn fetch_token(
    http: &Http,
    config: &Config,
    lwt_client_id: Option<&str>,
) -> Result<AccessToken, Error> {
    let (content_type, body) = request_body(config, lwt_client_id);
    let basic = match config.client_auth {
        ClientAuth::Basic => Some(basic_authorization(config)),
        ClientAuth::Body => None,
    };
    let mut headers = vec![("content-type", content_type), ("accept", "application/json")];
    if let Some(value) = &basic {
        headers.push(("authorization", value.as_str()));
    }
    let backoff = Backoff {
        base: config.retry_base,
        max: config.retry_max,
    };
    let secret = config.client_secret.expose();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let can_retry = attempts <= config.max_retries;
        let timing = Timing {
            sent: Instant::now(),
            sent_wall: SystemTime::now(),
            refresh_ratio: config.refresh_ratio,
            jitter: crate::retry::random_fraction(),
        };
        let outcome = http.send(
            &Method::POST,
            &config.token_url,
            &headers,
            Some(&body),
            MAX_TOKEN_RESPONSE_BYTES,
        );
        let (reason, wait) = match outcome {
            Ok(resp) if (200..300).contains(&resp.status) => {
                let parsed = parse_token_response(&resp.body, timing.sent_wall)
                    .map_err(|e| scrub_error(e, secret))?;
                let token = AccessToken::new(parsed.access_token, parsed.lifetime, &timing);
                log::info!(
                    "lwolf-auth: token {} fetched, lifetime {}s",
                    token.fingerprint(),
                    token.lifetime().as_secs()
                );
                return Ok(token);
            }
            Ok(resp) if (300..400).contains(&resp.status) => {
                return Err(Error::invalid_response(format!(
                    "token endpoint answered with a redirect (http status {}); not followed",
                    resp.status
                )));
            }
            Ok(resp) => {
                let (error, description) = error_fields_of(&resp.body);
                let failure = HttpFailure {
                    status: resp.status,
                    error: error.map(|e| scrub(&e, secret)),
                    description: description.map(|d| scrub(&d, secret)),
                    attempts,
                };
                if !(can_retry && is_retryable_status(resp.status)) {
                    return Err(Error::from_token_status(failure));
                }
                let asked = server_wait(
                    resp.status,
                    |name| resp.header(name).map(str::to_owned),
                    SystemTime::now(),
                );
                (format!("http status {}", resp.status), asked)
            }
            Err(Failure::TooLarge) => {
                return Err(Error::invalid_response(
                    "token response larger than 64 KiB",
                ))
            }
            Err(Failure::Transport(mut t)) => {
                t.attempts = attempts;
                if !(can_retry && t.retryable) {
                    return Err(Error::Transport(Box::new(t)));
                }
                (t.message, None)
            }
        };
        let wait = wait
            .unwrap_or_else(|| backoff.wait(attempts - 1))
            .min(config.retry_max);
        log::warn!(
            "lwolf-auth: token request failed ({reason}); retry {attempts} of {} in {} ms",
            config.max_retries,
            wait.as_millis()
        );
        std::thread::sleep(wait);
    }
}

fn scrub_error(e: Error, secret: &str) -> Error {
    match e {
        Error::InvalidResponse(m) => Error::invalid_response(scrub(&m, secret)),
        other => other,
    }
}

/// The body and its content type; zeroed on drop, since it may hold the secret.
fn request_body(config: &Config, lwt_client_id: Option<&str>) -> (&'static str, Zeroizing<Vec<u8>>) {
    let mut fields: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if config.client_auth == ClientAuth::Body {
        fields.push(("client_id", &config.client_id));
        fields.push(("client_secret", config.client_secret.expose()));
    }
    fields.push(("audience", &config.audience));
    if let Some(id) = lwt_client_id {
        fields.push(("lwt_client_id", id));
    }
    match config.token_format {
        TokenFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect();
            let bytes = serde_json::to_vec(&map).unwrap_or_default();
            ("application/json", Zeroizing::new(bytes))
        }
        TokenFormat::Form => {
            let mut out = Zeroizing::new(String::new());
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push('&');
                }
                form_encode(k, &mut out);
                out.push('=');
                form_encode(v, &mut out);
            }
            (
                "application/x-www-form-urlencoded",
                Zeroizing::new(std::mem::take(&mut *out).into_bytes()),
            )
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 asks.
fn basic_authorization(config: &Config) -> Zeroizing<String> {
    let mut pair = Zeroizing::new(String::new());
    form_encode(&config.client_id, &mut pair);
    pair.push(':');
    form_encode(config.client_secret.expose(), &mut pair);
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
    Zeroizing::new(format!("Basic {}", encoded.as_str()))
}

/// application/x-www-form-urlencoded, as the WHATWG URL standard defines it.
fn form_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
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
