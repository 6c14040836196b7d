//! The Back Office API's stand-in: sample data (`fixtures.json`), bearer tokens checked.

use std::sync::atomic::Ordering;
use std::time::Instant;

use once_cell::sync::Lazy;
use serde_json::{json, Value};

use std::collections::HashMap;

use super::dpop;
use super::server::{has_scheme, header, query_pairs, read_body, Method, Reply, Request, State};
use super::MAX_CREATED;
use crate::printable as sanitize_to;

/// The sample records, by kind (`transactions`, `offices`, `employees`).
static FIXTURES: Lazy<Value> = Lazy::new(|| {
    serde_json::from_str(include_str!("fixtures.json")).expect("fixtures.json is valid JSON")
});

/// The sample records of one kind.
pub(super) fn sample(kind: &str) -> Vec<Value> {
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
    let a = crate::random_u64();
    let b = crate::random_u64();
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

/// The customer instance of the request's token, or the 401 to answer with: a bearer token
/// it issued, or a DPoP-bound one with a proof of its key for this request.
pub(super) fn check_token(state: &State, request: &Request) -> Result<Option<String>, Reply> {
    let value =
        header(request, "Authorization").ok_or_else(|| unauthorized("missing bearer token"))?;
    let (scheme_dpop, token) = if has_scheme(value, "bearer") {
        (false, value[7..].trim())
    } else if has_scheme(value, "dpop") {
        (true, value[5..].trim())
    } else {
        return Err(unauthorized(
            "the Authorization header is not a bearer token",
        ));
    };
    let (tenant, jkt) = {
        let tokens = state.tokens.lock();
        match tokens.get(token) {
            None => return Err(unauthorized("the token is not valid")),
            Some(t) if Instant::now() >= t.expires => {
                return Err(unauthorized("the token has expired"))
            }
            Some(t) => (t.lwt_client_id.clone(), t.jkt.clone()),
        }
    };
    let Some(jkt) = jkt else {
        return if scheme_dpop {
            Err(unauthorized("a bearer token sent as DPoP"))
        } else {
            Ok(tenant)
        };
    };
    let dpop_unauthorized = |why: &str| {
        api_error(401, "invalid_token", why)
            .with("WWW-Authenticate", "DPoP error=\"invalid_token\"")
    };
    if !scheme_dpop {
        return Err(dpop_unauthorized("a DPoP-bound token must be sent as DPoP"));
    }
    let proof = header(request, "DPoP").ok_or_else(|| dpop_unauthorized("missing DPoP proof"))?;
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let htu = format!("{}{}", state.issuer.trim_end_matches('/'), path);
    let proof = dpop::verify(state, proof, request.method().as_str(), &htu, Some(token))
        .map_err(dpop_unauthorized)?;
    if proof.jkt != jkt {
        return Err(dpop_unauthorized(
            "the DPoP proof is of another key than the token's",
        ));
    }
    if let Some(nonce) = &state.dpop_nonce {
        if dpop::lacks_nonce(state, &proof) {
            return Err(api_error(
                401,
                "use_dpop_nonce",
                "Resource server requires nonce in DPoP proof",
            )
            .with("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"")
            .with("DPoP-Nonce", nonce.as_str()));
        }
    }
    Ok(tenant)
}

pub(super) fn api(state: &State, request: &mut Request, path: &str, url: &str) -> Reply {
    let tenant = match check_token(state, request) {
        Ok(tenant) => tenant,
        Err(reply) => return reply,
    };
    let reply = api_resource(state, request, path, url);
    match tenant {
        Some(id) => reply.with("X-Sandbox-Lwt-Client-Id", id),
        None => reply,
    }
}

pub(super) fn api_resource(state: &State, request: &mut Request, path: &str, url: &str) -> Reply {
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
                list(data, url)
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
        ["v1", "tiers", id] => tier(state, request, id),
        ["v1", "offices"] if get => list(sample("offices"), url),
        ["v1", "employees"] if get => list(sample("employees"), url),
        ["v1", "offices"] | ["v1", "employees"] => not_allowed("GET, HEAD"),
        _ => api_error(404, "not_found", "no such resource"),
    }
}

/// Every list, shaped alike, with the request's OData query applied; a bad one is 400.
pub(super) fn list(data: Vec<Value>, url: &str) -> Reply {
    odata(data, &query_pairs(url)).unwrap_or_else(|why| api_error(400, "invalid_query", &why))
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

/// A list with OData's `$filter`, `$orderby`, `$top` and `$skip` applied (the subset the
/// Back Office API's clients use); `total` counts what the filter kept.
pub(super) fn odata(mut data: Vec<Value>, query: &[(String, String)]) -> Result<Reply, String> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(filter) = param("$filter") {
        let tests = filter
            .split(" and ")
            .map(parse_comparison)
            .collect::<Result<Vec<_>, _>>()?;
        data.retain(|item| tests.iter().all(|t| t.holds(item)));
    }
    if let Some(order) = param("$orderby") {
        let mut words = order.split_whitespace();
        let field = words.next().ok_or("$orderby needs a field")?.to_owned();
        let descending = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(format!(
                    "$orderby: {} is neither asc nor desc",
                    sanitize_to(other, 20)
                ))
            }
        };
        data.sort_by(|a, b| {
            let ord = compare(&a[&field], &b[&field]).unwrap_or(std::cmp::Ordering::Equal);
            if descending {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    let number = |name: &str| -> Result<Option<usize>, String> {
        param(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{name} is not a whole number"))
            })
            .transpose()
    };
    let (skip, top) = (number("$skip")?.unwrap_or(0), number("$top")?);
    let total = data.len();
    let page: Vec<Value> = data
        .into_iter()
        .skip(skip)
        .take(top.unwrap_or(usize::MAX))
        .collect();
    Ok(Reply::json(
        200,
        &json!({ "data": page, "total": total, "skip": skip, "top": top }),
    ))
}

/// `field op literal`, the literal a quoted string or a number.
struct Comparison {
    field: String,
    op: String,
    value: Value,
}

impl Comparison {
    fn holds(&self, item: &Value) -> bool {
        let ord = compare(&item[&self.field], &self.value);
        match (self.op.as_str(), ord) {
            ("eq", Some(o)) => o.is_eq(),
            ("ne", o) => !o.is_some_and(|o| o.is_eq()),
            ("gt", Some(o)) => o.is_gt(),
            ("ge", Some(o)) => o.is_ge(),
            ("lt", Some(o)) => o.is_lt(),
            ("le", Some(o)) => o.is_le(),
            _ => false,
        }
    }
}

fn parse_comparison(text: &str) -> Result<Comparison, String> {
    let unsupported = || format!("unsupported $filter: {}", sanitize_to(text, 80));
    let mut parts = text.trim().splitn(3, ' ');
    let (field, op, literal) = match (parts.next(), parts.next(), parts.next()) {
        (Some(f), Some(o), Some(l)) => (f, o, l.trim()),
        _ => return Err(unsupported()),
    };
    if !["eq", "ne", "gt", "ge", "lt", "le"].contains(&op) {
        return Err(unsupported());
    }
    let value = match literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
    {
        // OData doubles a quote inside a string.
        Some(s) => Value::from(s.replace("''", "'")),
        None => literal
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| unsupported())?,
    };
    Ok(Comparison {
        field: field.to_owned(),
        op: op.to_owned(),
        value,
    })
}

/// Strings with strings, numbers with numbers; anything else does not compare.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        _ => None,
    }
}

