//! URL rules: which URLs may carry secrets, origins, and joining API paths.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use ureq::http::Uri;

use crate::error::Error;

/// Scheme, host and port: where a bearer token may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: &'static str,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http(s)://` URL, or why it has none.
    pub(crate) fn of(url: &str) -> Result<Origin, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "is not a valid URL")?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => "https",
            Some("http") => "http",
            Some(_) => return Err("must use https://"),
            None => return Err("must be an absolute URL"),
        };
        let authority = uri.authority().ok_or("must name a host")?;
        if authority.as_str().contains('@') {
            return Err("must not carry a user name or password");
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err("must name a host");
        }
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Origin { scheme, host, port })
    }

    /// The origin of a URL that may carry credentials: `https://`, or `http://` to loopback.
    pub(crate) fn check_allowed(url: &str, what: &str) -> Result<Origin, Error> {
        let origin = Origin::of(url).map_err(|why| Error::config(format!("{what} {why}")))?;
        if origin.scheme == "http" && !origin.is_loopback() {
            return Err(Error::config(format!(
                "{what} must use https:// (http:// is allowed only to a loopback host)"
            )));
        }
        Ok(origin)
    }

    /// Whether the host is `localhost`, in 127.0.0.0/8, or `[::1]`.
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// `scheme://host:port`, the port always written: one name per origin.
impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `scheme://authority/` of an absolute URL: the issuer a token URL belongs to.
pub(crate) fn origin_url(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}/", uri.scheme_str()?, uri.authority()?))
}

/// Whether `host` is the name `localhost` (any case, a trailing dot allowed): loopback by
/// definition (RFC 6761), so it is never asked of a resolver, which could say otherwise.
pub(crate) fn is_localhost_name(host: &str) -> bool {
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
}

/// Whether a URL host (as `http::Uri` gives it) is a loopback host.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if is_localhost_name(host) {
        return true;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    matches!(bare.parse::<Ipv6Addr>(), Ok(v6) if v6.is_loopback())
}

/// The URL for an API request: `base` + `path`, or `path` itself when it is an absolute URL
/// to the same origin. Another origin is [`Error::InvalidArgument`]: the token must not go there.
pub(crate) fn api_url(base: &str, base_origin: &Origin, path: &str) -> Result<String, Error> {
    let url = if has_scheme(path) {
        let origin = Origin::of(path)
            .map_err(|why| Error::invalid_argument(format!("request URL {why}")))?;
        if &origin != base_origin {
            return Err(Error::invalid_argument(
                "request URL is on another origin than api_base_url; the token is not sent there",
            ));
        }
        path.to_owned()
    } else if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    };
    if url.parse::<Uri>().is_err() {
        return Err(Error::invalid_argument(
            "request path is not a valid URL path",
        ));
    }
    Ok(url)
}

/// Resolves a redirect's `Location` against the URL that answered with it.
pub(crate) fn resolve_location(current: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if has_scheme(location) {
        return Some(location.to_owned());
    }
    let uri: Uri = current.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = uri.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

fn has_scheme(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1",
            "128.0.0.1",
            "[::2]",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins_compare_with_default_ports() {
        assert_eq!(
            Origin::of("https://API.lwolf.com/x").unwrap(),
            Origin::of("https://api.lwolf.com:443/y").unwrap()
        );
        assert_ne!(
            Origin::of("https://api.lwolf.com/x").unwrap(),
            Origin::of("http://api.lwolf.com/x").unwrap()
        );
        assert!(Origin::of("https://user:pw@api.lwolf.com/").is_err());
    }

    #[test]
    fn relative_locations() {
        let cur = "http://127.0.0.1:8080/base/v1/items?page=2";
        assert_eq!(
            resolve_location(cur, "/other").unwrap(),
            "http://127.0.0.1:8080/other"
        );
        assert_eq!(
            resolve_location(cur, "next").unwrap(),
            "http://127.0.0.1:8080/base/v1/next"
        );
        assert_eq!(
            resolve_location(cur, "//evil.example/x").unwrap(),
            "http://evil.example/x"
        );
    }
}
