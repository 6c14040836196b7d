//! API requests: method, path, headers, query, body and timeout, built once and sent from any
//! thread any number of times (a body read from a reader: once).

#![forbid(unsafe_code)]

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ureq::http::Method;

use crate::client::Client;
use crate::error::Error;
use crate::http::{is_field_value, is_header_name, parse_method};
use crate::response::Response;

/// The content type of a body given without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// Headers the library writes itself: the token, its DPoP proof, and the message framing.
const OWN_HEADERS: [&str; 5] = [
    "authorization",
    "dpop",
    "content-length",
    "transfer-encoding",
    "host",
];

/// An API request, ready to send with [`Client::send`] or [`Client::send_to`]: immutable once
/// built, so one value can be sent from several threads, any number of times.
///
/// Made with a [`RequestBuilder`] (`client.patch(path).header(…)…build()`), which reports the
/// first bad argument when it is built or sent. `Debug` shows header names, never their
/// values.
#[derive(Clone)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// `name=value` pairs, percent-encoded and joined with `&`.
    pub(crate) query: String,
    /// Names in lower case, values as given.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<(Body, String)>,
    pub(crate) timeout: Option<Duration>,
}

/// A request's body: bytes the library holds (and can send again after a renewal, a retry
/// or a redirect), or a reader it sends from as it reads, once.
#[derive(Clone)]
pub(crate) enum Body {
    Bytes(Vec<u8>),
    Stream(Arc<StreamBody>),
}

/// A body sent as it is read: its reader, until a send takes it, and its length if known
/// (sent as `Content-Length`; else the body goes chunked).
pub(crate) struct StreamBody {
    reader: Mutex<Option<Box<dyn Read + Send>>>,
    pub(crate) length: Option<u64>,
}

impl StreamBody {
    /// Whether a send took the reader already.
    pub(crate) fn is_taken(&self) -> bool {
        self.reader.lock().is_none()
    }

    /// The reader, for the one send that may have it: held to `length` when one is given.
    pub(crate) fn take(&self) -> Option<Box<dyn Read + Send>> {
        let reader = self.reader.lock().take()?;
        Some(match self.length {
            Some(length) => Box::new(ExactLength {
                inner: reader,
                left: length,
            }),
            None => reader,
        })
    }
}

/// A reader that gives exactly `left` more bytes or fails: one that ends early (which would
/// leave the HTTP stack waiting for bytes that never come) or runs on past the length is an
/// error, not a short or cut body.
struct ExactLength {
    inner: Box<dyn Read + Send>,
    left: u64,
}

impl Read for ExactLength {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the body reader ended {} bytes before the length given for it",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        // The last bytes go only if the reader ends there: a longer one fails the request
        // before its body is whole, rather than send a body cut where it should not be.
        if self.left == 0 && self.inner.read(&mut [0u8; 1])? != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the body reader gave more bytes than the length given for it",
            ));
        }
        Ok(n)
    }
}

impl Body {
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Body::Stream(_))
    }
}

/// Building a [`Request`] one checked step at a time, for the C library (whose
/// `lwolf_request_*` functions report each bad argument at once): the steps a
/// [`RequestBuilder`] takes. Applications use the builder.
pub trait EditRequest: Sized {
    /// `method` (an HTTP method token, sent as given: `GET`, `PATCH`, …) to `path`.
    fn new(method: &str, path: &str) -> Result<Self, Error>;
    /// As [`RequestBuilder::header`], checked now.
    fn add_header(&mut self, name: &str, value: &str) -> Result<&mut Self, Error>;
    /// As [`RequestBuilder::query`].
    fn add_query(&mut self, name: &str, value: &str) -> &mut Self;
    /// As [`RequestBuilder::body`] (`None`: `application/json`), checked now.
    fn set_body(
        &mut self,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<&mut Self, Error>;
    /// As [`RequestBuilder::timeout`]; `None`: the client's `timeout_ms` again.
    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<&mut Self, Error>;
}

impl EditRequest for Request {
    fn new(method: &str, path: &str) -> Result<Request, Error> {
        Ok(Request {
            method: parse_method(method)?,
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        })
    }

