//! An API response: any HTTP status, read whole.

#![forbid(unsafe_code)]

use std::fmt;

use crate::error::Error;
use crate::http::RawResponse;

/// The answer to an API request. Every HTTP status is a response, not an error.
#[derive(Clone)]
pub struct Response {
    pub(crate) raw: RawResponse,
    pub(crate) url: String,
    pub(crate) request_id: Option<String>,
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.raw.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.raw.status)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.header(name)
    }

    /// Every header, in the order received, names in lower case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.raw.body
    }

    /// The body, taken out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.raw.body
    }

    /// The body as text; invalid UTF-8 is replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.raw.body)
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.raw.body).map_err(|e| {
            Error::Json(format!("response body is not the expected json: {e}").into_boxed_str())
        })
    }

    /// The request id the call carried (`request_id_header`, `X-Request-ID` by default: a new
    /// random id, or the caller's own value of that header); `None` when ids are off.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The URL that answered (after redirects within the origin).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.raw.status)
            .field("url", &self.url)
            .field("request_id", &self.request_id)
            .field("body_len", &self.raw.body.len())
            .finish_non_exhaustive()
    }
}
