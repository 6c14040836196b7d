//! One API call: the attempts (retried where the method allows), the renewals a 401/403 may
//! force (bounded), the redirects within the origin, and streaming the answer.

use std::fmt;
use std::time::Instant;

use ureq::http::Method;
use zeroize::Zeroizing;

use super::sink::{Headed, ResponseSink};
use super::{renews_on, Client};
use crate::cache::{Renewal, RENEWAL_INTERVAL};
use crate::dpop;
use crate::error::Error;
use crate::http::{attempt_timeout, is_idempotent, Exchange, Failure, Payload, RawResponse, Read};
use crate::log;
use crate::request::{Body, Request};
use crate::response::Response;
use crate::retry::{self, is_retryable_status};
use crate::shared::SharedLayer;
use crate::stats::Counters;
use crate::token::{AccessToken, TokenType};
use crate::url::{api_url, resolve_location, Origin};

/// Redirects followed within the API's origin before the 3xx is handed back.
const MAX_REDIRECTS: u32 = 5;
/// A Transact 403 is logged at most this often per client.
const TRANSACT_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Client {
    pub(super) fn exchange<'w>(
        &self,
        request: &Request,
        mut out: Option<&mut (dyn ResponseSink + 'w)>,
    ) -> Result<Response, Error> {
        let config = &self.inner.shared.config;
        let mut url = api_url(&self.api.url, &self.api.origin, &request.path_and_query())?;
        if (self.api.transact || config.is_transact_url(&url)) && config.subscription_key.is_none()
        {
            return Err(Error::config(
                "the Transact API needs subscription_key (sent as lw-subscription-key on every \
                 call), and none is set",
            ));
        }
        // A body read from a reader goes once: no retry, renewal or redirect sends it again.
        let streamed_body = match &request.body {
            Some((Body::Stream(stream), _)) if stream.is_taken() => {
                return Err(Error::invalid_argument(
                    "this request's body was read from a reader and sent already; build the \
                     request again to send it again",
                ))
            }
            Some((body, _)) => body.is_stream(),
            None => false,
        };
        let deadline = Instant::now() + config.deadline;
        // One id for the call, its retries, renewals and redirects: a caller's own, or new.
        let request_id = config.request_id_header.as_deref().map(|name| {
            request
                .header(name)
                .map_or_else(new_request_id, str::to_owned)
        });
        let mut throttled = false;
        let mut method = request.method.clone();
        let mut body = request.body.as_ref();
        let mut token = self.token()?;
        let mut renewed = false;
        let mut redirects = 0;
        loop {
            let attempt = Attempt {
                method: &method,
                url: &url,
                request,
                body,
                deadline,
                request_id: request_id.as_deref(),
            };
            let resp =
                self.send_with_retries(&attempt, &mut token, out.as_deref_mut(), &mut throttled)?;
            // The rule of the API actually called: a handle may reach the other API by an
            // absolute URL, a path, or a redirect on the same origin.
            let transact = self.api.transact || config.is_transact_url(&url);
            let renews = renews_on(transact, resp.status);
            if resp.status == 403 && transact {
                self.transact_refused(request_id.as_deref());
            }
            if renews && !renewed && !resp.streamed {
                renewed = true;
                // A 401/403 is not proof that the token is bad (a missing subscription key
                // or permission gets one too): renewing on each would cost an issued token
                // per call, so renewals are bounded, and past the bound the answer stands.
                match self.claim_renewal(&token, &self.api.origin) {
                    Renewal::Refused => {
                        Counters::bump(&self.inner.shared.counters.renewals_declined);
                        log::debug!(
                            "api answered {} to {} with token {}; renewed less than \
                             {} s ago, so handing the answer back",
                            resp.status,
                            RequestName(&method, request_id.as_deref()),
                            token.fingerprint(),
                            RENEWAL_INTERVAL.as_secs()
                        );
                        return hand_back(resp, url, request_id, out);
                    }
                    Renewal::Claimed => {
                        Counters::bump(&self.inner.shared.counters.forced_renewals);
                        log::info!(
                            "api answered {} to {} with token {}; renewing it",
                            resp.status,
                            RequestName(&method, request_id.as_deref()),
                            token.fingerprint()
                        );
                        self.inner.forget_shared(Some(&token));
                        self.inner.cache.reject(&token);
                    }
                    // Another caller (or process) renewed it already: send the newer token.
                    Renewal::Newer => {}
                }
                // The body is gone: the next request gets the new token, this one the 401.
                if streamed_body && body.is_some() {
                    return hand_back(resp, url, request_id, out);
                }
                token = self.token()?;
                continue;
            }
            if let Some(next) = self.same_origin_redirect(&resp, &url, redirects) {
                redirects += 1;
                // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do).
                let drops_body = resp.status == 303
                    || (matches!(resp.status, 301 | 302) && method == Method::POST);
                if streamed_body && body.is_some() && !drops_body {
                    return hand_back(resp, url, request_id, out);
                }
                if drops_body {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            return hand_back(resp, url, request_id, out);
        }
    }

    /// A Transact 403: the subscription key is missing or refused, and a new token cannot
    /// help. Counted as a declined renewal; a warning at most once a minute per client,
    /// which never shows the key.
    fn transact_refused(&self, request_id: Option<&str>) {
        let shared = &self.inner.shared;
        Counters::bump(&shared.counters.renewals_declined);
        let now = crate::clock::Mono::now();
        let level = shared.transact_warned.get();
        let mut last = level.lock.lock();
        if last.is_some_and(|t| now.saturating_since(t) < TRANSACT_WARNING_INTERVAL) {
            return;
        }
        *last = Some(now);
        drop(last);
        log::warn!(
            "the Transact API answered 403{}: the subscription key (lw-subscription-key) is \
             missing or refused; the token is not renewed for it",
            request_id
                .map(|id| format!(" to request {id}"))
                .unwrap_or_default()
        );
    }

    /// What a 401/403 of the API at `origin` to `used` may do: the in-memory bound of this
    /// identity and API, then (with a `cache_dir`) the one every process of the host
    /// shares, then (with a `cache_url`) the fleet's. A newer token found in a shared layer
    /// replaces `used` in memory (and in the file, when the fleet has it), so the next
    /// `token()` reads it instead of fetching.
    pub(super) fn claim_renewal(&self, used: &AccessToken, origin: &Origin) -> Renewal {
        let origin = origin.to_string();
        let mut claim = self.inner.cache.claim_renewal(used, &origin);
        if let (Renewal::Claimed, Some(disk)) = (&claim, &self.inner.disk) {
            claim = disk.claim_renewal(used, &origin, RENEWAL_INTERVAL);
        }
        #[cfg(feature = "fleet")]
        if let (Renewal::Claimed, Some(fleet)) = (&claim, &self.inner.fleet) {
            claim = fleet.claim_renewal(used, &origin, RENEWAL_INTERVAL);
            if let (Renewal::Newer, Some(disk)) = (&claim, &self.inner.disk) {
                disk.forget(Some(used));
            }
        }
        if matches!(claim, Renewal::Newer) {
            self.inner.cache.invalidate_if_current(used);
        }
        claim
    }

    /// One API exchange, retried on 408/429/5xx and lost connections for idempotent methods.
    /// A retry whose wait outlived `token` sends the token in service instead (fetching one
    /// if need be), so an expired token is never sent; `token` is then the one last sent.
    fn send_with_retries<'w>(
        &self,
        attempt: &Attempt<'_>,
        token: &mut AccessToken,
        mut out: Option<&mut (dyn ResponseSink + 'w)>,
        throttled: &mut bool,
    ) -> Result<RawResponse, Error> {
        let shared = &self.inner.shared;
        let config = &shared.config;
        let governor = shared
            .governors
            .as_ref()
            .map(|g| g.of(&self.api.origin.to_string()));
        let once = attempt.body.is_some_and(|(body, _)| body.is_stream());
        let max_retries = if is_idempotent(attempt.method) && !once {
            config.max_retries
        } else {
            0
        };
        let too_large = || {
            format!(
                "response body larger than max_response_bytes ({})",
                config.max_response_bytes
            )
        };
        let what = RequestName(attempt.method, attempt.request_id);
        retry::run(
            &what,
            config.backoff(),
            max_retries,
            attempt.deadline,
            |attempts| {
                if attempts > 1 {
                    Counters::bump(&shared.counters.retries);
                }
                // A token first (a retry whose wait outlived it fetches one), and only then a
                // turn: a fetch must not hold a place in line that other calls wait for.
                if attempts > 1 && !token.is_usable_now() {
                    match self.token() {
                        Ok(fresh) => *token = fresh,
                        Err(e) => return retry::Attempt::Done(Err(e)),
                    }
                }
                // Then its turn (the pace of the API), within the call's deadline.
                let _permit = match &governor {
                    Some(governor) => match governor.acquire(attempt.deadline) {
                        Ok((permit, waited)) => {
                            if waited && !*throttled {
                                *throttled = true;
                                Counters::bump(&shared.counters.throttled);
                            }
                            Some(permit)
                        }
                        Err(e) => {
                            // It waited too, and gave up.
                            if !*throttled {
                                *throttled = true;
                                Counters::bump(&shared.counters.throttled);
                            }
                            return retry::Attempt::Done(Err(e));
                        }
                    },
                    None => None,
                };
                // A long wait in line may have outlived the token (rare): a fresh one, the
                // turn kept, so that an expired token is never sent.
                if _permit.is_some() && !token.is_usable_now() {
                    match self.token() {
                        Ok(fresh) => *token = fresh,
                        Err(e) => return retry::Attempt::Done(Err(e)),
                    }
                }
                match self.send_with_proof(attempt, token, out.as_deref_mut()) {
                    Err(Sent::Proof(e)) => retry::Attempt::Done(Err(e)),
                    Err(Sent::Failed(failure)) => failure.into_attempt(attempts, too_large),
                    Ok(resp) if !resp.streamed && is_retryable_status(resp.status) => {
                        retry::Attempt::Again {
                            reason: format!("http status {}", resp.status),
                            asked: resp.server_wait(),
                            last: Ok(resp),
                        }
                    }
                    Ok(resp) => retry::Attempt::Done(Ok(resp)),
                }
            },
        )
    }

    /// One attempt; with a DPoP-bound token, a proof for it, and a 401 that asks for a
    /// DPoP nonce (and gives one) sent once more at once with it, without a new token and
    /// not counted as a retry.
    fn send_with_proof<'w>(
        &self,
        attempt: &Attempt<'_>,
        token: &AccessToken,
        mut out: Option<&mut (dyn ResponseSink + 'w)>,
    ) -> Result<RawResponse, Sent> {
        let key = match (&self.inner.shared.config.dpop, token.token_type()) {
            (Some(key), TokenType::Dpop) => Some(key),
            _ => None,
        };
        let mut sends = 0;
        loop {
            sends += 1;
            let proof = match key {
                Some(key) => Some(
                    key.proof(attempt.method.as_str(), attempt.url, Some(token.secret()))
                        .map_err(Sent::Proof)?,
                ),
                None => None,
            };
            let resp = self
                .send_once(attempt, token, proof.as_deref(), out.as_deref_mut())
                .map_err(Sent::Failed)?;
            if let (Some(key), Some(nonce)) = (key, resp.header("dpop-nonce")) {
                key.remember_nonce(attempt.url, nonce);
                let asked = resp.status == 401
                    && !resp.streamed
                    && dpop::asks_for_nonce(&resp.body, resp.header("www-authenticate"));
                let once = attempt.body.is_some_and(|(body, _)| body.is_stream());
                if asked && sends == 1 && !once {
                    log::debug!("the api asked for a DPoP nonce; sending once more");
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// One exchange: `Authorization: Bearer` (or `DPoP`, with `proof`), `Accept`,
    /// `lw-subscription-key` when one is set, the request's own headers, and its body with
    /// its content type.
    fn send_once<'w>(
        &self,
        attempt: &Attempt<'_>,
        token: &AccessToken,
        proof: Option<&str>,
        out: Option<&mut (dyn ResponseSink + 'w)>,
    ) -> Result<RawResponse, Failure> {
        let scheme = token.token_type().as_str();
        let mut authorization = Zeroizing::new(String::with_capacity(
            scheme.len() + 1 + token.secret().len(),
        ));
        authorization.push_str(scheme);
        authorization.push(' ');
        authorization.push_str(token.secret());
        let config = &self.inner.shared.config;
        let request = attempt.request;
        let mut headers = vec![("authorization", authorization.as_str())];
        if let Some(proof) = proof {
            headers.push(("dpop", proof));
        }
        if request.header("accept").is_none() {
            headers.push(("accept", "application/json"));
        }
        // The vendor's two APIs only, as configured: never another `for_api` origin.
        if let Some(key) = config
            .subscription_key
            .as_ref()
            .filter(|_| config.is_vendor_api(&self.api.origin))
        {
            headers.push(("lw-subscription-key", key.expose()));
        }
        let id_header = config.request_id_header.as_deref();
        if let (Some(name), Some(id)) = (id_header, attempt.request_id) {
            if request.header(name).is_none() {
                headers.push((name, id));
            }
        }
        if let Some((_, content_type)) = attempt.body {
            if request.header("content-type").is_none() {
                headers.push(("content-type", content_type.as_str()));
            }
        }
        let length;
        if let Some((Body::Stream(stream), _)) = attempt.body {
            if let Some(n) = stream.length {
                length = n.to_string();
                headers.push(("content-length", length.as_str()));
            }
        }
        headers.extend(
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let exchange = Exchange {
            method: attempt.method,
            url: attempt.url,
            headers: &headers,
            body: attempt.body.map(|(body, _)| match body {
                Body::Bytes(bytes) => Payload::Bytes(bytes),
                Body::Stream(stream) => Payload::Stream(stream),
            }),
            timeout: attempt_timeout(
                request.timeout.unwrap_or(config.timeout),
                request.timeout.is_some(),
                attempt.deadline,
            ),
        };
        let mut headed;
        let read = match out {
            None => Read::Whole(config.max_response_bytes),
            // What the client acts on itself is read, not streamed: renewals, retries,
            // redirects. If it is handed back after all, `hand_back` writes it out.
            Some(sink) => {
                headed = Headed {
                    sink,
                    url: attempt.url,
                    request_id: attempt.request_id,
                };
                Read::Stream {
                    keep: &|status| {
                        matches!(status, 401 | 403 | 300..=399) || is_retryable_status(status)
                    },
                    limit: config.max_response_bytes,
                    out: &mut headed,
                }
            }
        };
        Counters::bump(&self.inner.shared.counters.api_requests);
        self.inner.shared.http.send(&exchange, read)
    }

    /// Where a 3xx points, if it may be followed: within the API's origin and the limit.
    fn same_origin_redirect(&self, resp: &RawResponse, url: &str, followed: u32) -> Option<String> {
        if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) || followed >= MAX_REDIRECTS {
            return None;
        }
        let next = resolve_location(url, resp.header("location")?)?;
        match Origin::of(&next) {
            Ok(origin) if origin == self.api.origin => Some(next),
            _ => {
                log::info!("not following a redirect to another origin");
                None
            }
        }
    }
}

/// Why an attempt got no response: its proof could not be made, or the exchange failed.
enum Sent {
    Proof(Error),
    Failed(Failure),
}

/// One exchange of a request: where it goes now (a redirect may have changed the method and
/// dropped the body).
struct Attempt<'a> {
    method: &'a Method,
    url: &'a str,
    request: &'a Request,
    body: Option<&'a (Body, String)>,
    /// The end of the whole call: no retry past it, no attempt longer than what is left.
    deadline: Instant,
    /// The call's request id, if ids are on.
    request_id: Option<&'a str>,
}

/// A new request id: a random UUID (version 4).
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    bytes.fill_with(|| fastrand::u8(..));
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The response to give the caller; with a writer, a body that was read rather than
/// streamed (a 401/403 or 5xx handed back) is written out now, so `out` always has it.
fn hand_back(
    mut resp: RawResponse,
    url: String,
    request_id: Option<String>,
    out: Option<&mut (dyn ResponseSink + '_)>,
) -> Result<Response, Error> {
    let mut body = None;
    if out.is_some() && !resp.streamed {
        body = Some(std::mem::take(&mut resp.body));
        resp.streamed = true;
    }
    let response = Response {
        raw: resp,
        url,
        request_id,
    };
    if let (Some(out), Some(body)) = (out, body) {
        out.head(&response)
            .and_then(|()| out.write_all(&body))
            .and_then(|()| out.flush())
            .map_err(|e| Error::aborted(e.kind()))?;
    }
    Ok(response)
}

/// `GET request 6f1c…`, as the retry log names an API request (with its id, if ids are on).
struct RequestName<'a>(&'a Method, Option<&'a str>);

impl fmt::Display for RequestName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} request", self.0)?;
        if let Some(id) = self.1 {
            write!(f, " {id}")?;
        }
        Ok(())
    }
}