    fn add_header(&mut self, name: &str, value: &str) -> Result<&mut Self, Error> {
        if !is_header_name(name) {
            return Err(Error::invalid_argument("header name is not an HTTP token"));
        }
        let name = name.to_ascii_lowercase();
        if OWN_HEADERS.contains(&name.as_str()) {
            return Err(Error::invalid_argument(format!(
                "the {name} header is the library's to set"
            )));
        }
        // The value is not shown: it may be a credential of the caller's.
        if !is_field_value(value) {
            return Err(Error::invalid_argument(format!(
                "the value of the {name} header holds a control character"
            )));
        }
        self.headers.push((name, value.to_owned()));
        Ok(self)
    }

    fn add_query(&mut self, name: &str, value: &str) -> &mut Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        percent_encode(name, &mut self.query);
        self.query.push('=');
        percent_encode(value, &mut self.query);
        self
    }

    fn set_body(
        &mut self,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<&mut Self, Error> {
        let content_type = content_type.unwrap_or(DEFAULT_CONTENT_TYPE);
        if content_type.is_empty() || !is_field_value(content_type) {
            return Err(Error::invalid_argument(
                "content type is empty or holds a control character",
            ));
        }
        self.body = Some((Body::Bytes(body.into()), content_type.to_owned()));
        Ok(self)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<&mut Self, Error> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid_argument(
                "a request timeout must be positive",
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }
}

impl Request {
    /// The method.
    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The path (or URL) as given, without the added query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The first value of a header added to this request, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path with the added query: the path's own query kept, the pairs after it.
    /// A fragment is dropped: it is never sent.
    pub(crate) fn path_and_query(&self) -> String {
        let path = self.path.split('#').next().unwrap_or_default();
        if self.query.is_empty() {
            return path.to_owned();
        }
        let joiner = if path.contains('?') { '&' } else { '?' };
        format!("{path}{joiner}{}", self.query)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method.as_str())
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &names)
            .field(
                "body_len",
                &self.body.as_ref().map(|(b, _)| match b {
                    Body::Bytes(bytes) => Some(bytes.len() as u64),
                    Body::Stream(stream) => stream.length,
                }),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`Request`] being built for one client, in ureq's style: each method takes and gives
/// back the builder, and the first bad argument is reported when the request is sent.
///
/// ```no_run
/// # let client = lwolf_auth::Client::from_env()?;
/// let change = serde_json::json!({ "name": "Gold" });
/// let response = client
///     .patch("/v1/tiers/t1")
///     .header("If-Match", "\"v7\"")
///     .query("$expand", "commissions")
///     .send_json(&change)?;
/// println!("{}", response.status());
/// # Ok::<(), lwolf_auth::Error>(())
/// ```
#[must_use = "a request is sent by send(), send_json() or send_to()"]
pub struct RequestBuilder<'a> {
    client: &'a Client,
    request: Result<Request, Error>,
}

impl<'a> RequestBuilder<'a> {
    pub(crate) fn new(client: &'a Client, method: &str, path: &str) -> RequestBuilder<'a> {
        RequestBuilder {
            client,
            request: Request::new(method, path),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Request) -> Result<(), Error>) -> Self {
        if let Ok(request) = &mut self.request {
            if let Err(e) = change(request) {
                self.request = Err(e);
            }
        }
        self
    }

    /// Adds a header; a repeated name adds another value. A caller's `Accept` replaces the
    /// default `application/json`, a `Content-Type` the body's. Refused: a name that is not
    /// an HTTP token, a value holding CR, LF, NUL or another control character but tab, and
    /// the names the library owns (`Authorization`, `Content-Length`, `Transfer-Encoding`,
    /// `Host`). No headers by default.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.with(|r| r.add_header(name, value).map(drop))
    }

    /// Appends `name=value` to the query (after the path's own, if any), each
    /// percent-encoded so that the server decodes exactly these strings: every byte but
    /// `A-Z a-z 0-9 - . _ ~` (and `$`, for OData's `$filter`) becomes `%XX`; a space is `%20`.
    pub fn query(self, name: &str, value: &str) -> Self {
        self.with(|r| {
            r.add_query(name, value);
            Ok(())
        })
    }

