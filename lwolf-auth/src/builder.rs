//! The builder of a [`Config`]: setters that never fail, and the validation that reads the
//! secret, key and CA files and turns a builder into a [`Config`].

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "fleet")]
use crate::cache_url::CacheUrl;
use crate::config::*;
use crate::credential::{AssertionAlg, AssertionSigner, Credential, Signer};
use crate::dpop::DpopKey;
use crate::error::Error;
use crate::secret::{SecretSource, SecretString};
use crate::url::{origin_url, Origin};

/// Builds a [`Config`]. Setters never fail; [`ConfigBuilder::build`] validates.
///
/// [`ConfigBuilder::set`] takes the contract's string keys and rejects unknown keys and
/// unparsable values at once, as `lwolf_config_set` does.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    client_id: Option<String>,
    secret: Option<SecretSource>,
    subscription_key: Option<SecretSource>,
    audience: String,
    token_url: String,
    api_base_url: String,
    transact_base_url: String,
    lwt_client_id: Option<String>,
    refresh_ratio: f64,
    timeout: Duration,
    deadline: Duration,
    max_retries: u32,
    retry_base: Duration,
    retry_max: Duration,
    token_format: TokenFormat,
    client_auth: ClientAuth,
    private_key_file: Option<PathBuf>,
    private_key_id: Option<String>,
    signer: Option<SignerRef>,
    assertion_alg: AssertionAlg,
    assertion_audience: Option<String>,
    dpop: bool,
    dpop_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    ca_system: bool,
    user_agent: String,
    max_response_bytes: usize,
    cache_dir: Option<PathBuf>,
    /// May hold a password: kept as a secret, so `Debug` does not show it.
    cache_url: Option<SecretString>,
    max_in_flight: u32,
    max_requests_per_second: u32,
    request_id_header: String,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            client_id: None,
            secret: None,
            subscription_key: None,
            audience: DEFAULT_AUDIENCE.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            api_base_url: DEFAULT_API_BASE_URL.into(),
            transact_base_url: DEFAULT_TRANSACT_BASE_URL.into(),
            lwt_client_id: None,
            refresh_ratio: DEFAULT_REFRESH_RATIO,
            timeout: DEFAULT_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            token_format: TokenFormat::default(),
            client_auth: ClientAuth::default(),
            private_key_file: None,
            private_key_id: None,
            signer: None,
            assertion_alg: AssertionAlg::default(),
            assertion_audience: None,
            dpop: false,
            dpop_key_file: None,
            ca_file: None,
            ca_system: false,
            user_agent: DEFAULT_USER_AGENT.into(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            cache_dir: None,
            cache_url: None,
            max_in_flight: 0,
            max_requests_per_second: 0,
            request_id_header: DEFAULT_REQUEST_ID_HEADER.into(),
        }
    }
}

