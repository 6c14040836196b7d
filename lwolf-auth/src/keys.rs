//! The configuration's string keys: what `lwolf_config_set`, the environment
//! (`LWOLF_<KEY>`) and [`ConfigBuilder::set`] take, each parsed and checked at once.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::builder::{check_ratio, ConfigBuilder};
use crate::config::{ClientAuth, TokenFormat};
use crate::credential::AssertionAlg;
use crate::error::Error;

/// Every configuration key, as accepted by [`ConfigBuilder::set`], `lwolf_config_set` and,
/// upper-cased with an `LWOLF_` prefix, the environment.
pub const CONFIG_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_secret_file",
    "audience",
    "token_url",
    "api_base_url",
    "transact_base_url",
    "lwt_client_id",
    "refresh_ratio",
    "timeout_ms",
    "deadline_ms",
    "max_retries",
    "retry_base_ms",
    "retry_max_ms",
    "token_format",
    "client_auth",
    "private_key_file",
    "private_key_id",
    "assertion_alg",
    "assertion_audience",
    "dpop",
    "dpop_key_file",
    "ca_file",
    "ca_system",
    "user_agent",
    "max_response_bytes",
    "cache_dir",
    "cache_url",
    "subscription_key",
    "subscription_key_file",
    "max_in_flight",
    "max_requests_per_second",
    "request_id_header",
];

impl ConfigBuilder {
    /// Sets one key from its string form, as `lwolf_config_set` and the environment do.
    ///
    /// An unknown key or an unparsable or out-of-range value is [`Error::InvalidArgument`].
    ///
    /// ```
    /// let mut b = lwolf_auth::Config::builder();
    /// b.set("timeout_ms", "5000").unwrap();
    /// assert!(b.set("timeout_ms", "soon").is_err());
    /// assert!(b.set("no_such_key", "1").is_err());
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        // Work on a copy so that a rejected value leaves the builder as it was.
        let this = self.clone();
        *self = match key {
            "client_id" => this.client_id(value),
            "client_secret" => this.client_secret(value),
            "client_secret_file" => this.client_secret_file(value),
            "subscription_key" => this.subscription_key(value),
            "subscription_key_file" => this.subscription_key_file(value),
            "audience" => this.audience(value),
            "token_url" => this.token_url(value),
            "api_base_url" => this.api_base_url(value),
            "transact_base_url" => this.transact_base_url(value),
            "lwt_client_id" => this.lwt_client_id(value),
            "refresh_ratio" => {
                let r: f64 = parse(key, value)?;
                check_ratio(r).map_err(Error::invalid_argument)?;
                this.refresh_ratio(r)
            }
            "timeout_ms" => {
                let ms: u64 = parse(key, value)?;
                if ms == 0 {
                    return Err(Error::invalid_argument("timeout_ms must be positive"));
                }
                this.timeout(Duration::from_millis(ms))
            }
            "deadline_ms" => {
                let ms: u64 = parse(key, value)?;
                if ms == 0 {
                    return Err(Error::invalid_argument("deadline_ms must be positive"));
                }
                this.deadline(Duration::from_millis(ms))
            }
            "max_retries" => this.max_retries(parse(key, value)?),
            "retry_base_ms" => this.retry_base(Duration::from_millis(parse(key, value)?)),
            "retry_max_ms" => this.retry_max(Duration::from_millis(parse(key, value)?)),
            "token_format" => this.token_format(match value {
                "json" => TokenFormat::Json,
                "form" => TokenFormat::Form,
                _ => return Err(bad_value(key, "json or form")),
            }),
            "client_auth" => this.client_auth(match value {
                "body" => ClientAuth::Body,
                "basic" => ClientAuth::Basic,
                "private_key_jwt" => ClientAuth::PrivateKeyJwt,
                _ => return Err(bad_value(key, "body, basic or private_key_jwt")),
            }),
            "private_key_file" => this.private_key_file(value),
            "private_key_id" => this.private_key_id(value),
            "assertion_alg" => this.assertion_alg(
                AssertionAlg::from_name(value)
                    .ok_or_else(|| bad_value(key, "RS256, RS384 or PS256"))?,
            ),
            "assertion_audience" => this.assertion_audience(value),
            // `true`/`false` too: what a boolean becomes in the bindings.
            "dpop" => this.dpop(match value {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => return Err(bad_value(key, "on or off")),
            }),
            "dpop_key_file" => this.dpop_key_file(value),
            "ca_file" => this.ca_file(value),
            "ca_system" => this.ca_system(match value {
                "on" | "true" => true,
                "off" | "false" | "" => false,
                _ => return Err(bad_value(key, "on or off")),
            }),
            "user_agent" => this.user_agent(value),
            "max_response_bytes" => this.max_response_bytes(parse(key, value)?),
            // An empty value turns the shared cache off again.
            "cache_dir" => this.cache_dir(value),
            "cache_url" => this.cache_url(value),
            "max_in_flight" => this.max_in_flight(parse(key, value)?),
            "max_requests_per_second" => this.max_requests_per_second(parse(key, value)?),
            "request_id_header" => this.request_id_header(value),
            _ => return Err(unknown_key(key)),
        };
        Ok(())
    }

    /// A builder with every `LWOLF_<KEY>` environment variable applied (empty ones skipped).
    pub fn from_env() -> Result<ConfigBuilder, Error> {
        let mut builder = ConfigBuilder::default();
        for key in CONFIG_KEYS {
            let name = format!("LWOLF_{}", key.to_ascii_uppercase());
            match std::env::var(&name) {
                Ok(v) if v.is_empty() => {}
                // The value may be the secret: zero this copy once it is applied.
                Ok(v) => builder.set(key, &zeroize::Zeroizing::new(v))?,
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::invalid_argument(format!(
                        "{name} is not valid UTF-8"
                    )))
                }
            }
        }
        Ok(builder)
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error> {
    value
        .trim()
        .parse()
        .map_err(|_| bad_value(key, "a number in range"))
}

