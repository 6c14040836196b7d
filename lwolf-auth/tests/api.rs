//! Authenticated API requests: headers, URL joining, renewal on 401/403, retries, where the
//! token may go, redirects, and responses.

use lwolf_test_support::common;

use std::thread;

use common::*;
use lwolf_auth::{Client, Error};
use lwolf_auth_ffi::lwolf_status;
use serde_json::json;

struct Setup {
    tokens: Server,
    api: Server,
    client: Client,
}

fn setup() -> Setup {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    Setup {
        tokens,
        api,
        client,
    }
}

fn bearer(n: usize) -> String {
    format!("Bearer {}", issued("t", n))
}

#[test]
fn get_sends_the_bearer_token_and_accept_to_the_base_path() {
    let s = setup();
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 200);
    assert!(resp.is_success());
    assert_eq!(s.tokens.token_requests(), 1);
    let req = s.api.request(0);
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/backoffice/v1/x", "the base URL's path is kept");
    assert_eq!(req.header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(
        req.header("user-agent"),
        Some(format!("lwolf-auth/{}", lwolf_auth::VERSION).as_str())
    );
    assert!(req.body.is_empty());
    assert!(resp.url().ends_with("/backoffice/v1/x"), "{}", resp.url());

    // The token is cached across requests.
    ok(s.client.get("/v1/y?page=2&size=10").send());
    ok(s.client.request("GET", "v1/z").send());
    assert_eq!(s.tokens.token_requests(), 1);
    assert_eq!(s.api.request(1).path, "/backoffice/v1/y?page=2&size=10");
    assert_eq!(s.api.request(2).path, "/backoffice/v1/z");
    assert_eq!(s.api.request(2).method, "GET");
    // Any method token, sent as given: methods are case-sensitive.
    for method in ["PROPFIND", "M-SEARCH", "get"] {
        ok(s.client.request(method, "/v1/w").send());
        assert_eq!(s.api.requests().last().unwrap().method, method);
    }
}

#[test]
fn a_trailing_slash_on_the_base_is_not_doubled() {
    let tokens = Server::tokens();
    let api = Server::new(Action::status(204));
    let client = Client::new(
        builder_for(&tokens, &api)
            .api_base_url(format!("{}/backoffice/", api.url()))
            .build()
            .unwrap(),
    );
    assert_eq!(ok(client.get("/v1/x").send()).status(), 204);
    assert_eq!(api.request(0).path, "/backoffice/v1/x");
}

#[test]
fn bodies_are_sent_as_json() {
    let s = setup();
    let body = br#"{"name":"Main St","price":100}"#;
    ok(s.client
        .post("/v1/items")
        .body(body.to_vec(), "application/json")
        .send());
    ok(s.client
        .put("/v1/items/7")
        .body(body.to_vec(), "application/json")
        .send());
    ok(s.client.post("/v1/items").send_json(&json!({"a": [1, 2]})));
    ok(s.client
        .request("PATCH", "/v1/items/7")
        .body(b"{}".to_vec(), "application/json")
        .send());
    ok(s.client.delete("/v1/items/7").send());

    let reqs = s.api.requests();
    let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "PUT", "POST", "PATCH", "DELETE"]);
    for r in &reqs[..4] {
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{}",
            r.method
        );
        assert_eq!(r.header("authorization"), Some(bearer(1).as_str()));
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[1].body, body);
    assert_eq!(reqs[2].json(), json!({"a": [1, 2]}));
    assert_eq!(reqs[3].body, b"{}");
    assert_eq!(reqs[1].path, "/backoffice/v1/items/7");
}

#[test]
fn a_bad_method_is_an_invalid_argument_and_nothing_is_sent() {
    let s = setup();
    for method in ["", "GE T", "GET\r\nX: y", "PÖST"] {
        let e = err(s.client.request(method, "/v1/x").send());
        assert!(matches!(e, Error::InvalidArgument(_)), "{method:?}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 1);
    }
    assert_eq!(s.api.connections(), 0);
}

#[test]
fn a_401_renews_the_token_once_and_resends() {
    let s = setup();
    s.api
        .push(Action::json(401, r#"{"message":"token expired"}"#));
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 200);
    assert_eq!(s.tokens.token_requests(), 2, "exactly one new token");
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some(bearer(1).as_str()));
    assert_eq!(reqs[1].header("authorization"), Some(bearer(2).as_str()));
    assert_eq!(reqs[1].path, "/backoffice/v1/x");
    assert_eq!(s.client.cached_token().unwrap().secret(), issued("t", 2));
}

#[test]
fn a_403_renews_the_token_once_and_resends_a_post_too() {
    let s = setup();
    s.api.push(Action::status(403));
    let resp = ok(s
        .client
        .post("/v1/items")
        .body(b"{\"a\":1}".to_vec(), "application/json")
        .send());
    assert_eq!(resp.status(), 200);
    assert_eq!(s.tokens.token_requests(), 2);
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].body, b"{\"a\":1}");
    assert_eq!(reqs[1].header("authorization"), Some(bearer(2).as_str()));
}

