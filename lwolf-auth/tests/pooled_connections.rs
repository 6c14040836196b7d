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

/// Worker threads that spread over the pools in a burst go back to the first free pool once
/// they have been idle: one at a time after that, they share one connection, where each
/// would otherwise keep its own (and, past the server's idle timeout, make a new one).
#[test]
fn idle_workers_share_one_connection_again_after_a_burst() {
    use std::sync::mpsc;

    // The burst's four answers wait a second, so that its requests overlap on a slow machine.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Server::new(route(
        issue_tokens("pool", 3600),
        Action::dynamic(move |_| {
            let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ok = Action::status(200);
            if n < 4 {
                ok.after(ms(1000))
            } else {
                ok
            }
        }),
    ));
    let client = client(&server);
    client.token().expect("the first token");
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (go, orders) = mpsc::channel::<()>();
            let (done, replies) = mpsc::channel::<u16>();
            let client = client.clone();
            std::thread::spawn(move || {
                for () in orders {
                    let status = client
                        .get("/items")
                        .send()
                        .unwrap_or_else(|e| panic!("worker {w}: {e}"))
                        .status();
                    done.send(status).expect("the test waits");
                }
            });
            (go, replies)
        })
        .collect();
    // The burst: four requests at once.
    for (go, _) in &workers {
        go.send(()).unwrap();
    }
    for (_, replies) in &workers {
        assert_eq!(replies.recv().unwrap(), 200);
    }
    let burst = server.requests_to("/backoffice/items");
    let mut used: Vec<usize> = burst.iter().map(|r| r.conn).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), 4, "the burst's requests overlapped");
    sleep(ms(1500));
    // One at a time, each worker in turn.
    for (go, replies) in &workers {
        go.send(()).unwrap();
        assert_eq!(replies.recv().unwrap(), 200);
    }
    let after: Vec<usize> = server.requests_to("/backoffice/items")[4..]
        .iter()
        .map(|r| r.conn)
        .collect();
    assert!(
        after.iter().all(|&c| c == after[0]),
        "one at a time, the idle workers should share one connection: {after:?}"
    );
}