/// The tiers the sandbox starts with, at version 1.
pub(super) fn sample_tiers() -> HashMap<String, (Value, u64)> {
    sample("tiers")
        .into_iter()
        .filter_map(|t| Some((t.get("id")?.as_str()?.to_owned(), (t, 1))))
        .collect()
}

/// `GET` with an `ETag`; `PATCH` (a JSON merge) only with `If-Match` of the current one.
fn tier(state: &State, request: &mut Request, id: &str) -> Reply {
    let etag = |version: u64| format!("\"v{version}\"");
    let method = request.method().clone();
    let if_match = header(request, "If-Match").map(str::to_owned);
    let body = match method {
        Method::Patch => match read_body(request) {
            Ok(b) => Some(b),
            Err(why) => return api_error(400, "invalid_request", why),
        },
        _ => None,
    };
    let mut tiers = state.tiers.lock();
    let Some((record, version)) = tiers.get_mut(id) else {
        return api_error(
            404,
            "not_found",
            &format!("tier {} not found", sanitize_to(id, 100)),
        );
    };
    match method {
        Method::Get | Method::Head => Reply::json(200, record).with("ETag", etag(*version)),
        Method::Patch => {
            let Some(if_match) = if_match else {
                return api_error(428, "precondition_required", "PATCH needs If-Match");
            };
            if if_match != etag(*version) && if_match != "*" {
                return api_error(412, "precondition_failed", "the tier has changed since")
                    .with("ETag", etag(*version));
            }
            let change = match serde_json::from_slice::<Value>(body.as_deref().unwrap_or_default())
            {
                Ok(Value::Object(change)) => change,
                _ => return api_error(400, "invalid_request", "the body is not a JSON object"),
            };
            if let Value::Object(fields) = record {
                for (k, v) in change.into_iter().filter(|(k, _)| k != "id") {
                    fields.insert(k, v);
                }
            }
            *version += 1;
            Reply::json(200, record).with("ETag", etag(*version))
        }
        _ => api_error(405, "method_not_allowed", "method not allowed")
            .with("Allow", "GET, HEAD, PATCH"),
    }
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
        assert_eq!(sample("tiers").len(), 2);
        assert!(sample("nothing").is_empty());
    }
}
