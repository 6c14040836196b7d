//! Configuration: the defaults, the validated [`Config`] and what it holds. The builder that
//! makes one is in `builder.rs`, the string keys in `keys.rs`.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::builder::ConfigBuilder;
#[cfg(feature = "fleet")]
use crate::cache_url::CacheUrl;
use crate::credential::Credential;
use crate::dpop::DpopKey;
use crate::error::Error;
use crate::secret::SecretString;
use crate::url::Origin;

/// The vendor's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://gateway.lwolf.com/oauth/token";
/// The vendor's token audience.
pub const DEFAULT_AUDIENCE: &str = "https://api.lwolf.com";
/// The base of Back Office API requests.
pub const DEFAULT_API_BASE_URL: &str = "https://api.lwolf.com/backoffice";
/// The base of Transact API requests.
pub const DEFAULT_TRANSACT_BASE_URL: &str = "https://gateway.lwolf.com/transact-workflow";
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
/// The header that carries each API call's request id, by default.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "X-Request-ID";
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
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body.
    #[default]
    Body,
    /// HTTP Basic (RFC 6749 §2.3.1); the body then carries neither.
    Basic,
    /// A JWT assertion signed with the client's private key (RFC 7523): no secret is needed
    /// or sent.
    PrivateKeyJwt,
}

/// A validated configuration. Make one with [`Config::builder`] or [`Config::from_env`].
#[derive(Clone)]
pub struct Config {
    pub(crate) client_id: String,
    /// The secret, or the key that signs assertions.
    pub(crate) credential: Credential,
    /// Sent as `lw-subscription-key` on every API request, never to the token endpoint.
    pub(crate) subscription_key: Option<SecretString>,
    pub(crate) audience: String,
    pub(crate) token_url: String,
    pub(crate) api_base_url: String,
    pub(crate) api_origin: Origin,
    pub(crate) transact_base_url: String,
    pub(crate) transact_origin: Origin,
    pub(crate) lwt_client_id: Option<String>,
    pub(crate) refresh_ratio: f64,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) token_format: TokenFormat,
    pub(crate) client_auth: ClientAuth,
    /// With `dpop` on: the key that signs the DPoP proofs.
    pub(crate) dpop: Option<Arc<DpopKey>>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) ca_system: bool,
    pub(crate) extra_roots: Arc<Vec<Vec<u8>>>,
    pub(crate) user_agent: String,
    pub(crate) max_response_bytes: usize,
    pub(crate) cache_dir: Option<PathBuf>,
    #[cfg(feature = "fleet")]
    pub(crate) cache_url: Option<Arc<CacheUrl>>,
    /// The pace of API calls, per API origin.
    pub(crate) pace: crate::pace::Limits,
    /// `None`: no request ids.
    pub(crate) request_id_header: Option<String>,
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
    /// The base of Transact API requests. Default: [`DEFAULT_TRANSACT_BASE_URL`].
    pub fn transact_base_url(&self) -> &str {
        &self.transact_base_url
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
    /// Whether tokens are asked for as DPoP-bound (RFC 9449).
    pub fn dpop(&self) -> bool {
        self.dpop.is_some()
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
    /// The fleet cache's URL, with its password (if any) shown as `***` (always `None`
    /// without the `fleet` feature, where a `cache_url` is refused).
    pub fn cache_url(&self) -> Option<&str> {
        #[cfg(feature = "fleet")]
        return self.cache_url.as_deref().map(|u| u.shown.as_str());
        #[cfg(not(feature = "fleet"))]
        None
    }

    /// The most API requests in flight at once, per API origin (0: no limit).
    pub fn max_in_flight(&self) -> u32 {
        self.pace.max_in_flight
    }
    /// The most API requests begun per second, per API origin (0: no limit).
    pub fn max_requests_per_second(&self) -> u32 {
        self.pace.per_second
    }
    /// The header that carries each API call's request id; `None` when off.
    pub fn request_id_header(&self) -> Option<&str> {
        self.request_id_header.as_deref()
    }

    /// Whether `origin` is one of the vendor's two APIs as configured (`api_base_url`,
    /// `transact_base_url`): the only origins the subscription key is sent to.
    pub(crate) fn is_vendor_api(&self, origin: &Origin) -> bool {
        *origin == self.api_origin || *origin == self.transact_origin
    }

    /// Whether `url` is under `transact_base_url`: the Transact API's rules apply to it
    /// (by URL, not origin: one host may serve both APIs, as the sandbox does). The origins
    /// are compared as origins (a default port, the case of the host), then the path.
    pub(crate) fn is_transact_url(&self, url: &str) -> bool {
        if Origin::of(url).ok().as_ref() != Some(&self.transact_origin) {
            return false;
        }
        let base_path = path_of(self.transact_base_url.trim_end_matches('/'));
        let path = path_of(url);
        match path.strip_prefix(base_path) {
            Some(rest) => rest.is_empty() || rest.starts_with(['/', '?', '#']),
            None => false,
        }
    }
}

/// What follows a URL's authority: its path, query and fragment (`""` for none).
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..])
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("subscription_key", &self.subscription_key)
            .field("audience", &self.audience)
            .field("token_url", &self.token_url)
            .field("api_base_url", &self.api_base_url)
            .field("transact_base_url", &self.transact_base_url)
            .field("lwt_client_id", &self.lwt_client_id)
            .field("refresh_ratio", &self.refresh_ratio)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("token_format", &self.token_format)
            .field("client_auth", &self.client_auth)
            .field("dpop", &self.dpop)
            .field(
                "ca_file",
                &self.ca_file.as_deref().map(crate::secret::shown),
            )
            .field("ca_system", &self.ca_system)
            .field("user_agent", &self.user_agent)
            .field("max_response_bytes", &self.max_response_bytes)
            .field(
                "cache_dir",
                &self.cache_dir.as_deref().map(crate::secret::shown),
            )
            .field("cache_url", &self.cache_url())
            .field("pace", &self.pace)
            .field("request_id_header", &self.request_id_header)
            .finish()
    }
}
