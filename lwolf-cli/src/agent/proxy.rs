//! `--proxy 127.0.0.1:PORT`: `/backoffice/…` to `api_base_url`, `/transact-workflow/…` to
//! `transact_base_url`, sent by the library (its token, DPoP proof, subscription key,
//! renewals, retries, deadline and request id) with the answer streamed back as it arrives.
//!
//! Not an open relay: loopback only, origin-form targets only (no absolute form, no
//! `CONNECT`), a loopback `Host` (no DNS rebinding), the local key on every request, these
//! two prefixes only. A caller's own `Authorization`, `DPoP`, `lw-subscription-key` and
//! hop-by-hop headers are dropped. `Lwolf-Tenant: ID` sends the request with the token of
//! that customer instance (`lwt_client_id`), as `?tenant=` does on the socket. A request
//! body (at most `--max-body-bytes`) is read whole first when it is chunked or up to 1 MiB,
//! so that the library can send it again on a retry or a renewal; a larger one with a
//! `Content-Length` is streamed to the API as it arrives (`upload`), and goes once.

use std::net::{IpAddr, TcpStream};
use std::time::Instant;

use super::http::{self, printable, write_answer, write_refusal, Conn, Head, Refusal};
use super::key::HEADER as KEY_HEADER;
use super::metrics::Refused;
use super::relay::Relay;
use super::request_body::{Body, BodyError};
use super::upload::{attempt_bound, Progress, Upload, HELD_BODY_BYTES};
use super::{error_json, error_status, Agent, BODY_TIMEOUT};

/// The header that names the customer instance (`lwt_client_id`) a request is for.
pub(crate) const TENANT_HEADER: &str = "lwolf-tenant";

/// Never forwarded: the credentials are the agent's to add, and `Host`, `Expect` and the
/// tenant are this hop's (besides [`HOP_BY_HOP`]).
const DROPPED: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "dpop",
    "lw-subscription-key",
    KEY_HEADER,
    TENANT_HEADER,
    "host",
    "expect",
];

/// Headers of each hop's own (the framing and the connection), in either direction.
pub(super) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Which API a request goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    BackOffice,
    Transact,
}

/// A request's body as the proxy sends it on.
enum RequestBody {
    /// Read whole: the library can send it again.
    Held(Vec<u8>),
    /// Read as the library sends it: this long, or chunked (`None`).
    Streamed(Upload, Option<u64>, Progress),
}

/// Serves one connection to the proxy.
pub(crate) fn serve(agent: &Agent, stream: TcpStream) {
    let mut conn = Conn::new(stream);
    let mut first = true;
    loop {
        let Some((kept, head)) = agent.next_head(conn, first) else {
            return;
        };
        conn = kept;
        first = false;
        let _busy = agent.busy();
        let (api, path) = match admit(agent, &head) {
            Ok(admitted) => admitted,
            Err((why, refusal)) => {
                agent.metrics.refused(why);
                agent.log.debug(|| {
                    // An absolute URL may hold a user's credentials: not shown.
                    let target = if head.target.starts_with('/') {
                        printable(head.target.split('?').next().unwrap_or_default())
                    } else {
                        "(not a path)".to_owned()
                    };
                    format!(
                        "proxy: refused {} {target}: {} {}",
                        printable(&head.method),
                        refusal.status,
                        refusal.reason
                    )
                });
                // What follows the head (a body) is not read: the connection ends here.
                conn.refuse(&refusal);
                return;
            }
        };
        // The tenant's client before the body: a refused tenant costs no read.
        let client = match tenant_of(&head).and_then(|tenant| agent.client_for(tenant)) {
            Ok(client) => client,
            Err(refusal) => {
                let why = if refusal.status == 429 {
                    Refused::Busy
                } else {
                    Refused::Bad
                };
                agent.refuse(conn, why, &refusal);
                return;
            }
        };
        let too_large = format!(
            "the request body is larger than the agent takes ({} bytes)",
            agent.max_body_bytes
        );
        let deadline = Instant::now() + BODY_TIMEOUT;
        let streamed = match head.framing() {
            Ok(http::Framing::Length(n))
                if n > HELD_BODY_BYTES && n <= agent.max_body_bytes as u64 =>
            {
                Some(n)
            }
            _ => None,
        };
        let mut progress = None;
        let body = match streamed {
            Some(length) => {
                let Some(socket) = second_handle(agent, &conn) else {
                    return;
                };
                if conn.send_continue(&head).is_err() {
                    return;
                }
                let read_ahead =
                    conn.take_read_ahead(usize::try_from(length).unwrap_or(usize::MAX));
                let bound = attempt_bound(client.config().timeout(), length);
                let (upload, how) = Upload::new(socket, read_ahead, length, bound);
                progress = Some(how.clone());
                Some(RequestBody::Streamed(upload, Some(length), how))
            }
            // A caller gone mid-body costs nothing: no token, no request upstream.
            None => match conn.read_body_up_to(
                &head,
                agent.max_body_bytes,
                HELD_BODY_BYTES as usize,
                &too_large,
                deadline,
            ) {
                Ok(None) => None,
                Ok(Some(Body::Whole(body))) => Some(RequestBody::Held(body)),
                // A chunked body past what is held: the rest is streamed.
                Ok(Some(Body::ChunkedRest { prefix, chunk_left })) => {
                    let Some(socket) = second_handle(agent, &conn) else {
                        return;
                    };
                    let room = (agent.max_body_bytes as u64)
                        .saturating_sub(prefix.len() as u64)
                        .saturating_sub(chunk_left);
                    let read_ahead = conn.take_read_ahead(usize::MAX);
                    let bound =
                        attempt_bound(client.config().timeout(), agent.max_body_bytes as u64);
                    let (upload, how) =
                        Upload::chunked(socket, (prefix, chunk_left), read_ahead, room, bound);
                    progress = Some(how.clone());
                    Some(RequestBody::Streamed(upload, None, how))
                }
                Err(BodyError::Refused(refusal)) => {
                    agent.refuse(conn, Refused::Body, &refusal);
                    return;
                }
                Err(BodyError::Gone) => {
                    agent.log.debug(|| "proxy: a caller left mid-body".into());
                    return;
                }
            },
        };
        agent.metrics.served(true);
        // After a streamed body the connection closes: the API may answer before it has
        // read the body whole, and what is left of it cannot be told from a next request.
        let keep_alive = head.keep_alive() && !agent.stopping() && progress.is_none();
        let kept = forward(
            agent,
            &client,
            &mut conn.stream,
            &head,
            (api, &path),
            body,
            keep_alive,
        );
        if progress.as_ref().is_some_and(Progress::unfinished) {
            agent
                .log
                .debug(|| "proxy: the API answered before the body's end; closing".into());
            conn.linger();
            return;
        }
        if !kept || !keep_alive {
            return;
        }
    }
}

