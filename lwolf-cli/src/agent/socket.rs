//! `--socket PATH`: the token API over HTTP/1.1 on a Unix socket (0600, or 0660 for
//! `--socket-group`; its file in `unix_socket.rs`) or a named pipe on Windows
//! (`windows.rs`), each peer checked before anything is read from it.
//!
//! `GET /v1/token[?tenant=ID]`, `GET /v1/auth-headers?method=M&url=U[&tenant=ID]`,
//! `POST /v1/reject[?tenant=ID][&url=U&status=S]` (body: the token), `GET /v1/health`,
//! `GET /metrics`.

use std::time::Instant;

use lwolf_auth::Error;
use zeroize::Zeroizing;

use super::http::{self, printable, write_answer, Conn, Refusal};
use super::metrics::Refused;
use super::request_body::BodyError;
use super::{error_json, error_status, sink, Agent, BODY_TIMEOUT};
use crate::output::rfc3339;

/// The largest body `POST /v1/reject` takes (a token).
const MAX_REJECT_BODY: usize = 64 * 1024;

/// Serves one connection to the Unix socket, once its peer is known to be allowed.
#[cfg(unix)]
pub(crate) fn serve_unix(agent: &Agent, stream: std::os::unix::net::UnixStream) {
    if let Some(peers) = &agent.peers {
        if let Err(why) = peers.check(&stream) {
            refuse_peer(agent, stream, &why);
            return;
        }
    }
    serve(agent, stream);
}

/// Refuses a peer that may not use the agent, before anything is read from it.
pub(crate) fn refuse_peer<S: http::Stream>(agent: &Agent, stream: S, why: &str) {
    agent.metrics.refused(Refused::Peer);
    agent.log.debug(|| format!("socket: a peer refused: {why}"));
    Conn::new(stream).refuse(&Refusal::new(403, "this user may not use the agent"));
}

/// Serves one connection to the socket (or on Windows, the pipe) whose peer was checked.
pub(crate) fn serve<S: http::Stream>(agent: &Agent, stream: S) {
    let mut conn = Conn::new(stream);
    let mut first = true;
    loop {
        let Some((kept, head)) = agent.next_head(conn, first) else {
            return;
        };
        conn = kept;
        first = false;
        let _busy = agent.busy();
        let keep_alive = head.keep_alive() && !agent.stopping();
        let deadline = Instant::now() + BODY_TIMEOUT;
        let body = match conn.read_request_body(
            &head,
            MAX_REJECT_BODY,
            "the body is larger than a token",
            deadline,
        ) {
            Ok(body) => Zeroizing::new(body.unwrap_or_default()),
            Err(BodyError::Refused(refusal)) => {
                agent.refuse(conn, Refused::Body, &refusal);
                return;
            }
            Err(BodyError::Gone) => return,
        };
        agent.metrics.served(false);
        let answer = answer(agent, &head, &body);
        let (path, _) = head.target.split_once('?').unwrap_or((&head.target, ""));
        agent.log.trace(|| {
            format!(
                "socket: {} {} -> {}",
                head.method,
                printable(path),
                answer.status
            )
        });
        let allow = answer.allow.map(|a| ("allow", a));
        let sent = write_answer(
            &mut conn.stream,
            answer.status,
            answer.content_type,
            allow.as_slice(),
            &answer.body,
            keep_alive,
        );
        if sent.is_err() || !keep_alive {
            return;
        }
    }
}

/// What to send back.
struct Answer {
    status: u16,
    content_type: &'static str,
    allow: Option<&'static str>,
    body: Zeroizing<Vec<u8>>,
}

impl Answer {
    fn json(status: u16, body: Vec<u8>) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            allow: None,
            body: Zeroizing::new(body),
        }
    }

    fn refusal(refusal: Refusal) -> Answer {
        Answer::json(refusal.status, http::error_body(&refusal.reason))
    }

    fn error(e: &Error) -> Answer {
        Answer::json(error_status(e), error_json(e))
    }
}

