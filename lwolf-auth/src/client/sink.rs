//! Where a streamed response goes: [`ResponseSink`] (the head, then the body, for
//! [`Client::send_streaming`](crate::Client::send_streaming)), the body-only adapter of
//! [`Client::send_to`](crate::Client::send_to), and the per-attempt wrapper the transport
//! writes to.

use std::io::Write;

use crate::http::{RawResponse, StreamOut};
use crate::Response;

/// Where [`Client::send_streaming`](crate::Client::send_streaming) writes the response it
/// hands back: its head (status, headers, URL, request id), then its body as it arrives.
///
/// Responses the client consumes itself (a 401/403 it renews on, a 5xx it retries, a
/// redirect it follows) never reach it; `head` is called once, before the first byte of the
/// body, and from then on the exchange is final: a failure while the body is read is
/// handed back ([`Error::Transport`](crate::Error::Transport)), never retried, so the sink
/// never sees a second head.
/// An error from either stops the transfer: [`Error::Aborted`](crate::Error::Aborted).
pub trait ResponseSink: Write {
    /// The response whose body follows (its [`body`](Response::body) is empty).
    fn head(&mut self, response: &Response) -> std::io::Result<()>;

    /// Whether the head reaches no one (the body-only writer of `send_to`), so that an
    /// attempt may still be retried until the first byte of the body is written.
    #[doc(hidden)]
    fn is_body_only(&self) -> bool {
        false
    }
}

/// A writer that wants the body only ([`Client::send_to`](crate::Client::send_to)).
pub(super) struct BodyOnly<'a>(pub(super) &'a mut dyn Write);

impl Write for BodyOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ResponseSink for BodyOnly<'_> {
    fn head(&mut self, _: &Response) -> std::io::Result<()> {
        Ok(())
    }

    fn is_body_only(&self) -> bool {
        true
    }
}

/// A [`ResponseSink`] for one attempt: the attempt's URL and request id make its head a
/// [`Response`].
pub(super) struct Headed<'s, 'w> {
    pub(super) sink: &'s mut (dyn ResponseSink + 'w),
    pub(super) url: &'s str,
    pub(super) request_id: Option<&'s str>,
}

impl Write for Headed<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.sink.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

impl StreamOut for Headed<'_, '_> {
    fn head(&mut self, status: u16, headers: &[(String, String)]) -> std::io::Result<bool> {
        let passed_on = !self.sink.is_body_only();
        self.sink.head(&Response {
            raw: RawResponse {
                status,
                headers: headers.to_vec(),
                body: Vec::new(),
                streamed: true,
            },
            url: self.url.to_owned(),
            request_id: self.request_id.map(str::to_owned),
        })?;
        Ok(passed_on)
    }
}