    /// The body, any bytes, sent with `content_type`. No body by default.
    pub fn body(self, body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.with(|r| r.set_body(body, Some(content_type)).map(drop))
    }

    /// A body read from `reader` as it is sent, never held whole: for uploads too large to
    /// hold, or a body that is itself arriving (the agent's proxy). `length`, if known, is
    /// sent as `Content-Length`, and the reader must give exactly that many bytes and then
    /// end (one that ends early or runs on fails the request, which is never sent short);
    /// else the body goes chunked. No body by default.
    ///
    /// A reader is read once, so such a request is sent once: no retry, and no second
    /// attempt after a renewal or a redirect that keeps the body. A 401 (or a Back Office
    /// 403) still renews the token for the next request, and is handed back; sending the
    /// request again is refused with [`Error::InvalidArgument`].
    pub fn body_reader(
        self,
        reader: impl Read + Send + 'static,
        length: Option<u64>,
        content_type: &str,
    ) -> Self {
        self.with(|r| {
            r.set_body(Vec::new(), Some(content_type))?;
            let stream = StreamBody {
                reader: Mutex::new(Some(Box::new(reader))),
                length,
            };
            r.body = Some((Body::Stream(Arc::new(stream)), content_type.to_owned()));
            Ok(())
        })
    }

    /// Bounds each attempt of this request (connect to last byte). Default: the client's
    /// `timeout_ms`; zero is refused.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|r| r.set_timeout(Some(timeout)).map(drop))
    }

    /// The request, to keep and send again ([`Client::send`]).
    pub fn build(self) -> Result<Request, Error> {
        self.request
    }

    /// Sends it and reads the response whole (up to `max_response_bytes`).
    pub fn send(self) -> Result<Response, Error> {
        self.client.send(&self.request?)
    }

    /// Sends `value` serialized as JSON (`application/json`).
    pub fn send_json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Response, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::invalid_argument(format!("body does not serialize: {e}")))?;
        self.body(body, DEFAULT_CONTENT_TYPE).send()
    }

    /// Sends it and writes the body of the response it hands back to `out` as it arrives,
    /// never holding it whole (no `max_response_bytes`): see [`Client::send_to`].
    pub fn send_to(self, out: &mut dyn std::io::Write) -> Result<Response, Error> {
        self.client.send_to(&self.request?, out)
    }
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) and `$` (OData's `$filter`).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$');

fn percent_encode(s: &str, out: &mut String) {
    out.extend(utf8_percent_encode(s, QUERY));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_so_the_server_decodes_them_exactly() {
        let mut r = Request::new("GET", "/v1/x").unwrap();
        r.add_query("$filter", "statusCode eq 'A'")
            .add_query("q", "a+b&c=d#e%f/g?h")
            .add_query("name", "café")
            .add_query("empty", "");
        assert_eq!(
            r.path_and_query(),
            "/v1/x?$filter=statusCode%20eq%20%27A%27&q=a%2Bb%26c%3Dd%23e%25f%2Fg%3Fh\
             &name=caf%C3%A9&empty="
        );
        let mut own = Request::new("GET", "/v1/x?top=5").unwrap();
        own.add_query("skip", "10");
        assert_eq!(own.path_and_query(), "/v1/x?top=5&skip=10");
    }

    #[test]
    fn header_rules() {
        let mut r = Request::new("GET", "/").unwrap();
        assert!(r.add_header("If-Match", "\"v1\"").is_ok());
        assert!(r.add_header("X-Two", "a\tb").is_ok());
        for (name, value) in [
            ("Authorization", "Bearer x"),
            ("content-length", "3"),
            ("bad name", "x"),
            ("", "x"),
            ("x-bad", "a\r\nX-Evil: 1"),
            ("x-bad", "a\nb"),
            ("x-bad", "a\0b"),
        ] {
            assert!(r.add_header(name, value).is_err(), "{name:?}: {value:?}");
        }
        assert_eq!(r.header("if-match"), Some("\"v1\""));
        assert!(!format!("{r:?}").contains("v1"));
    }
}