fn answer(agent: &Agent, head: &http::Head, body: &[u8]) -> Answer {
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let method = head.method.as_str();
    let expect = |wanted: &'static str| (method != wanted).then_some(wanted);
    let wrong_method = |allow: &'static str| Answer {
        allow: Some(allow),
        ..Answer::refusal(Refusal::new(405, format!("{path} takes {allow}")))
    };
    match path {
        "/v1/token" => {
            if let Some(allow) = expect("GET") {
                return wrong_method(allow);
            }
            let client = match agent.client_for(param("tenant")) {
                Ok(c) => c,
                Err(r) => return Answer::refusal(r),
            };
            match client.token() {
                Ok(token) => Answer {
                    status: 200,
                    content_type: "application/json",
                    allow: None,
                    body: sink::token_json(&token),
                },
                Err(e) => Answer::error(&e),
            }
        }
        "/v1/auth-headers" => {
            if let Some(allow) = expect("GET") {
                return wrong_method(allow);
            }
            let (Some(m), Some(url)) = (param("method"), param("url")) else {
                return Answer::refusal(Refusal::new(
                    400,
                    "auth-headers needs method=METHOD and url=URL",
                ));
            };
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Answer::refusal(Refusal::new(400, "method is not an HTTP method"));
            }
            let client = match agent.client_for(param("tenant")) {
                Ok(c) => c,
                Err(r) => return Answer::refusal(r),
            };
            match client.auth_headers(m, url) {
                Ok(headers) => {
                    #[derive(serde::Serialize)]
                    struct View<'a> {
                        #[serde(rename = "Authorization")]
                        authorization: &'a str,
                        #[serde(rename = "DPoP", skip_serializing_if = "Option::is_none")]
                        dpop: Option<&'a str>,
                    }
                    let view = View {
                        authorization: headers.authorization(),
                        dpop: headers.dpop(),
                    };
                    let mut body = Zeroizing::new(Vec::with_capacity(1024));
                    let _ = serde_json::to_writer(&mut *body, &view);
                    Answer {
                        status: 200,
                        content_type: "application/json",
                        allow: None,
                        body,
                    }
                }
                // A URL the token must not go to: refused, and nothing fetched for it.
                Err(e @ Error::InvalidArgument(_)) => Answer::json(403, error_json(&e)),
                Err(e) => Answer::error(&e),
            }
        }
        "/v1/reject" => {
            if let Some(allow) = expect("POST") {
                return wrong_method(allow);
            }
            let Ok(token) = std::str::from_utf8(body) else {
                return Answer::refusal(Refusal::new(400, "the body must be the token, as text"));
            };
            let client = match agent.client_for(param("tenant")) {
                Ok(c) => c,
                Err(r) => return Answer::refusal(r),
            };
            let send_again = match (param("url"), param("status")) {
                (None, None) => client.reject_token(token.trim()),
                (Some(url), status) => {
                    let Some(status) = status.map_or(Some(401), |s| s.parse::<u16>().ok()) else {
                        return Answer::refusal(Refusal::new(400, "status must be an HTTP status"));
                    };
                    match client.reject_token_at(url, status, token.trim()) {
                        Ok(again) => again,
                        Err(e @ Error::InvalidArgument(_)) => {
                            return Answer::json(403, error_json(&e))
                        }
                        Err(e) => return Answer::error(&e),
                    }
                }
                (None, Some(_)) => {
                    return Answer::refusal(Refusal::new(400, "status needs url too"))
                }
            };
            Answer::json(
                200,
                serde_json::to_vec(&serde_json::json!({ "send_again": send_again }))
                    .unwrap_or_default(),
            )
        }
        "/v1/health" => {
            if let Some(allow) = expect("GET") {
                return wrong_method(allow);
            }
            let cached = agent.client().cached_token();
            let body = serde_json::json!({
                "status": "ok",
                "token": if cached.is_some() { "cached" } else { "none" },
                "expires_at": cached.map(|t| rfc3339(t.expires_at())),
                "version": lwolf_auth::VERSION,
            });
            Answer::json(200, serde_json::to_vec(&body).unwrap_or_default())
        }
        "/metrics" => {
            if let Some(allow) = expect("GET") {
                return wrong_method(allow);
            }
            let text = agent
                .metrics
                .render(&agent.client().stats(), agent.connections());
            Answer {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                allow: None,
                body: Zeroizing::new(text.into_bytes()),
            }
        }
        _ => {
            agent.metrics.refused(Refused::Path);
            Answer::refusal(Refusal::new(
                404,
                "no such endpoint: see lwolf agent --help",
            ))
        }
    }
}
