//! Where the fleet cache is (`cache_url`), how to reach it, and whether it is worth trying:
//! the Redis server of many hosts, and this process's memory of its failures.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use once_cell::sync::Lazy;
use redis::IntoConnectionInfo as _;

use crate::clock::Mono;
use crate::error::Error;
use crate::fork::{self, PerProcess};
use crate::log;
use crate::secret::{self, SecretString};

/// After a failure, the server is left alone this long: a process pays at most one
/// connect timeout per server per minute, whatever its callers do.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `cache_url`, parsed: the Redis client (no connection yet) and how to name it in logs.
pub(crate) struct FleetTarget {
    client: redis::Client,
    /// The URL with its password replaced by `***`.
    shown: String,
    /// `user:password` as written in the URL, scrubbed from every message.
    userinfo: Option<SecretString>,
}

impl fmt::Debug for FleetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl FleetTarget {
    /// `url` (`redis://` or `rediss://`), with `extra_roots` (DER, from `ca_file`) trusted
    /// beside the bundled roots over TLS. No I/O. A bad URL is [`Error::Config`], with the
    /// password left out.
    pub(crate) fn parse(url: &str, extra_roots: &[Vec<u8>]) -> Result<FleetTarget, Error> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let tls = match scheme {
            "redis" => false,
            "rediss" => true,
            _ => {
                return Err(Error::config(
                    "cache_url must start with redis:// or rediss://",
                ))
            }
        };
        let (userinfo, host) = match rest.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, rest),
        };
        let shown = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://***@{host}"),
            },
            None => url.to_owned(),
        };
        let userinfo = userinfo.map(|u| SecretString::new(u.to_owned()));
        let refused = |e: redis::RedisError| {
            let why = scrub(&e.to_string(), userinfo.as_ref());
            Error::config(format!("cache_url {shown}: {why}"))
        };
        let info = url.into_connection_info().map_err(refused)?;
        // No `CLIENT SETINFO` on each connect: a command per exchange the fleet does not need.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        let client = if tls {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(roots_pem(extra_roots)),
            };
            redis::Client::build_with_tls(info, certs).map_err(refused)?
        } else {
            redis::Client::open(info).map_err(refused)?
        };
        Ok(FleetTarget {
            client,
            shown,
            userinfo,
        })
    }

    /// The URL, its password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection whose every step (connect, TLS, AUTH, each command) is bounded by
    /// `timeout`.
    pub(crate) fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    /// Whether the server may be tried now: not within [`RETRY_AFTER`] of a failure.
    pub(crate) fn may_try(&self) -> bool {
        let now = Mono::now();
        let down = DOWN.get().lock.lock();
        down.get(&self.shown).is_none_or(|until| now >= *until)
    }

    /// Records a failure: the server is skipped for [`RETRY_AFTER`], which the log says
    /// (once per failure, not per skipped call).
    pub(crate) fn failed(&self, doing: &str, e: &redis::RedisError) {
        let until = Mono::now() + RETRY_AFTER;
        DOWN.get().lock.lock().insert(self.shown.clone(), until);
        log::warn!(
            "fleet cache {}: {doing} failed ({}); going on without it for {} s",
            self.shown,
            scrub(&e.to_string(), self.userinfo.as_ref()),
            RETRY_AFTER.as_secs()
        );
    }

    /// Records a success: a server that had failed is back, which the log says.
    pub(crate) fn answered(&self) {
        let was_down = DOWN.get().lock.lock().remove(&self.shown).is_some();
        if was_down {
            log::info!("fleet cache {} answers again", self.shown);
        }
    }
}

/// The servers that failed, and until when each is left alone: one per process (a child of
/// a fork starts with its parent's).
static DOWN: Lazy<PerProcess<HashMap<String, Mono>>> =
    Lazy::new(|| PerProcess::new(HashMap::new(), fork::cloned));

fn scrub(text: &str, userinfo: Option<&SecretString>) -> String {
    let Some(info) = userinfo else {
        return text.to_owned();
    };
    let text = secret::scrub(text, info.expose());
    match info.expose().split_once(':') {
        Some((_, password)) => secret::scrub(&text, password),
        None => text,
    }
}

/// The bundled web roots and `extra_roots`, as the PEM the redis crate takes (it replaces
/// its own roots with these, so the bundled ones must be in it).
fn roots_pem(extra_roots: &[Vec<u8>]) -> Vec<u8> {
    let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| c.as_ref());
    let mut pem = String::new();
    for der in bundled.chain(extra_roots.iter().map(Vec::as_slice)) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let t = FleetTarget::parse("redis://app:pa55word@127.0.0.1:6390/2", &[]).unwrap();
        assert_eq!(t.shown(), "redis://app:***@127.0.0.1:6390/2");
        assert!(!format!("{t:?}").contains("pa55word"));
        let t = FleetTarget::parse("redis://:pa55word@h", &[]).unwrap();
        assert_eq!(t.shown(), "redis://:***@h");
        assert_eq!(
            FleetTarget::parse("redis://h:6379", &[]).unwrap().shown(),
            "redis://h:6379"
        );
        assert!(FleetTarget::parse("rediss://h:6380", &[]).is_ok());
        for bad in ["http://h", "h:6379", "", "redis://pa55word@:notaport"] {
            let e = FleetTarget::parse(bad, &[]).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("pa55word"), "{e}");
        }
    }

    #[test]
    fn the_bundled_roots_are_in_the_pem() {
        let pem = String::from_utf8(roots_pem(&[vec![1, 2, 3]])).unwrap();
        let count = pem.matches("BEGIN CERTIFICATE").count();
        assert_eq!(count, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() + 1);
        assert!(pem.contains("AQID\n"));
    }
}
