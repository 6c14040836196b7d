//! Requests sent by other means (libcurl, `requests`, `httpx`, the agent's callers): what they
//! must carry, and what a 401/403 to one of them may do. The token goes only where the
//! request API would send it, and a 401 renews only a token that was this client's.

use std::fmt;

use super::{renews_on, Client};
use crate::cache::Renewal;
use crate::error::Error;
use crate::token::{self, TokenType};
use crate::url::Origin;

impl Client {
    /// What a request sent by other means (libcurl, another HTTP library) must carry to
    /// `url` with `method`: the `Authorization` value (`Bearer <token>`, or `DPoP <token>` for
    /// a DPoP-bound token) and, for a DPoP-bound token, a new `DPoP` proof for `method` and
    /// `url` (with `ath` and the last nonce `url`'s origin gave). Fetches a token if need be.
    /// The values are secrets: send them, never log them.
    ///
    /// `url` must be on an origin the token may go to, as for [`send`](Self::send): this
    /// handle's API, or one of the vendor's two APIs as configured (`api_base_url`,
    /// `transact_base_url`). Any other URL is [`Error::InvalidArgument`], and nothing is
    /// fetched for it.
    pub fn auth_headers(&self, method: &str, url: &str) -> Result<AuthHeaders, Error> {
        crate::http::parse_method(method)?;
        self.token_origin(url)?;
        let token = self.token()?;
        let dpop = match (&self.inner.shared.config.dpop, token.token_type()) {
            (Some(key), TokenType::Dpop) => Some(key.proof(method, url, Some(token.secret()))?),
            _ => None,
        };
        let scheme = token.token_type().as_str();
        let mut authorization = zeroize::Zeroizing::new(String::with_capacity(
            scheme.len() + 1 + token.secret().len(),
        ));
        authorization.push_str(scheme);
        authorization.push(' ');
        authorization.push_str(token.secret());
        Ok(AuthHeaders {
            authorization,
            dpop,
        })
    }

    /// A server answered 401 to a request sent by other means to this handle's API with
    /// `token` (as [`auth_headers`](Self::auth_headers) gave it, scheme and all, or the bare
    /// token): see [`reject_token_at`](Self::reject_token_at).
    pub fn reject_token(&self, token: &str) -> bool {
        self.answered(&self.api.origin, self.api.transact, 401, token)
    }

    /// The server at `url` answered `status` to a request sent by other means with `token`
    /// (as [`auth_headers`](Self::auth_headers) gave it, scheme and all, or the bare token).
    /// True when the request should be sent once more with [`auth_headers`](Self::auth_headers)
    /// again: the token was renewed (the API's rules allowing: a 401, or a 403 of an API
    /// other than the Transact API, at most once per 30 s for this identity and API), or a
    /// newer token is in service already. False when the answer stands: another status, a
    /// renewal was forced less than 30 s ago, or `token` is empty or was never this
    /// client's (a request that did not carry our token must not cost an issued one).
    ///
    /// `url` must be on an origin the token may go to, as for `auth_headers`.
    pub fn reject_token_at(&self, url: &str, status: u16, token: &str) -> Result<bool, Error> {
        let origin = self.token_origin(url)?;
        let transact = self.config().is_transact_url(url);
        Ok(self.answered(&origin, transact, status, token))
    }

    fn answered(&self, origin: &Origin, transact: bool, status: u16, token: &str) -> bool {
        if !renews_on(transact, status) {
            return false;
        }
        let token = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("DPoP "))
            .unwrap_or(token)
            .trim();
        if token.is_empty() {
            return false;
        }
        let Some(current) = self.cached_token() else {
            // Nothing cached: the next token() fetches anyway, if the token was ours.
            return self.inner.cache.held_before(&token::fingerprint(token));
        };
        if current.secret() != token {
            // A token this client held before: the one in service now is newer. Anything
            // else was never ours.
            return self.inner.cache.held_before(&token::fingerprint(token));
        }
        match self.claim_renewal(&current, origin) {
            Renewal::Refused => false,
            Renewal::Newer => true,
            Renewal::Claimed => {
                self.inner.forget_shared(Some(&current));
                self.inner.cache.reject(&current);
                true
            }
        }
    }

    /// The origin of `url` if the token may go there: this handle's API, or one of the
    /// vendor's two APIs as configured.
    fn token_origin(&self, url: &str) -> Result<Origin, Error> {
        let origin =
            Origin::of(url).map_err(|why| Error::invalid_argument(format!("url {why}")))?;
        if origin == self.api.origin || self.config().is_vendor_api(&origin) {
            Ok(origin)
        } else {
            Err(Error::invalid_argument(
                "url is not on an API origin of this client; the token is not sent there",
            ))
        }
    }

    /// Keeps the `DPoP-Nonce` a server at `url` answered with (to a request sent by other
    /// means), for the next proof to that origin. Does nothing with `dpop` off.
    pub fn dpop_nonce(&self, url: &str, nonce: &str) {
        if let Some(key) = &self.inner.shared.config.dpop {
            key.remember_nonce(url, nonce);
        }
    }
}

/// What a request sent by other means must carry: see [`Client::auth_headers`]. `Debug`
/// shows neither value.
pub struct AuthHeaders {
    authorization: zeroize::Zeroizing<String>,
    dpop: Option<String>,
}

impl AuthHeaders {
    /// The `Authorization` header's value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The `DPoP` header's value, for a DPoP-bound token.
    pub fn dpop(&self) -> Option<&str> {
        self.dpop.as_deref()
    }
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("dpop", &self.dpop.is_some())
            .finish_non_exhaustive()
    }
}
