//! Configuration: the builder, string keys (shared by the C ABI and the environment), and
//! the validation that turns a builder into a [`Config`].

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::secret::{SecretSource, SecretString};
use crate::url::Origin;

/// The vendor's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://gateway.lwolf.com/oauth/token";
/// The vendor's token audience.
pub const DEFAULT_AUDIENCE: &str = "https://api.lwolf.com";
/// The base of Back Office API requests.
pub const DEFAULT_API_BASE_URL: &str = "https://api.lwolf.com/backoffice";
/// The largest API response body read by default (16 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The fraction of a token's lifetime after which it is refreshed by default.
pub const DEFAULT_REFRESH_RATIO: f64 = 0.9;
/// The default limit for one HTTP attempt, connect to last byte (30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(30_000);
/// The default bound on one call, all its attempts and waits included (60 s): a hung or
/// failing gateway cannot hold a caller for minutes.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(60_000);
/// Retries after the first attempt, by default.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// The default first backoff (500 ms).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
/// The default largest single wait between attempts (30 s).
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_millis(30_000);
/// The default User-Agent: `lwolf-auth/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("lwolf-auth/", env!("CARGO_PKG_VERSION"));

/// How the token request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// `application/json`, as the vendor's guide shows.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, as RFC 6749 servers expect.
    Form,
}

/// Where the client credentials go in the token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body.
    #[default]
    Body,
    /// HTTP Basic (RFC 6749 §2.3.1); the body then carries neither.
    Basic,
}

/// A validated configuration. Make one with [`Config::builder`] or [`Config::from_env`].
#[derive(Clone)]
pub struct Config {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    /// Sent as `lw-subscription-key` on every API request, never to the token endpoint.
    pub(crate) subscription_key: Option<SecretString>,
    pub(crate) audience: String,
    pub(crate) token_url: String,
    pub(crate) api_base_url: String,
    pub(crate) api_origin: Origin,
    pub(crate) lwt_client_id: Option<String>,
    pub(crate) refresh_ratio: f64,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) token_format: TokenFormat,
    pub(crate) client_auth: ClientAuth,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) extra_roots: Arc<Vec<Vec<u8>>>,
    pub(crate) user_agent: String,
    pub(crate) max_response_bytes: usize,
    pub(crate) cache_dir: Option<PathBuf>,
}