impl ConfigBuilder {
    /// The client id from the vendor. Required: no default.
    pub fn client_id(mut self, v: impl Into<String>) -> Self {
        self.client_id = Some(v.into());
        self
    }
    /// The client secret from the vendor. Required, unless a secret file is set; the last of
    /// the two set wins.
    pub fn client_secret(mut self, v: impl Into<SecretString>) -> Self {
        self.secret = Some(SecretSource::Value(v.into()));
        self
    }
    /// Read the secret from this file at [`build`](Self::build) (one trailing newline
    /// dropped), as mounted secrets are. Unset by default.
    pub fn client_secret_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.secret = Some(SecretSource::File(v.into()));
        self
    }
    /// The subscription key the Transact API requires, sent as `lw-subscription-key` on every
    /// API request (never to the token endpoint). A secret like the client secret: never
    /// shown, zeroed when dropped. Unset by default; empty unsets it.
    pub fn subscription_key(mut self, v: impl Into<SecretString>) -> Self {
        self.subscription_key = Some(SecretSource::Value(v.into()));
        self
    }
    /// Read the subscription key from this file at [`build`](Self::build), as
    /// [`client_secret_file`](Self::client_secret_file) does. Unset by default; the last of
    /// the two set wins.
    pub fn subscription_key_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.subscription_key = Some(SecretSource::File(v.into()));
        self
    }
    /// The token audience. Default: [`DEFAULT_AUDIENCE`], `https://api.lwolf.com`.
    pub fn audience(mut self, v: impl Into<String>) -> Self {
        self.audience = v.into();
        self
    }
    /// The token endpoint: `https://`, or `http://` to a loopback host. Default:
    /// [`DEFAULT_TOKEN_URL`], `https://gateway.lwolf.com/oauth/token`.
    pub fn token_url(mut self, v: impl Into<String>) -> Self {
        self.token_url = v.into();
        self
    }
    /// The base of API requests; its path is kept. Default: [`DEFAULT_API_BASE_URL`],
    /// `https://api.lwolf.com/backoffice`.
    pub fn api_base_url(mut self, v: impl Into<String>) -> Self {
        self.api_base_url = v.into();
        self
    }
    /// The base of Transact API requests, reached through the Transact handle; its path is
    /// kept. Default: [`DEFAULT_TRANSACT_BASE_URL`],
    /// `https://gateway.lwolf.com/transact-workflow`.
    pub fn transact_base_url(mut self, v: impl Into<String>) -> Self {
        self.transact_base_url = v.into();
        self
    }
    /// The customer instance for multi-tenant applications. Unset by default.
    pub fn lwt_client_id(mut self, v: impl Into<String>) -> Self {
        self.lwt_client_id = Some(v.into());
        self
    }
    /// The fraction of the lifetime after which to refresh, 0 < r < 1. Default:
    /// [`DEFAULT_REFRESH_RATIO`], 0.9.
    pub fn refresh_ratio(mut self, v: f64) -> Self {
        self.refresh_ratio = v;
        self
    }
    /// The limit for one HTTP attempt, connect to last byte. Default: [`DEFAULT_TIMEOUT`],
    /// 30 s.
    pub fn timeout(mut self, v: Duration) -> Self {
        self.timeout = v;
        self
    }
    /// The bound on one call (`token()`, a request), all its attempts and the waits between
    /// them included: no retry is begun that could not end in time, and each attempt gets at
    /// most what is left. Default: [`DEFAULT_DEADLINE`], 60 s.
    pub fn deadline(mut self, v: Duration) -> Self {
        self.deadline = v;
        self
    }
    /// Retries after the first attempt. Default: [`DEFAULT_MAX_RETRIES`], 4.
    pub fn max_retries(mut self, v: u32) -> Self {
        self.max_retries = v;
        self
    }
    /// The first backoff; later ones double. Default: [`DEFAULT_RETRY_BASE`], 500 ms.
    pub fn retry_base(mut self, v: Duration) -> Self {
        self.retry_base = v;
        self
    }
    /// The largest single wait between attempts, a server's `Retry-After` included.
    /// Default: [`DEFAULT_RETRY_MAX`], 30 s.
    pub fn retry_max(mut self, v: Duration) -> Self {
        self.retry_max = v;
        self
    }
    /// JSON (the vendor's form) or form-encoded (RFC 6749) token requests. Default:
    /// [`TokenFormat::Json`].
    pub fn token_format(mut self, v: TokenFormat) -> Self {
        self.token_format = v;
        self
    }
    /// Credentials in the body, HTTP Basic, or a signed assertion
    /// ([`ClientAuth::PrivateKeyJwt`], with [`private_key_file`](Self::private_key_file)).
    /// Default: [`ClientAuth::Body`].
    pub fn client_auth(mut self, v: ClientAuth) -> Self {
        self.client_auth = v;
        self
    }
    /// The RSA private key that signs `private_key_jwt` assertions: a PEM file (PKCS#8
    /// `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`, 2048 to 8192 bits), read at
    /// [`build`](Self::build). Unset by default; required with [`ClientAuth::PrivateKeyJwt`].
    pub fn private_key_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.private_key_file = Some(v.into());
        self
    }
    /// The assertion header's `kid`: which registered key signed it. Unset by default (no
    /// `kid`); empty unsets it.
    pub fn private_key_id(mut self, v: impl Into<String>) -> Self {
        let v = v.into();
        self.private_key_id = (!v.is_empty()).then_some(v);
        self
    }
    /// A [`Signer`] that signs the `private_key_jwt` assertions with a key the library never
    /// sees (an HSM, a cloud KMS, a TPM). With one, `client_auth` is `private_key_jwt`, no key
    /// file is read, and [`private_key_id`](Self::private_key_id) is required (the `kid`).
    /// Unset by default.
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(SignerRef(signer));
        self.client_auth = ClientAuth::PrivateKeyJwt;
        self
    }
    /// Removes the [`signer`](Self::signer), if one was set (`client_auth` stays as it is).
    pub fn without_signer(mut self) -> Self {
        self.signer = None;
        self
    }
    /// The assertion's signature algorithm. Default: [`AssertionAlg::Rs256`].
    pub fn assertion_alg(mut self, v: AssertionAlg) -> Self {
        self.assertion_alg = v;
        self
    }
    /// The assertion's `aud`. Default: the token URL's origin and `/`
    /// (`https://gateway.lwolf.com/`, the gateway's issuer, as Auth0 requires).
    pub fn assertion_audience(mut self, v: impl Into<String>) -> Self {
        self.assertion_audience = Some(v.into());
        self
    }
    /// Ask for sender-constrained tokens (DPoP, RFC 9449): every token and API request then
    /// carries a proof signed with the client's ES256 key, and a token the server binds to
    /// that key (`token_type` `DPoP`) is useless to anyone else. A server that does not bind
    /// tokens answers with a bearer token, which is then used as one. Off by default.
    pub fn dpop(mut self, on: bool) -> Self {
        self.dpop = on;
        self
    }
    /// The DPoP key: a PEM PKCS#8 P-256 private key, read at [`build`](Self::build). Unset by
    /// default: a key made at `build`, kept in memory only (its tokens are then not shared
    /// through the `cache_dir`).
    pub fn dpop_key_file(mut self, v: impl Into<PathBuf>) -> Self {
        let v = v.into();
        self.dpop_key_file = (!v.as_os_str().is_empty()).then_some(v);
        self
    }
    /// A PEM file of extra trusted roots, added to the bundled ones. Unset by default: the
    /// bundled web roots alone.
    pub fn ca_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(v.into());
        self
    }
    /// Also trusts the operating system's roots (where a TLS-inspecting corporate proxy's
    /// root is installed): on Windows the certificate store (the user's and the machine's
    /// Root stores), elsewhere the distribution's bundle (`SSL_CERT_FILE`, or the usual
    /// places). Off by default: the bundled web roots and `ca_file` alone. With none found,
    /// [`build`](Self::build) fails.
    pub fn ca_system(mut self, on: bool) -> Self {
        self.ca_system = on;
        self
    }
    /// The User-Agent header. Default: [`DEFAULT_USER_AGENT`], `lwolf-auth/<version>`.
    pub fn user_agent(mut self, v: impl Into<String>) -> Self {
        self.user_agent = v.into();
        self
    }
    /// The largest API response body that is read; a larger one is
    /// [`Error::InvalidResponse`]. Default: [`DEFAULT_MAX_RESPONSE_BYTES`], 16 MiB.
    pub fn max_response_bytes(mut self, v: usize) -> Self {
        self.max_response_bytes = v;
        self
    }

    /// Share tokens with other processes through files in this directory (created `0700`
    /// if missing). Unset by default (and when set to an empty path): tokens live in memory
    /// only. See the README's "Many processes".
    pub fn cache_dir(mut self, v: impl Into<PathBuf>) -> Self {
        let v = v.into();
        self.cache_dir = (!v.as_os_str().is_empty()).then_some(v);
        self
    }

    /// Share tokens with the processes of other hosts through Redis:
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` over TLS (the bundled
    /// roots and `ca_file`). Unset by default (and when set to an empty string). See the
    /// README's "Many hosts".
    pub fn cache_url(mut self, v: impl Into<String>) -> Self {
        let v = v.into();
        self.cache_url = (!v.is_empty()).then(|| SecretString::new(v));
        self
    }

    /// The most API requests in flight at once, per API origin, for the client and every
    /// handle made from it (tenants, other APIs). Over it a call waits its turn, in order,
    /// within its deadline. Default: 0, no limit.
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The most API requests begun per second, per API origin, for the client and every
    /// handle made from it: starts are spaced `1 s / n` apart. Default: 0, no limit.
    pub fn max_requests_per_second(mut self, n: u32) -> Self {
        self.max_requests_per_second = n;
        self
    }

    /// The header that carries a new random id (a UUID v4) on every API call, the same on
    /// its retries; a caller's own value of it is kept. Default: `X-Request-ID`; empty turns
    /// the ids off.
    pub fn request_id_header(mut self, name: impl Into<String>) -> Self {
        self.request_id_header = name.into();
        self
    }

    /// Validates the settings and reads the secret and CA files. No network I/O.
    ///
    /// A missing client id or secret, an unreadable or empty secret file, an unreadable
    /// CA file or a forbidden URL is [`Error::Config`].
    pub fn build(&self) -> Result<Config, Error> {
        let client_id = match &self.client_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => return Err(Error::config("client_id is required")),
        };
        let credential = self.credential()?;
        let dpop = match (self.dpop, &self.dpop_key_file) {
            (false, _) => None,
            (true, Some(path)) => Some(Arc::new(DpopKey::load(path)?)),
            (true, None) => Some(Arc::new(DpopKey::generate()?)),
        };
        let subscription_key = match &self.subscription_key {
            Some(source) => source.load("subscription_key")?,
            None => None,
        };
        if subscription_key
            .as_ref()
            .is_some_and(|k| ureq::http::HeaderValue::from_str(k.expose()).is_err())
        {
            return Err(Error::config(
                "subscription_key holds characters not allowed in a header",
            ));
        }
        if self.audience.is_empty() {
            return Err(Error::config("audience must not be empty"));
        }
        Origin::check_allowed(&self.token_url, "token_url")?;
        let api_origin = Origin::check_allowed(&self.api_base_url, "api_base_url")?;
        let transact_origin = Origin::check_allowed(&self.transact_base_url, "transact_base_url")?;
        check_ratio(self.refresh_ratio).map_err(Error::config)?;
        if self.timeout.is_zero() {
            return Err(Error::config("timeout must be positive"));
        }
        if self.deadline.is_zero() {
            return Err(Error::config("deadline must be positive"));
        }
        if self.retry_base > self.retry_max {
            return Err(Error::config("retry_base_ms must not exceed retry_max_ms"));
        }
        if !self.request_id_header.is_empty()
            && ureq::http::HeaderName::from_bytes(self.request_id_header.as_bytes()).is_err()
        {
            return Err(Error::config("request_id_header is not a header name"));
        }
        // The id is shown (in logs, in the response): never a header that carries a secret
        // or one the library sets itself.
        const NOT_AN_ID: [&str; 9] = [
            "authorization",
            "dpop",
            "lw-subscription-key",
            "cookie",
            "proxy-authorization",
            "content-length",
            "content-type",
            "transfer-encoding",
            "host",
        ];
        if NOT_AN_ID.contains(&self.request_id_header.to_ascii_lowercase().as_str()) {
            return Err(Error::config(format!(
                "request_id_header may not be {}: it carries something else",
                self.request_id_header
            )));
        }
        if ureq::http::HeaderValue::from_str(&self.user_agent).is_err() {
            return Err(Error::config("user_agent is not a valid header value"));
        }
        if matches!(&self.lwt_client_id, Some(id) if id.is_empty()) {
            return Err(Error::config("lwt_client_id must not be empty when set"));
        }
        let extra_roots = crate::roots::extra(self.ca_file.as_deref(), self.ca_system)?;
        #[cfg(feature = "fleet")]
        let cache_url = match &self.cache_url {
            Some(url) => Some(Arc::new(CacheUrl::parse(url.expose())?)),
            None => None,
        };
        #[cfg(not(feature = "fleet"))]
        if self.cache_url.is_some() {
            return Err(Error::config(
                "cache_url needs lwolf-auth's `fleet` feature (the C library and the lwolf \
                 tool have it)",
            ));
        }
        Ok(Config {
            client_id,
            credential,
            subscription_key,
            audience: self.audience.clone(),
            token_url: self.token_url.clone(),
            api_base_url: self.api_base_url.trim_end_matches('/').to_owned(),
            api_origin,
            transact_base_url: self.transact_base_url.trim_end_matches('/').to_owned(),
            transact_origin,
            lwt_client_id: self.lwt_client_id.clone(),
            refresh_ratio: self.refresh_ratio,
            timeout: self.timeout,
            deadline: self.deadline,
            max_retries: self.max_retries,
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            token_format: self.token_format,
            client_auth: self.client_auth,
            dpop,
            ca_file: self.ca_file.clone(),
            ca_system: self.ca_system,
            extra_roots: Arc::new(extra_roots),
            user_agent: self.user_agent.clone(),
            max_response_bytes: self.max_response_bytes,
            cache_dir: self.cache_dir.clone(),
            #[cfg(feature = "fleet")]
            cache_url,
            pace: crate::pace::Limits {
                max_in_flight: self.max_in_flight,
                per_second: self.max_requests_per_second,
            },
            request_id_header: (!self.request_id_header.is_empty())
                .then(|| self.request_id_header.clone()),
        })
    }
}

impl ConfigBuilder {
    /// The secret, or with `private_key_jwt` the key, read from its file.
    fn credential(&self) -> Result<Credential, Error> {
        if self.client_auth != ClientAuth::PrivateKeyJwt {
            return match &self.secret {
                Some(source) => source.load("client_secret")?,
                None => None,
            }
            .map(Credential::Secret)
            .ok_or_else(|| Error::config("client_secret (or client_secret_file) is required"));
        }
        let audience = match &self.assertion_audience {
            Some(a) if !a.is_empty() => a.clone(),
            Some(_) => return Err(Error::config("assertion_audience must not be empty")),
            None => origin_url(&self.token_url)
                .ok_or_else(|| Error::config("token_url is not a valid URL"))?,
        };
        if let Some(SignerRef(signer)) = &self.signer {
            let kid = self.private_key_id.clone().ok_or_else(|| {
                Error::config(
                    "a signer needs private_key_id: the assertion's kid, which names the key",
                )
            })?;
            let signer =
                AssertionSigner::external(Arc::clone(signer), self.assertion_alg, kid, audience);
            return Ok(Credential::PrivateKeyJwt(Arc::new(signer)));
        }
        let path = self
            .private_key_file
            .as_ref()
            .ok_or_else(|| Error::config("client_auth private_key_jwt needs private_key_file"))?;
        let signer = AssertionSigner::load(
            path,
            self.assertion_alg,
            self.private_key_id.clone(),
            audience,
        )?;
        Ok(Credential::PrivateKeyJwt(Arc::new(signer)))
    }
}

pub(crate) fn check_ratio(r: f64) -> Result<(), &'static str> {
    if r > 0.0 && r < 1.0 {
        Ok(())
    } else {
        Err("refresh_ratio must be between 0 and 1, exclusive")
    }
}

/// A signer held by the builder; `Debug` says only that there is one.
#[derive(Clone)]
struct SignerRef(Arc<dyn Signer>);

impl std::fmt::Debug for SignerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}