#[test]
fn a_persistent_401_or_403_is_handed_back() {
    for status in [401u16, 403] {
        let tokens = Server::tokens();
        let api = Server::new(
            Action::json(status, r#"{"message":"no access"}"#).header("WWW-Authenticate", "Bearer"),
        );
        let client = Client::new(builder_for(&tokens, &api).build().unwrap());
        let resp = ok(client.get("/v1/x").send());
        assert_eq!(resp.status(), status);
        assert_eq!(resp.text(), r#"{"message":"no access"}"#);
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        assert_eq!(api.request_count(), 2, "{status}: exactly two attempts");
        assert_eq!(tokens.token_requests(), 2, "{status}: one renewal");
    }
}

/// The Transact API wants `lw-subscription-key` on every call: every API request carries it
/// (a renewal's resend included), the token endpoint never sees it, and nothing prints it.
#[test]
fn the_subscription_key_goes_on_every_api_request_and_nowhere_else() {
    let key = "transact-subscription-K3Y";
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    api.push(Action::status(401));
    let client = Client::new(
        builder_for(&tokens, &api)
            .subscription_key(key)
            .build()
            .unwrap(),
    );
    for path in ["/v1/a", "/v1/b"] {
        assert_eq!(ok(client.get(path).send()).status(), 200);
    }
    ok(client
        .post("/v1/c")
        .body(b"{}".to_vec(), "application/json")
        .send());
    let sent = api.requests();
    assert_eq!(sent.len(), 4, "the 401, its resend, and two more");
    for r in &sent {
        assert_eq!(r.header("lw-subscription-key"), Some(key), "{}", r.path);
    }
    assert_eq!(tokens.token_requests(), 2);
    for r in tokens.requests() {
        assert!(!r.text().contains(key), "the token request carried the key");
        assert!(r.headers.iter().all(|(_, v)| !v.contains(key)));
    }
    assert!(!format!("{client:?} {:?}", client.config()).contains(key));

    // A key that would break the header is refused, and not shown.
    let e = err(builder_for(&tokens, &api)
        .subscription_key("abc\r\nX-Evil: 1")
        .build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(!e.to_string().contains("Evil"), "{e}");
}

/// A 401/403 that is not about the token (a missing subscription key, a missing permission)
/// must not cost an issued token per call: one renewal per 30 s, then the answer stands.
#[test]
fn renewals_forced_by_401_or_403_are_bounded() {
    for status in [401u16, 403] {
        let tokens = Server::tokens();
        let api = Server::new(Action::json(status, r#"{"message":"subscription key"}"#));
        let client = Client::new(builder_for(&tokens, &api).build().unwrap());
        for _ in 0..200 {
            assert_eq!(ok(client.get("/v1/x").send()).status(), status);
        }
        assert_eq!(
            tokens.token_requests(),
            2,
            "{status}: the first token, one renewal"
        );
        // The first call sent twice (the renewal), every other call once.
        assert_eq!(api.request_count(), 201, "{status}");
        // Every request after the renewal carried the renewed token.
        assert!(api.requests()[1..]
            .iter()
            .all(|r| r.header("authorization") == Some(bearer(2).as_str())));
    }
}

/// A token the server revoked is still renewed (the bound is not in the way of the first).
#[test]
fn a_revoked_token_is_renewed_then_the_bound_holds_for_its_identity_only() {
    let s = setup();
    s.api.push(Action::status(401));
    assert_eq!(ok(s.client.get("/v1/x").send()).status(), 200);
    assert_eq!(s.tokens.token_requests(), 2);
    // Revoked again within 30 s: handed back, no third token.
    s.api.push(Action::status(401));
    assert_eq!(ok(s.client.get("/v1/x").send()).status(), 401);
    assert_eq!(s.tokens.token_requests(), 2);
    // Another customer instance is another identity, with a bound of its own.
    let tenant = ok(s.client.for_tenant("tenant-2"));
    ok(tenant.token());
    s.api.push(Action::status(401));
    assert_eq!(ok(tenant.get("/v1/x").send()).status(), 200);
    assert_eq!(s.tokens.token_requests(), 4);
}

#[test]
fn a_token_renewed_meanwhile_is_not_dropped() {
    // The API answers the first request 401, but only after another caller has already
    // replaced the token: that newer token must be kept and used, not thrown away.
    let s = setup();
    s.api.push(Action::status(401).after(ms(1000)));
    let requester = {
        let client = s.client.clone();
        thread::spawn(move || client.get("/v1/x").send())
    };
    s.api.wait_for_requests(1, secs(10));
    s.client.invalidate();
    assert_eq!(ok(s.client.token()).secret(), issued("t", 2));
    assert!(!s.api.answered(0), "the 401 must come after the renewal");
    let resp = ok(requester.join().unwrap());
    assert_eq!(resp.status(), 200);
    assert_eq!(
        s.tokens.token_requests(),
        2,
        "the newer token was dropped and refetched"
    );
    assert_eq!(
        s.api.request(1).header("authorization"),
        Some(bearer(2).as_str())
    );
}

#[test]
fn server_errors_are_retried_for_idempotent_methods_only() {
    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
        let s = setup();
        s.api.push(Action::status(503));
        s.api.push(Action::status(502));
        let mut request = s.client.request(method, "/v1/x");
        if method == "PUT" {
            request = request.body(b"{}".to_vec(), "application/json");
        }
        let resp = ok(request.send());
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(s.api.request_count(), 3, "{method} is retried");
        assert!(s.api.requests().iter().all(|r| r.method == method));
    }
    for method in ["POST", "PATCH"] {
        let s = setup();
        s.api.push(Action::status(503));
        let resp = ok(s
            .client
            .request(method, "/v1/x")
            .body(b"{}".to_vec(), "application/json")
            .send());
        assert_eq!(resp.status(), 503, "{method}: the 503 is the response");
        assert_eq!(s.api.request_count(), 1, "{method} is not retried");
    }
}

#[test]
fn exhausted_api_retries_hand_back_the_last_response() {
    let s = setup();
    s.api
        .set_default(Action::json(500, r#"{"message":"boom"}"#));
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.text(), r#"{"message":"boom"}"#);
    assert_eq!(s.api.request_count(), 3, "max_retries 2: three attempts");
}

#[test]
fn api_retry_after_is_honoured() {
    let tokens = Server::tokens();
    let api = Server::new(Action::status(200));
    api.push(Action::status(429).header("Retry-After", "1"));
    let client = Client::new(
        builder_for(&tokens, &api)
            .retry_max(secs(5))
            .build()
            .unwrap(),
    );
    assert_eq!(ok(client.get("/v1/x").send()).status(), 200);
    assert!(api.request(1).at - api.request(0).at >= ms(1000));
}

#[test]
fn any_status_is_a_response_not_an_error() {
    let s = setup();
    s.api.push(Action::json(
        404,
        r#"{"code":"not_found","message":"no such transaction"}"#,
    ));
    s.api.push(Action::json(400, r#"{"message":"bad filter"}"#));
    s.api.push(Action::status(500));
    let r = ok(s.client.get("/v1/transactions/9").send());
    assert_eq!(r.status(), 404);
    assert!(!r.is_success());
    let r = ok(s.client.get("/v1/transactions?filter=bad").send());
    assert_eq!(r.status(), 400);
    let r = ok(s
        .client
        .post("/v1/transactions")
        .body(b"{}".to_vec(), "application/json")
        .send());
    assert_eq!(r.status(), 500);
}

#[test]
fn a_lost_connection_is_retried_for_get_but_not_for_post() {
    let s = setup();
    s.api.push(Action::Reset);
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 200);
    assert_eq!(s.api.request_count(), 2);

    let s = setup();
    s.api.push(Action::Reset);
    let e = err(s
        .client
        .post("/v1/x")
        .body(b"{}".to_vec(), "application/json")
        .send());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(e.attempts(), 1);
    assert_eq!(s.api.request_count(), 1, "a POST is never sent twice");
}

#[test]
fn an_api_timeout_is_retried_for_get() {
    let tokens = Server::tokens();
    let api = Server::new(Action::status(200));
    api.push(Action::Hang);
    let client = Client::new(builder_for(&tokens, &api).timeout(ms(300)).build().unwrap());
    assert_eq!(ok(client.get("/v1/x").send()).status(), 200);
    assert_eq!(api.request_count(), 2);
}

#[test]
fn a_token_failure_fails_the_request_and_nothing_reaches_the_api() {
    let tokens = Server::new(Action::json(
        401,
        r#"{"error":"invalid_client","error_description":"unknown client"}"#,
    ));
    let api = Server::new(Action::status(200));
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    let e = err(client.get("/v1/x").send());
    assert!(matches!(e, Error::InvalidCredentials(_)), "{e:?}");
    assert_eq!(api.connections(), 0);
}

#[test]
fn a_foreign_origin_is_refused_and_nothing_is_sent() {
    let s = setup();
    let other = Server::new(Action::status(200));
    let same_host_other_port = format!("{}/v1/x", other.url());
    let other_scheme = format!("https://{}/backoffice/v1/x", s.api.addr());
    let other_host = format!("http://localhost:{}/backoffice/v1/x", s.api.port());
    for url in [same_host_other_port, other_scheme, other_host] {
        let e = err(s.client.get(&url).send());
        assert!(matches!(e, Error::InvalidArgument(_)), "{url}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 1);
    }
    assert_eq!(other.connections(), 0);
    assert_eq!(s.api.connections(), 0);
    assert_eq!(s.tokens.connections(), 0, "not even a token is fetched");
}

#[test]
fn a_same_origin_absolute_url_is_used_as_is() {
    let s = setup();
    let url = format!("{}/elsewhere/y?q=1", s.api.url());
    let resp = ok(s.client.get(&url).send());
    assert_eq!(resp.status(), 200);
    let req = s.api.request(0);
    assert_eq!(req.path, "/elsewhere/y?q=1", "not joined to the base path");
    assert_eq!(req.header("authorization"), Some(bearer(1).as_str()));
}

#[test]
fn redirects_within_the_origin_are_followed_with_the_token() {
    let s = setup();
    s.api.push(Action::redirect(302, "/backoffice/v1/next"));
    s.api.push(Action::redirect(
        301,
        &format!("{}/backoffice/v1/last", s.api.url()),
    ));
    s.api.push(Action::redirect(307, "relative"));
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 200);
    let reqs = s.api.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/backoffice/v1/x",
            "/backoffice/v1/next",
            "/backoffice/v1/last",
            "/backoffice/v1/relative"
        ]
    );
    for r in &reqs {
        assert_eq!(r.header("authorization"), Some(bearer(1).as_str()));
        assert_eq!(r.method, "GET");
    }
    assert!(
        resp.url().ends_with("/backoffice/v1/relative"),
        "{}",
        resp.url()
    );
}

#[test]
fn redirect_methods_307_keeps_post_303_turns_into_get() {
    let s = setup();
    s.api.push(Action::redirect(307, "/backoffice/v1/again"));
    ok(s.client
        .post("/v1/x")
        .body(b"{\"k\":1}".to_vec(), "application/json")
        .send());
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].body, b"{\"k\":1}");

    let s = setup();
    s.api.push(Action::redirect(303, "/backoffice/v1/result"));
    ok(s.client
        .post("/v1/x")
        .body(b"{\"k\":1}".to_vec(), "application/json")
        .send());
    let reqs = s.api.requests();
    assert_eq!(reqs[1].method, "GET");
    assert!(reqs[1].body.is_empty());
}

#[test]
fn at_most_five_redirects_are_followed() {
    let s = setup();
    s.api
        .set_default(Action::redirect(302, "/backoffice/v1/loop"));
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(
        resp.status(),
        302,
        "after 5 redirects the 3xx is handed back"
    );
    assert_eq!(resp.header("location"), Some("/backoffice/v1/loop"));
    assert_eq!(s.api.request_count(), 6, "the request and five redirects");
}

#[test]
fn a_redirect_to_another_origin_is_not_followed() {
    let s = setup();
    let other = Server::new(Action::status(200));
    let target = format!("{}/steal", other.url());
    s.api.push(Action::redirect(302, &target));
    let resp = ok(s.client.get("/v1/x").send());
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.header("Location"), Some(target.as_str()));
    assert_eq!(s.api.request_count(), 1);
    assert_eq!(
        other.connections(),
        0,
        "the other origin must receive nothing"
    );

    // Protocol-relative and scheme-changing redirects are other origins too.
    let s = setup();
    s.api.push(Action::redirect(
        307,
        &format!("//localhost:{}/steal", s.api.port()),
    ));
    assert_eq!(ok(s.client.get("/v1/x").send()).status(), 307);
    s.api.push(Action::redirect(
        308,
        &format!("https://{}/steal", s.api.addr()),
    ));
    assert_eq!(ok(s.client.get("/v1/x").send()).status(), 308);
    assert_eq!(s.api.request_count(), 2);
}

#[test]
fn response_accessors() {
    let s = setup();
    s.api.push(
        Action::json(201, r#"{"id":7,"tags":["a","b"]}"#)
            .header("X-Request-Id", "req-123")
            .header("X-Multi", "first")
            .header("X-Multi", "second"),
    );
    let resp = ok(s
        .client
        .post("/v1/items")
        .body(b"{}".to_vec(), "application/json")
        .send());
    assert_eq!(resp.status(), 201);
    assert!(resp.is_success());
    for name in ["x-request-id", "X-Request-Id", "X-REQUEST-ID"] {
        assert_eq!(resp.header(name), Some("req-123"), "{name}");
    }
    assert_eq!(resp.header("x-multi"), Some("first"), "the first value");
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    assert!(resp.header("x-absent").is_none());
    assert!(resp
        .headers()
        .any(|(n, v)| n == "x-request-id" && v == "req-123"));

    #[derive(serde::Deserialize)]
    struct Item {
        id: u32,
        tags: Vec<String>,
    }
    let item: Item = ok(resp.json());
    assert_eq!(item.id, 7);
    assert_eq!(item.tags, ["a", "b"]);
    let v: serde_json::Value = ok(resp.json());
    assert_eq!(v["id"], 7);
    assert_eq!(resp.text(), r#"{"id":7,"tags":["a","b"]}"#);
    assert_eq!(resp.body(), br#"{"id":7,"tags":["a","b"]}"#);
    let wrong: Result<Vec<u8>, _> = resp.json();
    assert!(wrong.is_err());
    assert_no_secret(&format!("{resp:?}"));
    assert_eq!(resp.clone().into_body(), resp.body());
}

#[test]
fn max_response_bytes_is_enforced() {
    let tokens = Server::tokens();
    let api = Server::new(Action::body(200, vec![b'x'; 4096]));
    let client = Client::new(
        builder_for(&tokens, &api)
            .max_response_bytes(1024)
            .build()
            .unwrap(),
    );
    assert_eq!(client.config().max_response_bytes(), 1024);
    let e = err(client.get("/v1/big").send());
    assert!(matches!(e, Error::InvalidResponse(_)), "{e:?}");
    assert!(e.to_string().contains("max_response_bytes"), "{e}");
    assert_eq!(
        api.request_count(),
        1,
        "an oversized body is not fetched again"
    );

    // A body right at the limit is fine.
    api.set_default(Action::body(200, vec![b'x'; 1024]));
    assert_eq!(ok(client.get("/v1/exact").send()).body().len(), 1024);

    // The default limit allows much more than 64 KiB (that cap is for token responses).
    let s = setup();
    s.api
        .set_default(Action::body(200, vec![b'y'; 1024 * 1024]));
    assert_eq!(ok(s.client.get("/v1/mib").send()).body().len(), 1024 * 1024);
}

#[test]
fn for_tenant_shares_settings_and_has_its_own_token() {
    let s = setup();
    let a = s.client.for_tenant("tenant-A").unwrap();
    let b = s.client.for_tenant("tenant-B").unwrap();
    assert_eq!(a.lwt_client_id(), Some("tenant-A"));
    assert_eq!(b.lwt_client_id(), Some("tenant-B"));
    assert_eq!(a.config().token_url(), s.client.config().token_url());
    assert_eq!(a.config().timeout(), s.client.config().timeout());

    let ta = ok(a.token());
    let tb = ok(b.token());
    assert_ne!(ta.secret(), tb.secret());
    assert_eq!(s.tokens.token_requests(), 2);
    let mut tenants: Vec<String> = s
        .tokens
        .requests()
        .iter()
        .map(|r| r.json()["lwt_client_id"].as_str().unwrap().to_owned())
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["tenant-A", "tenant-B"]);
    for r in s.tokens.requests() {
        assert_eq!(r.json()["client_id"], CLIENT_ID);
        assert_eq!(r.json()["client_secret"], SECRET);
    }
    assert!(
        s.client.cached_token().is_none(),
        "the parent's cache is its own"
    );
    assert_eq!(ok(a.token()).secret(), ta.secret());
    assert_eq!(s.tokens.token_requests(), 2);

    // Each tenant's API requests carry its own token.
    ok(a.get("/v1/x").send());
    ok(b.get("/v1/x").send());
    let auths: Vec<String> = s
        .api
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(
        auths,
        [
            format!("Bearer {}", ta.secret()),
            format!("Bearer {}", tb.secret())
        ]
    );

    let e = err(s.client.for_tenant(""));
    assert!(matches!(e, Error::InvalidArgument(_)));
}

/// One token, two APIs on two origins: each handle sends the bearer token to its own origin
/// only, and refuses an absolute URL to the other.
#[test]
fn for_api_shares_the_token_and_keeps_it_on_each_origin() {
    let tokens = Server::tokens();
    let back_office = Server::new(Action::json(200, r#"{"api":"backoffice"}"#));
    let transact = Server::new(Action::json(200, r#"{"api":"transact"}"#));
    let client = Client::new(builder_for(&tokens, &back_office).build().unwrap());
    let other = ok(client.for_api(&format!("{}/transact-workflow/", transact.url())));
    assert_eq!(
        other.api_base_url(),
        format!("{}/transact-workflow", transact.url())
    );
    assert_eq!(
        ok(client.get("/v1/a").send()).text(),
        r#"{"api":"backoffice"}"#
    );
    assert_eq!(
        ok(other.get("/v1/b").send()).text(),
        r#"{"api":"transact"}"#
    );
    assert_eq!(transact.request(0).path, "/transact-workflow/v1/b");
    assert_eq!(tokens.token_requests(), 1, "one token for both");
    let sent = back_office
        .request(0)
        .header("authorization")
        .unwrap()
        .to_owned();
    assert_eq!(sent, bearer(1));
    assert_eq!(
        transact.request(0).header("authorization"),
        Some(sent.as_str())
    );
    // Neither handle sends the token to the other's origin.
    for (handle, foreign) in [(&client, &transact), (&other, &back_office)] {
        let e = err(handle.get(&format!("{}/v1/x", foreign.url())).send());
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    assert_eq!(back_office.request_count() + transact.request_count(), 2);
    // The same URL rules as api_base_url.
    assert!(matches!(
        client.for_api("http://example.com/x"),
        Err(Error::Config(_))
    ));
    // A renewal through one handle serves the other: the cache is shared.
    transact.push(Action::status(401));
    assert_eq!(ok(other.get("/v1/c").send()).status(), 200);
    assert_eq!(tokens.token_requests(), 2);
    ok(client.get("/v1/d").send());
    assert_eq!(tokens.token_requests(), 2);
    assert_eq!(
        back_office
            .requests()
            .last()
            .unwrap()
            .header("authorization"),
        Some(bearer(2).as_str())
    );
}

#[test]
fn a_tenant_client_outlives_its_parent() {
    let s = setup();
    let tenant = s.client.for_tenant("tenant-X").unwrap();
    drop(s.client);
    let t = ok(tenant.token());
    assert_eq!(s.tokens.token_requests(), 1);
    tenant.invalidate();
    let t2 = ok(tenant.token());
    assert_ne!(t.secret(), t2.secret());
    assert_eq!(ok(tenant.get("/v1/x").send()).status(), 200);
    assert_eq!(
        s.tokens.request(1).json()["lwt_client_id"],
        json!("tenant-X")
    );
    // A tenant of a tenant works as well.
    let grandchild = tenant.for_tenant("tenant-Y").unwrap();
    drop(tenant);
    ok(grandchild.token());
    assert_eq!(
        s.tokens.request(2).json()["lwt_client_id"],
        json!("tenant-Y")
    );
}
