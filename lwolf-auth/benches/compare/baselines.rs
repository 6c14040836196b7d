//! The token caches users would write instead, on the same HTTP agent (ureq 3, configured as
//! the library configures its own: no redirects, statuses as responses, a global timeout).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};

use crate::server::{CLIENT_ID, CLIENT_SECRET};

/// The agent the library builds (see src/http.rs), minus TLS and proxies, which loopback
/// does not use.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .user_agent("lwolf-bench-baseline")
        .build()
        .new_agent()
}

/// One token request, as the library sends it; returns the token and its `expires_in`.
pub fn fetch(agent: &ureq::Agent, token_url: &str) -> (Arc<str>, Duration) {
    let body = serde_json::json!({
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": "https://api.lwolf.com",
    })
    .to_string();
    let mut resp = agent
        .post(token_url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .send(body.as_bytes())
        .expect("token request");
    assert_eq!(resp.status().as_u16(), 200, "token endpoint status");
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .expect("token body");
    let v: Value = serde_json::from_slice(&bytes).expect("token json");
    let token = v["access_token"].as_str().expect("access_token");
    let expires_in = v["expires_in"].as_f64().expect("expires_in");
    (Arc::from(token), Duration::from_secs_f64(expires_in))
}

/// golang.org/x/oauth2's `ReuseTokenSource`: one mutex around the cached token, held across
/// the fetch (`s.mu.Lock(); defer s.mu.Unlock(); if s.t.Valid() { return s.t }; t, err :=
/// s.new.Token()`), and a token counts as expired `expiry_delta` (10 s in Go) before its
/// `expires_in` runs out.
pub struct ReuseTokenSource {
    agent: ureq::Agent,
    token_url: String,
    expiry_delta: Duration,
    mu: Mutex<Option<(Arc<str>, Instant)>>,
}

impl ReuseTokenSource {
    pub fn new(token_url: String, expiry_delta: Duration) -> ReuseTokenSource {
        ReuseTokenSource {
            agent: agent(),
            token_url,
            expiry_delta,
            mu: Mutex::new(None),
        }
    }

    /// The token, and whether this call fetched it.
    pub fn token(&self) -> (Arc<str>, bool) {
        let mut t = self.mu.lock();
        if let Some((token, expiry)) = &*t {
            if Instant::now() + self.expiry_delta < *expiry {
                return (Arc::clone(token), false);
            }
        }
        let (token, expires_in) = fetch(&self.agent, &self.token_url);
        *t = Some((Arc::clone(&token), Instant::now() + expires_in));
        (token, true)
    }
}

/// The cache most people write first: check under a lock, fetch without it, store. Correct,
/// never blocks readers, and lets every caller that finds it empty fetch its own token.
pub struct NaiveCache {
    agent: ureq::Agent,
    token_url: String,
    slot: Mutex<Option<Arc<str>>>,
}

impl NaiveCache {
    pub fn new(token_url: String) -> NaiveCache {
        NaiveCache {
            agent: agent(),
            token_url,
            slot: Mutex::new(None),
        }
    }

    pub fn token(&self) -> Arc<str> {
        if let Some(t) = &*self.slot.lock() {
            return Arc::clone(t);
        }
        let (token, _) = fetch(&self.agent, &self.token_url);
        *self.slot.lock() = Some(Arc::clone(&token));
        token
    }
}

/// A sketch of the fix for what the throughput rows found (see BENCHMARKS.md): ureq 3.5
/// resolves the host again for every request, pooled connection or not, and with any timeout
/// configured it does so on a new thread (`resolve_async`). This resolver answers IP literals
/// at once and keeps a host's addresses for `ttl`, asking ureq's own resolver (and so
/// honouring its timeout) only on a miss. Used by the bench to show what the library would
/// gain; the library itself is not changed here.
#[derive(Debug)]
pub struct CachingResolver {
    ttl: Duration,
    cache: Mutex<std::collections::HashMap<String, (ResolvedSocketAddrs, Instant)>>,
}

impl CachingResolver {
    pub fn new(ttl: Duration) -> CachingResolver {
        CachingResolver {
            ttl,
            cache: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("");
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            let mut addrs = self.empty();
            addrs.push(std::net::SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = format!("{host}:{port}");
        if let Some((addrs, at)) = self.cache.lock().get(&key) {
            if at.elapsed() < self.ttl {
                return Ok(addrs.clone());
            }
        }
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        self.cache
            .lock()
            .insert(key, (addrs.clone(), Instant::now()));
        Ok(addrs)
    }
}

/// `agent()` with `CachingResolver`.
pub fn agent_with_caching_resolver() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .user_agent("lwolf-bench-baseline")
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        CachingResolver::new(Duration::from_secs(30)),
    )
}
