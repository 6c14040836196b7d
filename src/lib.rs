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

mod builder;
mod cache;
mod client;
mod clock;
mod config;
mod credential;
mod disk;
mod dpop;
mod entry;
mod error;
mod fetch;
/// The C ABI (`include/lwolf_auth.h`): every `unsafe` and `extern "C"` of the crate lives here.
pub mod ffi;
mod fleet;
mod fork;
mod http;
mod jitter;
mod keys;
pub mod log;
mod proxy;
mod request;
mod resolve;
mod response;
pub mod retry;
mod secret;
mod shared;
mod token;
mod token_response;
mod url;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use builder::ConfigBuilder;
pub use client::{AuthHeaders, Client};
pub use clock::rfc3339;
pub use config::{
    ClientAuth, Config, TokenFormat, DEFAULT_API_BASE_URL, DEFAULT_AUDIENCE, DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_REFRESH_RATIO, DEFAULT_RETRY_BASE,
    DEFAULT_RETRY_MAX, DEFAULT_TIMEOUT, DEFAULT_TOKEN_URL, DEFAULT_TRANSACT_BASE_URL,
    DEFAULT_USER_AGENT,
};
pub use credential::{AssertionAlg, PublicJwk, ASSERTION_LIFETIME};
pub use error::{Error, HttpFailure, TransportFailure};
pub use keys::CONFIG_KEYS;
pub use request::{Request, RequestBuilder, DEFAULT_CONTENT_TYPE};
pub use response::Response;
pub use secret::SecretString;
pub use token::{AccessToken, TokenSource, TokenType, MAX_TOKEN_RESPONSE_BYTES, MIN_LIFETIME};
pub use token_response::{parse_token_response, TokenResponse};

// The README's Rust examples compile as doc-tests (its shell and C blocks are run by
// tests/readme.rs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
