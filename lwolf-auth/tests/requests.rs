//! The request builder through the public Rust surface: headers, query strings, any method
//! and body, per-request timeouts, reusable requests, and streamed responses.

use lwolf_test_support::common;

use std::io::Write;
use std::sync::Arc;
use std::thread;

use common::*;
use lwolf_auth::{Client, Error};

fn setup() -> (Server, Server, Client) {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    (tokens, api, client)
}

/// The decoded `name=value` pairs of a request target's query.
fn query_pairs(target: &str) -> Vec<(String, String)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(n), form_decode(v))
        })
        .collect()
}

#[test]
fn query_values_arrive_exactly_as_given() {
    let (_tokens, api, client) = setup();
    let values = [
        ("$filter", "statusCode eq 'A' and price gt 100"),
        ("quote", "it's \"quoted\""),
        ("plus", "a+b"),
        ("amp", "x&y=z"),
        ("hash", "#frag"),
        ("pct", "100%"),
        ("slash", "a/b?c"),
        ("cafe", "café 東京"),
        ("empty", ""),
    ];
    let mut request = client.get("/v1/transactions?$top=5");
    for (name, value) in values {
        request = request.query(name, value);
    }
    ok(request.send());
    let sent = api.request(0);
    let target = sent.path.clone();
    // No raw space, and no `+` standing for one (which also makes the form decoding below
    // exact: every `+` sent would be `%2B`).
    assert!(!target.contains(' ') && target.contains("%20"), "{target}");
    assert!(!target.contains('+'), "{target}");
    assert!(
        target.starts_with("/backoffice/v1/transactions?$top=5&"),
        "{target}"
    );
    let mut expected = vec![("$top".to_owned(), "5".to_owned())];
    expected.extend(values.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    assert_eq!(query_pairs(&target), expected);
}

#[test]
fn headers_are_sent_and_the_library_keeps_its_own() {
    let (_tokens, api, client) = setup();
    ok(client
        .get("/v1/x")
        .header("If-Match", "\"v7\"")
        .header("X-Trace", "one")
        .header("x-trace", "two")
        .header("Accept", "application/pdf")
        .send());
    let sent = api.request(0);
    assert_eq!(sent.header("if-match"), Some("\"v7\""));
    let values = |name: &str| -> Vec<&str> {
        sent.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("x-trace"), ["one", "two"]);
    assert_eq!(
        values("accept"),
        ["application/pdf"],
        "the caller's Accept replaces ours"
    );
    assert!(sent.header("authorization").unwrap().starts_with("Bearer "));

    // Refused, and nothing is sent: the library's own headers, bad names, injected lines.
    for (name, value) in [
        ("Authorization", "Bearer mine"),
        ("authorization", "x"),
        ("Content-Length", "1"),
        ("Bad Name", "x"),
        ("", "x"),
        ("X-Evil", "a\r\nInjected: 1"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\0b"),
    ] {
        let e = err(client.get("/v1/x").header(name, value).send());
        assert!(matches!(e, Error::InvalidArgument(_)), "{name:?}: {e:?}");
        assert!(!e.to_string().contains("Injected"), "{e}");
    }
    assert_eq!(api.request_count(), 1);
    let e = err(client.request("GE T", "/v1/x").send());
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn bodies_go_as_given_with_their_type() {
    let (_tokens, api, client) = setup();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ok(client
        .put("/v1/documents/d1")
        .body(binary.clone(), "application/pdf")
        .send());
    ok(client
        .patch("/v1/tiers/t1")
        .header("If-Match", "\"v1\"")
        .send_json(&serde_json::json!({"name": "Gold"})));
    let put = api.request(0);
    assert_eq!(put.method, "PUT");
    assert_eq!(put.body, binary);
    assert_eq!(put.header("content-type"), Some("application/pdf"));
    let patch = api.request(1);
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.header("content-type"), Some("application/json"));
    assert_eq!(patch.json(), serde_json::json!({"name": "Gold"}));
    // A caller's Content-Type wins over the body's.
    ok(client
        .post("/v1/x")
        .header("Content-Type", "text/csv")
        .body(b"a,b".to_vec(), "application/json")
        .send());
    assert_eq!(api.request(2).header("content-type"), Some("text/csv"));
}

#[test]
fn post_and_patch_are_not_retried_get_is() {
    let (_tokens, api, client) = setup();
    for method in ["POST", "PATCH"] {
        api.push(Action::status(503));
        let before = api.request_count();
        let resp = ok(client
            .request(method, "/v1/x")
            .body(b"{}".to_vec(), "application/json")
            .send());
        assert_eq!(resp.status(), 503, "{method}");
        assert_eq!(api.request_count(), before + 1, "{method} was retried");
    }
    api.push(Action::status(503));
    let before = api.request_count();
    assert_eq!(ok(client.get("/v1/x").send()).status(), 200);
    assert_eq!(api.request_count(), before + 2);
}

#[test]
fn a_request_timeout_bounds_each_attempt() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}").after(ms(3000)));
    let client = Client::new(builder_for(&tokens, &api).max_retries(0).build().unwrap());
    let e = err(client.get("/v1/slow").timeout(ms(200)).send());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("timeout"), "{e}");
    assert!(matches!(
        client.get("/v1/x").timeout(ms(0)).send(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn one_request_is_sent_from_eight_threads() {
    let (tokens, api, client) = setup();
    let request = Arc::new(
        client
            .get("/v1/items")
            .query("q", "shared one")
            .header("X-Shared", "yes")
            .build()
            .unwrap(),
    );
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, request) = (client.clone(), Arc::clone(&request));
            thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(ok(client.send(&request)).status(), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(api.request_count(), 40);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.path == "/backoffice/v1/items?q=shared%20one"
            && r.header("x-shared") == Some("yes")));
    assert_eq!(tokens.token_requests(), 1);
    // The builder reports the first bad argument when the request is built.
    assert!(client
        .delete("/v1/items/1")
        .header("Authorization", "x")
        .build()
        .is_err());
    let built = ok(client.delete("/v1/items/1").query("soft", "true").build());
    assert_eq!(ok(client.send(&built)).status(), 200);
    assert_eq!(api.request(40).path, "/backoffice/v1/items/1?soft=true");
}

/// A writer that keeps only a count and refuses more after `stop_after` bytes, if set.
struct Counting {
    bytes: usize,
    writes: usize,
    stop_after: Option<usize>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop_after.is_some_and(|n| self.bytes >= n) {
            return Err(std::io::Error::other("enough"));
        }
        self.bytes += buf.len();
        self.writes += 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn send_to_streams_only_the_answer_it_hands_back() {
    let tokens = Server::tokens();
    let api = Server::new(Action::Oversized {
        status: 200,
        len: 8 * 1024 * 1024,
    });
    // A 503 retried and a 401 renewed are the client's business, not the writer's.
    api.push(Action::json(503, r#"{"message":"busy"}"#));
    api.push(Action::json(401, r#"{"message":"expired"}"#));
    let client = Client::new(
        builder_for(&tokens, &api)
            .retry_base(ms(1))
            .retry_max(ms(5))
            .max_response_bytes(1024)
            .build()
            .unwrap(),
    );
    let mut out = Counting {
        bytes: 0,
        writes: 0,
        stop_after: None,
    };
    let resp = ok(client.get("/v1/documents/big").send_to(&mut out));
    assert_eq!(resp.status(), 200);
    assert!(resp.body().is_empty(), "a streamed body is not kept");
    // 8 MiB through a 1 KiB max_response_bytes: streaming has no cap, and came in pieces.
    assert_eq!(out.bytes, 8 * 1024 * 1024);
    assert!(out.writes > 1);
    assert_eq!(api.request_count(), 3);

    // A writer that stops: Aborted, and never retried.
    let mut stopper = Counting {
        bytes: 0,
        writes: 0,
        stop_after: Some(100_000),
    };
    let e = err(client.get("/v1/documents/big").send_to(&mut stopper));
    assert!(matches!(e, Error::Aborted(_)), "{e:?}");
    assert_eq!(api.request_count(), 4);

    // An error answer handed back still reaches the writer.
    api.push(Action::json(404, r#"{"message":"no such document"}"#));
    let mut text = Vec::new();
    let resp = ok(client.get("/v1/documents/none").send_to(&mut text));
    assert_eq!(resp.status(), 404);
    assert_eq!(text, br#"{"message":"no such document"}"#);
}

/// A client of `api` whose retries wait 1-5 ms.
fn quick_retries(tokens: &Server, api: &Server) -> Client {
    Client::new(
        builder_for(tokens, api)
            .retry_base(ms(1))
            .retry_max(ms(5))
            .build()
            .unwrap(),
    )
}

/// A sink that records when its head came, relative to the body.
#[derive(Default)]
struct HeadFirst {
    heads: Vec<(u16, Option<String>, usize)>,
    body: Vec<u8>,
}

impl Write for HeadFirst {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        assert_eq!(self.heads.len(), 1, "a body byte came before the head");
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl lwolf_auth::ResponseSink for HeadFirst {
    fn head(&mut self, response: &lwolf_auth::Response) -> std::io::Result<()> {
        let id = response.request_id().map(str::to_owned);
        self.heads.push((response.status(), id, self.body.len()));
        Ok(())
    }
}

#[test]
fn send_streaming_tells_the_head_once_before_the_body() {
    let tokens = Server::tokens();
    let api = Server::new(Action::Oversized {
        status: 200,
        len: 1024 * 1024,
    });
    // The 503 retried and the 401 renewed never reach the sink, their heads neither.
    api.push(Action::json(503, r#"{"message":"busy"}"#));
    api.push(Action::json(401, r#"{"message":"expired"}"#));
    let client = quick_retries(&tokens, &api);
    let request = client.get("/v1/documents/big").build().unwrap();
    let mut sink = HeadFirst::default();
    let resp = ok(client.send_streaming(&request, &mut sink));
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.heads.len(), 1);
    assert_eq!(sink.heads[0].0, 200);
    assert_eq!(sink.heads[0].1.as_deref(), resp.request_id());
    assert!(sink.heads[0].1.is_some());
    assert_eq!(sink.body.len(), 1024 * 1024);

    // A body read whole (an error answer handed back) gets its head first too.
    api.push(Action::json(404, r#"{"message":"no such document"}"#));
    let mut sink = HeadFirst::default();
    let resp = ok(client.send_streaming(&request, &mut sink));
    assert_eq!(resp.status(), 404);
    assert_eq!(sink.heads.len(), 1);
    assert_eq!(sink.heads[0].0, 404);
    assert_eq!(sink.body, br#"{"message":"no such document"}"#);
}

#[test]
fn a_streamed_head_is_final_and_a_body_only_stream_still_retries() {
    let tokens = Server::tokens();
    let api = Server::new(Action::Oversized {
        status: 200,
        len: 4096,
    });
    // The first answer promises 1000 bytes and resets before any: a retry would tell the
    // sink a second head after the first (a relay would write two status lines).
    api.push(Action::ResetAfterHeaders {
        status: 200,
        declared: 1000,
    });
    let client = quick_retries(&tokens, &api);
    let request = client.get("/v1/documents/big").build().unwrap();
    let mut sink = HeadFirst::default();
    let err = client
        .send_streaming(&request, &mut sink)
        .expect_err("the body was cut short after the head was passed on");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(sink.heads.len(), 1, "{:?}", sink.heads);
    assert_eq!(
        api.requests().len(),
        1,
        "retried after the head was passed on"
    );

    // send_to passes no head on: before its first body byte, the attempt may be retried.
    api.push(Action::ResetAfterHeaders {
        status: 200,
        declared: 1000,
    });
    let mut body = Vec::new();
    let resp = ok(client.send_to(&request, &mut body));
    assert_eq!(resp.status(), 200);
    assert_eq!(body.len(), 4096);
    assert_eq!(api.requests().len(), 3);
}
