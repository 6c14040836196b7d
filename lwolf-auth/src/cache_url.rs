//! The `cache_url` setting, read: where the fleet's Redis is and how to log in, with the
//! password kept out of everything that is shown. Settings only: the fleet layer
//! (`crate::fleet`) reaches the server.

#![forbid(unsafe_code)]

use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use crate::error::Error;

/// `redis://[user:password@]host[:port][/db]` or `rediss://…`, parsed.
pub(crate) struct CacheUrl {
    pub host: String,
    pub port: u16,
    /// `rediss://`.
    pub tls: bool,
    pub username: Option<String>,
    /// Zeroed when dropped: it is a secret.
    pub password: Option<Zeroizing<String>>,
    pub db: i64,
    /// The URL with its password replaced by `***`.
    pub shown: String,
}

impl CacheUrl {
    /// Reads `url`. No I/O. A bad URL is [`Error::Config`], with the password left out.
    pub(crate) fn parse(url: &str) -> Result<CacheUrl, Error> {
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
        Ok(CacheUrl {
            host,
            port: u.port().unwrap_or(6379),
            tls,
            username,
            password: password.map(Zeroizing::new),
            db,
            shown,
        })
    }
}

impl std::fmt::Debug for CacheUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let t = CacheUrl::parse("redis://app:pa55word@127.0.0.1:6390/2").unwrap();
        assert_eq!(t.shown, "redis://app:***@127.0.0.1:6390/2");
        assert!(!format!("{t:?}").contains("pa55word"));
        assert_eq!(t.db, 2);
        assert_eq!(t.username.as_deref(), Some("app"));
        assert_eq!(t.password.as_deref().map(String::as_str), Some("pa55word"));
        let t = CacheUrl::parse("redis://:pa55word@h").unwrap();
        assert_eq!(t.shown, "redis://:***@h");
        let t = CacheUrl::parse("redis://pa55word@h").unwrap();
        assert!(!t.shown.contains("pa55word"), "{}", t.shown);
        assert_eq!(t.password.as_deref().map(String::as_str), Some("pa55word"));
        let t = CacheUrl::parse("redis://h:6379").unwrap();
        assert_eq!(t.shown, "redis://h:6379");
        assert!(!t.tls);
        assert!(CacheUrl::parse("rediss://h:6380").unwrap().tls);
        for bad in [
            "http://h",
            "h:6379",
            "",
            "redis://pa55word@:notaport",
            "redis://h/x",
        ] {
            let e = CacheUrl::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("pa55word"), "{e}");
        }
    }
}