/// A second handle on the caller's socket, for a streamed body to be read from while the
/// first writes the answer.
fn second_handle(agent: &Agent, conn: &Conn<TcpStream>) -> Option<TcpStream> {
    let handle = conn.stream.try_clone();
    if handle.is_err() {
        agent
            .log
            .info("proxy: cannot read a body from a second handle");
    }
    handle.ok()
}

/// The checks, in order: the method, the target's form, the `Host`, the key, the path.
fn admit(agent: &Agent, head: &Head) -> Result<(Api, String), (Refused, Refusal)> {
    if head.method == "CONNECT" {
        return Err((
            Refused::Target,
            Refusal::new(405, "CONNECT is not taken: this is not a forward proxy"),
        ));
    }
    if !head.target.starts_with('/') {
        return Err((
            Refused::Target,
            Refusal::new(
                400,
                "only a path is taken as the target (no absolute URL): this is not a forward \
                 proxy",
            ),
        ));
    }
    let hosts: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n == "host")
        .map(|(_, v)| v.as_slice())
        .collect();
    let loopback = match hosts.as_slice() {
        [host] => is_loopback_host(host),
        _ => false,
    };
    if !loopback {
        return Err((
            Refused::Host,
            Refusal::new(403, "the Host header must name a loopback address"),
        ));
    }
    let keys: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|(n, _)| n == KEY_HEADER)
        .map(|(_, v)| v.as_slice())
        .collect();
    let key_ok = match (&agent.key, keys.as_slice()) {
        (Some(key), [given]) => key.matches(given.trim_ascii()),
        _ => false,
    };
    if !key_ok {
        return Err((
            Refused::Key,
            Refusal::new(
                403,
                "a missing or wrong Lwolf-Agent-Key: it is in the agent's key file",
            ),
        ));
    }
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (head.target.as_str(), None),
    };
    let routed = [
        ("/backoffice", Api::BackOffice),
        ("/transact-workflow", Api::Transact),
    ]
    .into_iter()
    .find_map(|(prefix, api)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((api, rest))
    });
    let Some((api, rest)) = routed else {
        return Err((
            Refused::Path,
            Refusal::new(
                404,
                "the proxy serves /backoffice/... and /transact-workflow/... only",
            ),
        ));
    };
    // A path that climbs out of the API's base, or that servers read in different ways. A
    // fragment is never sent by a client, and the library drops it: a `..` before it would
    // then end the path upstream.
    let lower = rest.to_ascii_lowercase();
    let climbs = head.target.contains('#')
        || rest.contains('\\')
        || rest.contains(';')
        || lower.contains("%25")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || rest.split('/').any(|s| s == ".." || s == ".");
    if climbs {
        return Err((
            Refused::Path,
            Refusal::new(
                400,
                "the path must not hold dot segments, encoded slashes, dots or percent signs, \
                 semicolons, or a fragment",
            ),
        ));
    }
    let mut forwarded = if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    };
    if let Some(query) = query {
        forwarded.push('?');
        forwarded.push_str(query);
    }
    Ok((api, forwarded))
}

