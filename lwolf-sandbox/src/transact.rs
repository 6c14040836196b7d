//! `/transact-workflow/v1/…`: the Transact API's stand-in. Every call needs the gateway's
//! bearer token and the right `lw-subscription-key`, as the vendor's does.

use super::api::{api_error, check_token, list, sample};
use super::server::{header, query_pairs, Method, Reply, Request};
use super::State;
use crate::printable as sanitize_to;

/// The largest document it makes up.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

pub(super) fn transact(state: &State, request: &mut Request, path: &str, url: &str) -> Reply {
    if let Err(reply) = check_token(state, request) {
        return reply;
    }
    let key_ok = header(request, "lw-subscription-key").is_some_and(|k| {
        crate::oauth::constant_time_eq(k.as_bytes(), state.subscription_key.expose().as_bytes())
    });
    if !key_ok {
        return api_error(
            403,
            "forbidden",
            "access denied: missing or invalid lw-subscription-key",
        );
    }
    if !matches!(request.method(), Method::Get | Method::Head) {
        return api_error(405, "method_not_allowed", "method not allowed").with("Allow", "GET");
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["v1", "transactions"] => list(sample("transactions"), url),
        ["v1", "documents", id] => {
            let query = query_pairs(url);
            let size = query
                .iter()
                .find(|(n, _)| n == "size")
                .map_or(Ok(1024), |(_, v)| v.parse::<usize>());
            match size {
                Ok(n) if n <= MAX_DOCUMENT_BYTES => {
                    // A made-up PDF: the magic, then filler, exactly `n` bytes.
                    let mut body = b"%PDF-1.7\n".to_vec();
                    body.resize(n.max(body.len()), b'.');
                    body.truncate(n);
                    Reply {
                        status: 200,
                        headers: vec![
                            ("Content-Type", "application/pdf".into()),
                            (
                                "Content-Disposition",
                                format!("attachment; filename=\"{}.pdf\"", sanitize_to(id, 40)),
                            ),
                        ],
                        body,
                    }
                }
                _ => api_error(400, "invalid_query", "size must be a number up to 64 MiB"),
            }
        }
        _ => api_error(404, "not_found", "no such resource"),
    }
}
