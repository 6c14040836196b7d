//! Host name resolution without a thread per request.
//!
//! ureq's default resolver, when a timeout is set, resolves on a new thread for every
//! request, even over a pooled connection and even for an IP address (so that a hanging
//! lookup stays bounded). For a client that talks to one or two hosts all day that is a
//! thread spawn and a DNS query per API call. This resolver answers IP literals directly and
//! remembers names for a short while; only a miss goes to ureq's resolver and its thread.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config as AgentConfig;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a resolved name is reused: short enough to follow DNS changes of a gateway
/// behind a load balancer, long enough that a busy client resolves rarely.
const NAME_TTL: Duration = Duration::from_secs(30);

/// A resolver shared by a client's agents (and its tenant clones).
#[derive(Clone, Default)]
pub(crate) struct CachingResolver(Arc<Inner>);

#[derive(Default)]
struct Inner {
    fallback: DefaultResolver,
    names: Mutex<HashMap<(String, u16), (Instant, ResolvedSocketAddrs)>>,
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver").finish_non_exhaustive()
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &AgentConfig,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(authority), Some(scheme)) = (uri.authority(), uri.scheme()) else {
            return self.0.fallback.resolve(uri, config, timeout);
        };
        let Some(port) = authority.port_u16().or(match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        }) else {
            return self.0.fallback.resolve(uri, config, timeout);
        };
        let host = authority.host();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        // `localhost` is loopback, whatever a resolver (or /etc/hosts) says: plain http is
        // allowed to it only because it never leaves the machine.
        let fixed: Option<[Option<IpAddr>; 2]> = if let Ok(ip) = literal.parse::<IpAddr>() {
            Some([Some(ip), None])
        } else if crate::url::is_localhost_name(host) {
            Some([
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ])
        } else {
            None
        };
        if let Some(ips) = fixed {
            let mut addrs = self.empty();
            for addr in config.ip_family().keep_wanted(
                ips.into_iter()
                    .flatten()
                    .map(|ip| SocketAddr::new(ip, port)),
            ) {
                addrs.push(addr);
            }
            return if addrs.is_empty() {
                Err(ureq::Error::HostNotFound)
            } else {
                Ok(addrs)
            };
        }
        let key = (host.to_ascii_lowercase(), port);
        if let Some((at, addrs)) = self.0.names.lock().get(&key) {
            if at.elapsed() < NAME_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.0.fallback.resolve(uri, config, timeout)?;
        self.0
            .names
            .lock()
            .insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &CachingResolver, url: &str) -> Vec<SocketAddr> {
        let config = ureq::Agent::config_builder().build();
        r.resolve(&url.parse().unwrap(), &config, NextTimeout::default())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn ip_literals_are_answered_directly() {
        let r = CachingResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/x"),
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/x"),
            vec!["[::1]:443".parse().unwrap()]
        );
        assert!(r.0.names.lock().is_empty(), "literals need no lookup");
    }

    #[test]
    fn localhost_is_loopback_without_a_lookup() {
        let r = CachingResolver::default();
        let addrs = resolve(&r, "http://LocalHost.:9/x");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        assert!(r.0.names.lock().is_empty(), "localhost needs no lookup");
    }

    #[test]
    fn names_are_answered_from_the_cache_while_fresh() {
        let r = CachingResolver::default();
        let mut addrs = r.empty();
        addrs.push("192.0.2.7:9".parse().unwrap());
        // A name no resolver knows: only the cache can answer it.
        r.0.names
            .lock()
            .insert(("cached.invalid".to_owned(), 9), (Instant::now(), addrs));
        assert_eq!(
            resolve(&r, "http://CACHED.invalid:9/y"),
            vec!["192.0.2.7:9".parse().unwrap()]
        );
    }
}
