//! How to reach the fleet cache's server (`cache_url`), and whether it is worth trying: the
//! Redis server of many hosts, and this process's memory of its failures.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::{Lazy, OnceCell};
use rustls::ClientConfig;

use super::wire::{Conn, WireError};
use crate::cache_url::CacheUrl;
use crate::clock::Mono;
use crate::fork::{self, PerProcess};
use crate::log;

/// After a failure, the server is left alone this long: a process pays at most one
/// failed exchange per server per minute, whatever its callers do.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The fleet's Redis server as a client reaches it: the `cache_url`'s settings, and with
/// `rediss://` the roots it trusts (the bundled ones and `ca_file`'s), made into a TLS
/// configuration on first use (parsing the roots takes a few milliseconds). One per client
/// and all its handles.
pub(crate) struct FleetTarget {
    url: Arc<CacheUrl>,
    extra_roots: Arc<Vec<Vec<u8>>>,
    tls: OnceCell<Arc<ClientConfig>>,
}

impl fmt::Debug for FleetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url.shown)
    }
}

impl FleetTarget {
    /// The server of `url`, trusting `extra_roots` (DER, from `ca_file`) beside the bundled
    /// roots over TLS. No I/O.
    pub(crate) fn new(url: Arc<CacheUrl>, extra_roots: Arc<Vec<Vec<u8>>>) -> FleetTarget {
        FleetTarget {
            url,
            extra_roots,
            tls: OnceCell::new(),
        }
    }

    /// The URL, its password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.url.shown
    }

    /// A connection, set up within `bound` (name resolution, connect, TLS, `AUTH`,
    /// `SELECT`, all of it).
    pub(crate) fn connect(&self, bound: Duration) -> Result<Conn, WireError> {
        let tls = if self.url.tls {
            let config = self
                .tls
                .get_or_try_init(|| tls_config(&self.extra_roots))
                .map_err(|e| WireError::Failed(format!("tls: {e}")))?;
            Some(Arc::clone(config))
        } else {
            None
        };
        Conn::open(&self.url, tls, bound)
    }

    /// Whether the server may be tried now: not within [`RETRY_AFTER`] of a failure.
    pub(crate) fn may_try(&self) -> bool {
        let now = Mono::now();
        let down = DOWN.get().lock.lock();
        down.get(&self.url.shown).is_none_or(|until| now >= *until)
    }

    /// Records a failure: the server is skipped for [`RETRY_AFTER`], which the log says
    /// (once per failure, not per skipped call).
    pub(crate) fn failed(&self, doing: &str, e: &WireError) {
        let until = Mono::now() + RETRY_AFTER;
        DOWN.get().lock.lock().insert(self.url.shown.clone(), until);
        log::warn!(
            "fleet cache {}: {doing} failed ({e}); going on without it for {} s",
            self.url.shown,
            RETRY_AFTER.as_secs()
        );
    }

    /// Records a success: a server that had failed is back, which the log says.
    pub(crate) fn answered(&self) {
        let was_down = DOWN.get().lock.lock().remove(&self.url.shown).is_some();
        if was_down {
            log::info!("fleet cache {} answers again", self.url.shown);
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
    fn the_bundled_roots_make_a_tls_configuration() {
        assert!(
            tls_config(&[vec![1, 2, 3]]).is_ok(),
            "a bad extra root is skipped"
        );
    }
}
