//! A blocking, runtime-free OAuth 2.0 client-credentials token client for the
//! Lone Wolf Technologies Back Office API, with a C ABI.
//!
//! ```no_run
//! use lwolf_auth::{Client, Config};
//!
//! let config = Config::builder()
//!     .client_id("my-client")
//!     .client_secret("my-secret")
//!     .build()?;
//! let client = Client::new(config);
//!
//! // The token is fetched once, cached, and refreshed at about 90% of its lifetime.
//! let token = client.token()?;
//! println!("token {} expires at {:?}", token.fingerprint(), token.expires_at());
//!
//! // API requests carry `Authorization: Bearer <token>`.
//! let transactions = client.get("/v1/transactions").send()?;
//! println!("{}", transactions.status());
//! # Ok::<(), lwolf_auth::Error>(())
//! ```
//!
//! The rules this crate follows (retries, refresh, expiry, where a token may be sent) are
//! those of the project's behaviour contract; the README lists them.

#![deny(unsafe_code)]
#![deny(missing_docs)]

// The Rust examples of the README and docs/, compiled as doctests (and run, but for those
// marked `no_run`, which would reach the vendor's servers).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
#[cfg(doctest)]
#[doc = include_str!("../../docs/rust.md")]
struct RustExamples;
#[cfg(doctest)]
#[doc = include_str!("../../docs/many-processes-and-hosts.md")]
struct ManyProcessesExamples;
#[cfg(doctest)]
#[doc = include_str!("../../docs/api-rules.md")]
struct ApiRulesExamples;

mod builder;
mod cache;
#[cfg(feature = "fleet")]
mod cache_url;
mod client;
mod clock;
mod config;
mod credential;
mod disk;
mod dpop;
mod entry;
mod error;
mod fetch;
#[cfg(feature = "fleet")]
mod fleet;
mod fork;
mod http;
mod jitter;
mod keys;
mod log;
mod pace;
mod pools;
mod proxy;
mod request;
mod resolve;
mod response;
mod retry;
mod roots;
mod secret;
mod shared;
mod stats;
mod token;
mod token_response;
mod url;
#[cfg(windows)]
mod win32;

pub use builder::ConfigBuilder;
pub use client::{AuthHeaders, Client, ResponseSink};
pub use config::{ClientAuth, Config, TokenFormat};
pub use credential::{AssertionAlg, PublicJwk, Signer};
pub use error::{Error, HttpFailure, TransportFailure, TransportKind};
pub use keys::CONFIG_KEYS;
pub use request::{Request, RequestBuilder};
pub use response::Response;
pub use secret::SecretString;
pub use stats::Stats;
pub use token::{AccessToken, TokenSource, TokenType};

/// The defaults of the settings, and the library's fixed limits (each setter's docs name its
/// default too).
pub mod defaults {
    pub use crate::config::{
        DEFAULT_API_BASE_URL, DEFAULT_AUDIENCE, DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES,
        DEFAULT_MAX_RETRIES, DEFAULT_REFRESH_RATIO, DEFAULT_REQUEST_ID_HEADER, DEFAULT_RETRY_BASE,
        DEFAULT_RETRY_MAX, DEFAULT_TIMEOUT, DEFAULT_TOKEN_URL, DEFAULT_TRANSACT_BASE_URL,
        DEFAULT_USER_AGENT,
    };
    pub use crate::credential::ASSERTION_LIFETIME;
    pub use crate::request::DEFAULT_CONTENT_TYPE;
    pub use crate::token::{MAX_TOKEN_RESPONSE_BYTES, MIN_LIFETIME};
}

/// What this workspace's own crates need of the library beyond its API: the C library
/// (`lwolf-auth-ffi`), the `lwolf` tool and the fuzz targets. No stability promise: not
/// for applications, which have the `log` facade for records and [`RequestBuilder`] for
/// requests.
pub mod unversioned {
    /// The one handler of this crate's own records (the C log callback, the tool's `-v`).
    pub mod log {
        pub use crate::log::{clear_handler, set_handler, Level, LevelFilter};
    }
    pub use crate::credential::der_element;
    pub use crate::request::EditRequest;
    pub use crate::retry::{parse_rate_limit_reset, parse_retry_after, Backoff};
    pub use crate::token_response::{parse_token_response, TokenResponse};
    #[cfg(windows)]
    pub use crate::win32::make_file_private;
    #[cfg(windows)]
    pub use crate::win32::named_pipe::{PipeListener, PipeStream};
}

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