/// Whether a `Host` value names a loopback address: `localhost`, `127.x.x.x` or `[::1]`,
/// with any port.
fn is_loopback_host(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => value,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The tenant a request names with [`TENANT_HEADER`] (`None`: the agent's own identity);
/// refused if named twice or not in UTF-8 (the name's own rules are `client_for`'s).
fn tenant_of(head: &Head) -> Result<Option<&str>, Refusal> {
    let mut named = head.headers.iter().filter(|(n, _)| n == TENANT_HEADER);
    let Some((_, value)) = named.next() else {
        return Ok(None);
    };
    if named.next().is_some() {
        return Err(Refusal::new(400, "Lwolf-Tenant is given more than once"));
    }
    std::str::from_utf8(value)
        .map(Some)
        .map_err(|_| Refusal::new(400, "Lwolf-Tenant is not UTF-8"))
}

/// Sends the request through the library and relays the answer; false when the connection
/// cannot serve another request (an answer cut off).
fn forward(
    agent: &Agent,
    client: &lwolf_auth::Client,
    out: &mut TcpStream,
    head: &Head,
    (api, path): (Api, &str),
    body: Option<RequestBody>,
    keep_alive: bool,
) -> bool {
    let started = Instant::now();
    let client = match api {
        Api::BackOffice => client.clone(),
        Api::Transact => client.transact(),
    };
    let connection_named =
        http::connection_tokens(head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    let mut builder = client.request(&head.method, path);
    let mut content_type = None;
    for (name, value) in &head.headers {
        if DROPPED.contains(&name.as_str())
            || HOP_BY_HOP.contains(&name.as_str())
            || connection_named.contains(name)
        {
            continue;
        }
        let Ok(value) = std::str::from_utf8(value) else {
            write_refusal(
                out,
                &Refusal::new(400, format!("the value of the {name} header is not UTF-8")),
                keep_alive,
            );
            return keep_alive;
        };
        if name == "content-type" {
            content_type = Some(value.to_owned());
        }
        builder = builder.header(name, value);
    }
    let content_type = content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let mut progress = None;
    builder = match body {
        Some(RequestBody::Held(bytes)) => builder.body(bytes, content_type),
        Some(RequestBody::Streamed(upload, length, how)) => {
            progress = Some(how);
            // The body comes from the caller within the attempt: time for it besides (for a
            // chunked body, time for the largest it may be).
            let longest = length.unwrap_or(agent.max_body_bytes as u64);
            builder
                .body_reader(upload, length, content_type)
                .timeout(attempt_bound(client.config().timeout(), longest))
        }
        None => builder,
    };
    let request = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            let _ = write_answer(
                out,
                400,
                "application/json",
                &[],
                &error_json(&e),
                keep_alive,
            );
            return keep_alive;
        }
    };
    let config = client.config();
    let mut relay = Relay::new(
        out,
        head,
        keep_alive,
        config.max_response_bytes() as u64,
        config.request_id_header(),
    );
    let outcome = client.send_streaming(&request, &mut relay);
    let shown_path = printable(path.split('?').next().unwrap_or_default());
    match outcome {
        Ok(response) => {
            let finished = relay.finish().is_ok();
            agent.log.trace(|| {
                format!(
                    "proxy: {} {shown_path} -> {} (request {}) in {} ms",
                    printable(&head.method),
                    response.status(),
                    response.request_id().unwrap_or("-"),
                    started.elapsed().as_millis()
                )
            });
            finished && relay.keep_alive
        }
        // Nothing reached the caller yet (the head still waits for the body's first bytes):
        // it can still be told what went wrong.
        Err(e) if !relay.head_sent || !relay.pending.is_empty() => {
            agent.log.debug(|| {
                format!(
                    "proxy: {} {shown_path}: no answer: {e}",
                    printable(&head.method)
                )
            });
            // A streamed body the caller did not finish is the caller's failure, not the API's.
            let (status, body) = match progress.as_ref().and_then(Progress::fault) {
                Some(fault) => {
                    let (status, why) = fault.answer();
                    (status, http::error_body(why))
                }
                None => (error_status(&e), error_json(&e)),
            };
            write_answer(
                relay.out,
                status,
                "application/json",
                &[],
                &body,
                keep_alive,
            )
            .is_ok()
                && keep_alive
        }
        Err(e) => {
            // The head went out: all the caller can be told is a cut-off body.
            agent.log.debug(|| {
                format!(
                    "proxy: {} {shown_path} -> {}: cut off: {e}",
                    printable(&head.method),
                    relay.status
                )
            });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:99",
            "[::1]",
            "127.1.2.3:5",
        ] {
            assert!(is_loopback_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:80",
            "127.0.0.1.nip.io",
            "localhost.evil:80",
            "10.0.0.1",
            "[::1]x",
            "",
            "127.0.0.1:80:80",
            "localhost:abc",
        ] {
            assert!(!is_loopback_host(bad.as_bytes()), "{bad}");
        }
    }
}