fn bad_value(key: &str, expected: &str) -> Error {
    Error::invalid_argument(format!("{key}: expected {expected}"))
}

/// The error for an unknown key. The key is shown only when it is a near miss of a real
/// key (a typo, at most two edits away), with the key it was likely meant to be: with the
/// key and the value swapped, or a secret pasted in its place, the "key" is the secret, and
/// it must not end up in a message or a log, whatever letters it is made of.
fn unknown_key(key: &str) -> Error {
    let nearest = CONFIG_KEYS
        .iter()
        .map(|k| (edits(&key.to_ascii_lowercase(), k), *k))
        .min();
    match nearest {
        Some((distance, known)) if distance <= 2 && key.len() <= 40 => Error::invalid_argument(
            format!("unknown config key {key:?}; did you mean {known:?}?"),
        ),
        _ => Error::invalid_argument(format!(
            "unknown config key (not shown: {} characters, and no key's near miss; were the \
             key and the value swapped?)",
            key.chars().count()
        )),
    }
}

/// The Levenshtein distance between `a` and `b`, capped at 3 (only near misses matter).
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return 3;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()].min(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_named_and_anything_else_is_not_shown() {
        assert_eq!(edits("client_secert", "client_secret"), 2);
        assert_eq!(edits("timeout_ms", "timeout_ms"), 0);
        assert_eq!(edits("x", "client_secret"), 3);
        let e = unknown_key("CLIENT_ID").to_string();
        assert!(e.contains("\"client_id\""), "{e}");
        for secret in ["qwertzuiopasdfghjkl", "hunter2", "S3cr3t/value+with=stuff"] {
            let e = unknown_key(secret).to_string();
            assert!(!e.contains(secret), "{e}");
        }
    }
}