impl Config {
    /// A builder with every key at its default.
    ///
    /// ```
    /// let config = lwolf_auth::Config::builder()
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.audience(), "https://api.lwolf.com");
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Reads `LWOLF_CLIENT_ID`, `LWOLF_CLIENT_SECRET` and every other key from the
    /// environment, and validates the result.
    pub fn from_env() -> Result<Config, Error> {
        ConfigBuilder::from_env()?.build()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The token audience. Default: [`DEFAULT_AUDIENCE`], `https://api.lwolf.com`.
    pub fn audience(&self) -> &str {
        &self.audience
    }
    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }
    /// The base of API requests.
    pub fn api_base_url(&self) -> &str {
        &self.api_base_url
    }
    /// The customer instance, if one is configured.
    pub fn lwt_client_id(&self) -> Option<&str> {
        self.lwt_client_id.as_deref()
    }
    /// The fraction of a token's lifetime after which it is refreshed.
    pub fn refresh_ratio(&self) -> f64 {
        self.refresh_ratio
    }
    /// The limit for one HTTP attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Whether a subscription key is set (never the key itself).
    pub fn has_subscription_key(&self) -> bool {
        self.subscription_key.is_some()
    }
    /// The bound on one call, all its attempts and waits included.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// Retries after the first attempt. Default: [`DEFAULT_MAX_RETRIES`], 4.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }
    /// The first backoff; later ones double. Default: [`DEFAULT_RETRY_BASE`], 500 ms.
    pub fn retry_base(&self) -> Duration {
        self.retry_base
    }
    /// The largest single wait between attempts, a server's `Retry-After` included.
    /// Default: [`DEFAULT_RETRY_MAX`], 30 s.
    pub fn retry_max(&self) -> Duration {
        self.retry_max
    }
    /// The backoff of retries and of failed refreshes.
    pub(crate) fn backoff(&self) -> crate::retry::Backoff {
        crate::retry::Backoff {
            base: self.retry_base,
            max: self.retry_max,
        }
    }
    /// The token request encoding.
    pub fn token_format(&self) -> TokenFormat {
        self.token_format
    }
    /// Where the credentials go.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }
    /// The User-Agent header. Default: [`DEFAULT_USER_AGENT`], `lwolf-auth/<version>`.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
    /// The largest API response body that is read.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }
    /// The directory of the token cache shared between processes, if one is set.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("subscription_key", &self.subscription_key)
            .field("audience", &self.audience)
            .field("token_url", &self.token_url)
            .field("api_base_url", &self.api_base_url)
            .field("lwt_client_id", &self.lwt_client_id)
            .field("refresh_ratio", &self.refresh_ratio)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("token_format", &self.token_format)
            .field("client_auth", &self.client_auth)
            .field("ca_file", &self.ca_file)
            .field("user_agent", &self.user_agent)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

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
    lwt_client_id: Option<String>,
    refresh_ratio: f64,
    timeout: Duration,
    deadline: Duration,
    max_retries: u32,
    retry_base: Duration,
    retry_max: Duration,
    token_format: TokenFormat,
    client_auth: ClientAuth,
    ca_file: Option<PathBuf>,
    user_agent: String,
    max_response_bytes: usize,
    cache_dir: Option<PathBuf>,
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
            lwt_client_id: None,
            refresh_ratio: DEFAULT_REFRESH_RATIO,
            timeout: DEFAULT_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            token_format: TokenFormat::default(),
            client_auth: ClientAuth::default(),
            ca_file: None,
            user_agent: DEFAULT_USER_AGENT.into(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            cache_dir: None,
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
    /// Credentials in the body, or HTTP Basic. Default: [`ClientAuth::Body`].
    pub fn client_auth(mut self, v: ClientAuth) -> Self {
        self.client_auth = v;
        self
    }
    /// A PEM file of extra trusted roots, added to the bundled ones. Unset by default: the
    /// bundled web roots alone.
    pub fn ca_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(v.into());
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

    /// Validates the settings and reads the secret and CA files. No network I/O.
    ///
    /// A missing client id or secret, an unreadable or empty secret file, an unreadable
    /// CA file or a forbidden URL is [`Error::Config`].
    pub fn build(&self) -> Result<Config, Error> {
        let client_id = match &self.client_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => return Err(Error::config("client_id is required")),
        };
        let client_secret = match &self.secret {
            Some(source) => source.load("client_secret")?,
            None => None,
        }
        .ok_or_else(|| Error::config("client_secret (or client_secret_file) is required"))?;
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
        if ureq::http::HeaderValue::from_str(&self.user_agent).is_err() {
            return Err(Error::config("user_agent is not a valid header value"));
        }
        if matches!(&self.lwt_client_id, Some(id) if id.is_empty()) {
            return Err(Error::config("lwt_client_id must not be empty when set"));
        }
        let extra_roots = match &self.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        Ok(Config {
            client_id,
            client_secret,
            subscription_key,
            audience: self.audience.clone(),
            token_url: self.token_url.clone(),
            api_base_url: self.api_base_url.trim_end_matches('/').to_owned(),
            api_origin,
            lwt_client_id: self.lwt_client_id.clone(),
            refresh_ratio: self.refresh_ratio,
            timeout: self.timeout,
            deadline: self.deadline,
            max_retries: self.max_retries,
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            token_format: self.token_format,
            client_auth: self.client_auth,
            ca_file: self.ca_file.clone(),
            extra_roots: Arc::new(extra_roots),
            user_agent: self.user_agent.clone(),
            max_response_bytes: self.max_response_bytes,
            cache_dir: self.cache_dir.clone(),
        })
    }
}

pub(crate) fn check_ratio(r: f64) -> Result<(), &'static str> {
    if r > 0.0 && r < 1.0 {
        Ok(())
    } else {
        Err("refresh_ratio must be between 0 and 1, exclusive")
    }
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>, Error> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read ca_file {}: {}",
            path.display(),
            e.kind()
        ))
    })?;
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(_) => {
                return Err(Error::config(format!(
                    "ca_file {} is not valid PEM",
                    path.display()
                )))
            }
        }
    }
    if roots.is_empty() {
        return Err(Error::config(format!(
            "ca_file {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}
