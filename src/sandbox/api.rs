//! The Back Office API's stand-in: sample data (`fixtures.json`), bearer tokens checked.

use std::sync::atomic::Ordering;
use std::time::Instant;

use once_cell::sync::Lazy;
use serde_json::{json, Value};
use tiny_http::{Method, Request};

use super::server::{has_scheme, header, read_body, Reply, State};
use super::MAX_CREATED;
use crate::token::sanitize_to;

/// The sample records, by kind (`transactions`, `offices`, `employees`).
static FIXTURES: Lazy<Value> = Lazy::new(|| {
    serde_json::from_str(include_str!("fixtures.json")).expect("fixtures.json is valid JSON")
});

/// The sample records of one kind.
fn sample(kind: &str) -> Vec<Value> {
    FIXTURES[kind].as_array().cloned().unwrap_or_default()
}

pub(super) fn api_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "id": uuid_like(),
            "code": code,
            "message": message,
            "details": [],
        }),
    )
}

pub(super) fn uuid_like() -> String {
    let a = crate::jitter::u64();
    let b = crate::jitter::u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

pub(super) fn unauthorized(message: &str) -> Reply {
    api_error(401, "invalid_token", message)
        .with("WWW-Authenticate", "Bearer error=\"invalid_token\"")
}

/// The customer instance of the request's bearer token, or why the token is not accepted.
pub(super) fn check_bearer(
    state: &State,
    request: &Request,
) -> Result<Option<String>, &'static str> {
    let value = header(request, "Authorization").ok_or("missing bearer token")?;
    if !has_scheme(value, "bearer") {
        return Err("the Authorization header is not a bearer token");
    }
    let token = value[7..].trim();
    let tokens = state.tokens.lock();
    match tokens.get(token) {
        None => Err("the token is not valid"),
        Some(t) if Instant::now() >= t.expires => Err("the token has expired"),
        Some(t) => Ok(t.lwt_client_id.clone()),
    }
}

pub(super) fn api(state: &State, request: &mut Request, path: &str) -> Reply {
    state.api_requests.fetch_add(1, Ordering::SeqCst);
    let tenant = match check_bearer(state, request) {
        Ok(tenant) => tenant,
        Err(why) => return unauthorized(why),
    };
    let reply = api_resource(state, request, path);
    match tenant {
        Some(id) => reply.with("X-Sandbox-Lwt-Client-Id", id),
        None => reply,
    }
}

pub(super) fn api_resource(state: &State, request: &mut Request, path: &str) -> Reply {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    let get = matches!(method, Method::Get | Method::Head);
    let not_allowed = |allow: &str| {
        api_error(405, "method_not_allowed", "method not allowed").with("Allow", allow)
    };
    match segments.as_slice() {
        ["v1", "transactions"] => match method {
            _ if get => {
                let mut data = sample("transactions");
                data.extend(state.created.lock().iter().cloned());
                list(data)
            }
            Method::Post => create_transaction(state, request),
            _ => not_allowed("GET, HEAD, POST"),
        },
        ["v1", "transactions", id] => {
            if !get {
                return not_allowed("GET, HEAD");
            }
            let found = sample("transactions")
                .into_iter()
                .chain(state.created.lock().iter().cloned())
                .find(|t| t.get("id").and_then(Value::as_str) == Some(*id));
            match found {
                Some(t) => Reply::json(200, &t),
                None => api_error(
                    404,
                    "not_found",
                    &format!("transaction {} not found", sanitize_to(id, 100)),
                ),
            }
        }
        ["v1", "offices"] if get => list(sample("offices")),
        ["v1", "employees"] if get => list(sample("employees")),
        ["v1", "offices"] | ["v1", "employees"] => not_allowed("GET, HEAD"),
        _ => api_error(404, "not_found", "no such resource"),
    }
}

pub(super) fn list(data: Vec<Value>) -> Reply {
    let total = data.len();
    Reply::json(
        200,
        &json!({ "data": data, "total": total, "page": 1, "pageSize": total.max(25) }),
    )
}

pub(super) fn create_transaction(state: &State, request: &mut Request) -> Reply {
    let body = match read_body(request) {
        Ok(b) => b,
        Err(why) => return api_error(400, "invalid_request", why),
    };
    let mut transaction = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return api_error(400, "invalid_request", "the body must be a JSON object"),
        Err(_) => return api_error(400, "invalid_request", "malformed JSON body"),
    };
    let id = format!(
        "txn-{}",
        state.next_transaction.fetch_add(1, Ordering::SeqCst)
    );
    transaction.insert("id".into(), Value::String(id.clone()));
    let transaction = Value::Object(transaction);
    {
        let mut created = state.created.lock();
        if created.len() < MAX_CREATED {
            created.push(transaction.clone());
        }
    }
    Reply::json(201, &transaction).with("Location", format!("/backoffice/v1/transactions/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let id = uuid_like();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, uuid_like());
    }

    #[test]
    fn fixtures_hold_every_kind() {
        assert_eq!(sample("transactions").len(), 5);
        assert_eq!(sample("offices").len(), 2);
        assert_eq!(sample("employees").len(), 4);
        assert!(sample("nothing").is_empty());
    }
}
