//! Where the fleet cache is (`cache_url`), how to reach it, and whether it is worth trying:
//! the Redis server of many hosts, and this process's memory of its failures.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::{Lazy, OnceCell};
use percent_encoding::percent_decode_str;
use rustls::ClientConfig;

use super::wire::{Conn, Endpoint, WireError};
use crate::clock::Mono;
use crate::error::Error;
use crate::fork::{self, PerProcess};
use crate::log;

/// After a failure, the server is left alone this long: a process pays at most one
/// failed exchange per server per minute, whatever its callers do.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `cache_url`, parsed: where the server is (no connection yet) and how to name it in
/// logs.
pub(crate) struct FleetTarget {
    endpoint: Endpoint,
    /// With `rediss://`: the bundled roots and `ca_file`'s, made into a TLS configuration
    /// on first use (parsing the roots takes a few milliseconds).
    extra_roots: Option<Arc<Vec<Vec<u8>>>>,
    tls: OnceCell<Arc<ClientConfig>>,
    /// The URL with its password replaced by `***`.
    shown: String,
}

impl fmt::Debug for FleetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl FleetTarget {
    /// `url` (`redis://[user:password@]host[:port][/db]` or `rediss://…`), with
    /// `extra_roots` (DER, from `ca_file`) trusted beside the bundled roots over TLS. No
    /// I/O. A bad URL is [`Error::Config`], with the password left out.
    pub(crate) fn parse(url: &str, extra_roots: &[Vec<u8>]) -> Result<FleetTarget, Error> {
        let parsed = url::Url::parse(url);
        let shown = match &parsed {
            Ok(u) if u.password().is_some() || !u.username().is_empty() => {
                let mut hidden = u.clone();
                let _ = hidden.set_password(u.password().map(|_| "***"));
                if u.password().is_none() {
                    // `redis://password@host`: the user part is the password.
                    let _ = hidden.set_username("***");
                }
                hidden.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "(not shown: not a URL)".to_owned(),
        };
        let u = parsed.map_err(|e| Error::config(format!("cache_url is not a valid URL ({e})")))?;
        let tls = match u.scheme() {
            "redis" => false,
            "rediss" => true,
            _ => {
                return Err(Error::config(
                    "cache_url must start with redis:// or rediss://",
                ))
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::config(format!("cache_url {shown} names no host")))?
            .to_owned();
        let db = match u.path().trim_start_matches('/') {
            "" => 0,
            n => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::config(format!("cache_url {shown}: the database is not a number"))
            })?,
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| {
                    Error::config(format!(
                        "cache_url {shown}: the user or password is not UTF-8"
                    ))
                })
        };
        // `redis://secret@host` means a password alone, as Redis's own tools read it.
        let (username, password) = match (u.username(), u.password()) {
            ("", None) => (None, None),
            (user, None) => (None, Some(decode(user)?)),
            ("", Some(p)) => (None, Some(decode(p)?)),
            (user, Some(p)) => (Some(decode(user)?), Some(decode(p)?)),
        };
        Ok(FleetTarget {
            endpoint: Endpoint {
                host,
                port: u.port().unwrap_or(6379),
                tls: None,
                username,
                password: password.map(zeroize::Zeroizing::new),
                db,
            },
            extra_roots: tls.then(|| Arc::new(extra_roots.to_vec())),
            tls: OnceCell::new(),
            shown,
        })
    }

    /// The URL, its password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection, set up within `bound` (name resolution, connect, TLS, `AUTH`,
    /// `SELECT`, all of it).
    pub(crate) fn connect(&self, bound: Duration) -> Result<Conn, WireError> {
        match &self.extra_roots {
            None => Conn::open(&self.endpoint, bound),
            Some(extra) => {
                let config = self
                    .tls
                    .get_or_try_init(|| tls_config(extra))
                    .map_err(|e| WireError::Failed(format!("tls: {e}")))?;
                let endpoint = Endpoint {
                    tls: Some(Arc::clone(config)),
                    ..self.endpoint.clone()
                };
                Conn::open(&endpoint, bound)
            }
        }
    }

    /// Whether the server may be tried now: not within [`RETRY_AFTER`] of a failure.
    pub(crate) fn may_try(&self) -> bool {
        let now = Mono::now();
        let down = DOWN.get().lock.lock();
        down.get(&self.shown).is_none_or(|until| now >= *until)
    }

    /// Records a failure: the server is skipped for [`RETRY_AFTER`], which the log says
    /// (once per failure, not per skipped call).
    pub(crate) fn failed(&self, doing: &str, e: &WireError) {
        let until = Mono::now() + RETRY_AFTER;
        DOWN.get().lock.lock().insert(self.shown.clone(), until);
        log::warn!(
            "fleet cache {}: {doing} failed ({e}); going on without it for {} s",
            self.shown,
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

/// TLS with the bundled web roots and `extra` (the redis server's certificate must chain to
/// one of them), rustls on ring as for HTTPS.
fn tls_config(extra: &[Vec<u8>]) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.as_ref()));
    let extra = extra
        .iter()
        .map(|der| rustls::pki_types::CertificateDer::from(der.as_slice()));
    // A root that does not parse is skipped, as ureq skips it.
    let _ = roots.add_parsable_certificates(bundled.chain(extra));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let t = FleetTarget::parse("redis://app:pa55word@127.0.0.1:6390/2", &[]).unwrap();
        assert_eq!(t.shown(), "redis://app:***@127.0.0.1:6390/2");
        assert!(!format!("{t:?}").contains("pa55word"));
        assert_eq!(t.endpoint.db, 2);
        assert_eq!(t.endpoint.username.as_deref(), Some("app"));
        assert_eq!(
            t.endpoint.password.as_deref().map(String::as_str),
            Some("pa55word")
        );
        let t = FleetTarget::parse("redis://:pa55word@h", &[]).unwrap();
        assert_eq!(t.shown(), "redis://:***@h");
        let t = FleetTarget::parse("redis://pa55word@h", &[]).unwrap();
        assert!(!t.shown().contains("pa55word"), "{}", t.shown());
        assert_eq!(
            t.endpoint.password.as_deref().map(String::as_str),
            Some("pa55word")
        );
        let t = FleetTarget::parse("redis://h:6379", &[]).unwrap();
        assert_eq!(t.shown(), "redis://h:6379");
        assert!(t.extra_roots.is_none());
        assert!(FleetTarget::parse("rediss://h:6380", &[])
            .unwrap()
            .extra_roots
            .is_some());
        for bad in [
            "http://h",
            "h:6379",
            "",
            "redis://pa55word@:notaport",
            "redis://h/x",
        ] {
            let e = FleetTarget::parse(bad, &[]).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("pa55word"), "{e}");
        }
    }

    #[test]
    fn the_bundled_roots_make_a_tls_configuration() {
        assert!(
            tls_config(&[vec![1, 2, 3]]).is_ok(),
            "a bad extra root is skipped"
        );
    }
}
