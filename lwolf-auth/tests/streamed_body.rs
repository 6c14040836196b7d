//! A request body read from a reader (`RequestBuilder::body_reader`): sent as it is read,
//! with its length or chunked, and once: no retry, renewal or redirect sends it again.

use lwolf_test_support::common;

use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use lwolf_auth::{Client, Error};

fn client(tokens: &Server, api: &Server) -> Client {
    Client::new(builder_for(tokens, api).build().unwrap())
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A reader that counts what was read from it.
struct Counted(Cursor<Vec<u8>>, Arc<AtomicUsize>);

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
}

#[test]
fn a_reader_body_goes_with_its_length_or_chunked() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(201, r#"{"ok":true}"#));
    let client = client(&tokens, &api);
    let body = data(300_000);

    let sent = client
        .post("/v1/uploads")
        .body_reader(
            Cursor::new(body.clone()),
            Some(body.len() as u64),
            "application/pdf",
        )
        .send();
    assert_eq!(ok(sent).status(), 201);
    let seen = api.request(0);
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("content-length"), Some("300000"));
    assert_eq!(seen.header("transfer-encoding"), None);
    assert_eq!(seen.header("content-type"), Some("application/pdf"));
    assert!(seen
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));

    let sent = client
        .post("/v1/uploads")
        .body_reader(Cursor::new(body.clone()), None, "application/pdf")
        .send();
    assert_eq!(ok(sent).status(), 201);
    let seen = api.request(1);
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
}

#[test]
fn a_reader_body_is_sent_once() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = client(&tokens, &api);
    let read = Arc::new(AtomicUsize::new(0));

    // A 503 to a PUT is retried with a body the library holds; a reader's is handed back.
    api.push(Action::status(503));
    let request = client
        .put("/v1/tiers/t1")
        .body_reader(
            Counted(Cursor::new(data(10_000)), Arc::clone(&read)),
            Some(10_000),
            "application/json",
        )
        .build()
        .unwrap();
    assert_eq!(ok(client.send(&request)).status(), 503);
    assert_eq!(api.request_count(), 1);
    assert_eq!(read.load(Ordering::SeqCst), 10_000);

    // Sending it again is refused, and nothing goes out.
    match client.send(&request) {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("sent already"), "{why}"),
        other => panic!("a second send of a reader's body: {other:?}"),
    }
    assert_eq!(api.request_count(), 1);
}

#[test]
fn a_401_renews_the_token_for_the_next_request_and_is_handed_back() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = client(&tokens, &api);
    api.push(Action::json(401, r#"{"code":"unauthorized"}"#));
    let sent = client
        .post("/v1/transactions")
        .body_reader(Cursor::new(data(1000)), None, "application/json")
        .send();
    assert_eq!(ok(sent).status(), 401);
    assert_eq!(api.request_count(), 1);
    assert_eq!(client.stats().forced_renewals, 1);
    // The next request carries the new token.
    assert_eq!(ok(client.get("/v1/offices").send()).status(), 200);
    assert_eq!(tokens.token_requests(), 2);
    let first = api.request(0).header("authorization").unwrap().to_owned();
    let next = api.request(1).header("authorization").unwrap().to_owned();
    assert_ne!(first, next);
}

#[test]
fn a_redirect_that_keeps_the_body_is_handed_back() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = client(&tokens, &api);
    api.push(Action::redirect(307, "/backoffice/v1/elsewhere"));
    let sent = client
        .post("/v1/transactions")
        .body_reader(Cursor::new(data(1000)), Some(1000), "application/json")
        .send();
    assert_eq!(ok(sent).status(), 307);
    assert_eq!(api.request_count(), 1);

    // A 303 turns into a GET without a body: followed.
    api.push(Action::redirect(303, "/backoffice/v1/result"));
    let sent = client
        .post("/v1/transactions")
        .body_reader(Cursor::new(data(1000)), Some(1000), "application/json")
        .send();
    assert_eq!(ok(sent).status(), 200);
    assert_eq!(api.request(2).method, "GET");
    assert_eq!(api.request(2).path, "/backoffice/v1/result");
}

/// A reader that fails after giving `ok` bytes.
struct Failing(usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("the disk went away"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

/// A reader that ends before its length, runs past it, or fails: an error within the
/// request's bound (the HTTP stack would otherwise wait for bytes that never come, spinning
/// on a TLS connection), and the API never gets a whole request.
#[test]
fn a_reader_that_breaks_its_length_or_fails_is_an_error() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(201, r#"{"ok":true}"#));
    let client = Client::new(
        builder_for(&tokens, &api)
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let cases: [(&str, Box<dyn Read + Send>, Option<u64>); 3] = [
        ("short", Box::new(Cursor::new(data(1000))), Some(5000)),
        ("long", Box::new(Cursor::new(data(6000))), Some(5000)),
        ("failing", Box::new(Failing(3000)), None),
    ];
    for (what, reader, length) in cases {
        let sent = client
            .post("/v1/uploads")
            .body_reader(reader, length, "application/octet-stream")
            .send();
        match sent {
            Err(Error::Transport(failure)) => {
                assert_eq!(failure.attempts, 1, "{what}: {failure:?}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(api.request_count(), 0, "{:?}", api.requests());
}
