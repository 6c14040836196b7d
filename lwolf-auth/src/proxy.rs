//! The environment's proxy (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), as curl reads it.

#![forbid(unsafe_code)]

use ureq::Proxy;

use crate::log;

/// The environment's proxy: `HTTPS_PROXY`, else `ALL_PROXY` (either case). `HTTP_PROXY`
/// is not used: only loopback hosts may be reached over plain http, and they go direct.
pub(crate) fn proxy_from_env(var: impl Fn(&str) -> Option<String>) -> Option<(Proxy, NoProxy)> {
    let url = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))?;
    let proxy = match Proxy::new(url.trim()) {
        Ok(p) => p,
        Err(_) => {
            log::warn!("ignoring an unparsable HTTPS_PROXY / ALL_PROXY");
            return None;
        }
    };
    let no_proxy = var("NO_PROXY")
        .or_else(|| var("no_proxy"))
        .unwrap_or_default();
    Some((proxy, NoProxy::parse(&no_proxy)))
}

/// `NO_PROXY` as curl reads it: comma-separated host names, each matching itself and its
/// subdomains (a leading `.` or `*.` is optional), IP addresses matching exactly, `*`
/// matching everything. Ports are ignored.
#[derive(Debug, Default)]
pub(crate) struct NoProxy {
    all: bool,
    hosts: Vec<String>,
}

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let host = match entry.rsplit_once(':') {
                // Keep bare IPv6 addresses whole; strip a port otherwise.
                Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
                    h
                }
                _ => entry,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            no_proxy.hosts.push(host.to_ascii_lowercase());
        }
        no_proxy
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.hosts.iter().any(|entry| {
            host == *entry
                || (host.len() > entry.len()
                    && host.ends_with(entry.as_str())
                    && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_like_curl() {
        let np = NoProxy::parse("lwolf.com, .internal, *.corp.example:8080, 10.1.2.3, [::2]");
        for host in [
            "lwolf.com",
            "gateway.lwolf.com",
            "a.internal",
            "x.corp.example",
            "10.1.2.3",
            "[::2]",
        ] {
            assert!(np.matches(host), "{host}");
        }
        for host in [
            "notlwolf.com",
            "lwolf.com.evil",
            "internal.net",
            "10.1.2.30",
        ] {
            assert!(!np.matches(host), "{host}");
        }
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("anything"));
    }

    #[test]
    fn proxy_prefers_https_proxy_and_ignores_http_proxy() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (p, _) = proxy_from_env(env(&[
            ("HTTPS_PROXY", "http://127.0.0.1:3128"),
            ("ALL_PROXY", "http://127.0.0.1:9999"),
        ]))
        .unwrap();
        assert_eq!(p.port(), 3128);
        assert!(proxy_from_env(env(&[("HTTP_PROXY", "http://127.0.0.1:3128")])).is_none());
        let (_, np) = proxy_from_env(env(&[
            ("https_proxy", "127.0.0.1:3128"),
            ("no_proxy", "lwolf.com"),
        ]))
        .unwrap();
        assert!(np.matches("api.lwolf.com"));
    }
}
