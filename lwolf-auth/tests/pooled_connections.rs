//! A pooled connection the server closed, or wrote past its answer on, is never used for the
//! next request (ureq looks at each when it goes back to the pool and when it is taken).
//! POSTs, as they are never retried: a request sent on a dead connection would fail.

use std::thread::sleep;

use lwolf_test_support::common::{client, issue_tokens, ms, route, Action, Server};

fn posts_each_answered_once(answer: &[u8]) {
    let server = Server::new(route(
        issue_tokens("pool", 3600),
        Action::Raw(answer.to_vec()),
    ));
    let client = client(&server);
    for i in 0..4 {
        let response = client
            .post("/items")
            .body(format!("{{\"n\":{i}}}").into_bytes(), "application/json")
            .send()
            .unwrap_or_else(|e| panic!("POST {i}: {e}"));
        assert_eq!(response.status(), 200, "POST {i}");
        assert_eq!(response.body(), b"ok", "POST {i}");
        // The server's close (or its stray bytes) has arrived before the next request.
        sleep(ms(100));
    }
    assert_eq!(
        server.requests_to("/backoffice/items").len(),
        4,
        "a POST sent twice"
    );
}

#[test]
fn a_connection_the_server_closed_is_not_reused() {
    posts_each_answered_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

#[test]
fn a_connection_with_bytes_past_the_answer_is_not_reused() {
    posts_each_answered_once(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n",
    );
}

/// A program that makes each request from a new thread, one after another (a thread per
/// task), reuses one connection: the pools are shared out by requests in flight, not by
/// thread, so a lone request always finds the connection the one before it left.
#[test]
fn requests_from_new_threads_one_after_another_share_one_connection() {
    let server = Server::new(route(issue_tokens("pool", 3600), Action::status(200)));
    let client = client(&server);
    for i in 0..24 {
        let client = client.clone();
        std::thread::spawn(move || {
            let response = client
                .get("/items")
                .send()
                .unwrap_or_else(|e| panic!("GET {i}: {e}"));
            assert_eq!(response.status(), 200, "GET {i}");
        })
        .join()
        .expect("a request's thread panicked");
    }
    assert_eq!(server.requests_to("/backoffice/items").len(), 24);
    assert_eq!(
        server.connections(),
        1,
        "each request but the first should reuse the connection (the token's too)"
    );
}
