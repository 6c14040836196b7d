//! Retries of the token request: what is retried, how long it waits, and when it gives up.

use lwolf_test_support::common;

use std::time::{Duration, Instant};

use common::*;
use lwolf_auth::{Client, Error};
use lwolf_auth_ffi::lwolf_status;

fn gap(server: &Server, a: usize, b: usize) -> Duration {
    server.request(b).at - server.request(a).at
}

#[test]
fn retryable_statuses_are_retried_then_succeed() {
    for status in [408u16, 429, 500, 502, 503, 504] {
        let server = Server::tokens();
        server.push(Action::json(
            status,
            r#"{"error":"temporarily_unavailable"}"#,
        ));
        let token = ok(client(&server).token());
        assert_eq!(token.secret(), issued("t", 1), "{status}");
        assert_eq!(
            server.token_requests(),
            2,
            "{status} is retried once, then succeeds"
        );
    }
}

#[test]
fn several_failures_in_a_row_within_max_retries() {
    let server = Server::tokens();
    server.push(Action::status(503));
    server.push(Action::Reset);
    server.push(Action::status(502));
    let client = Client::new(builder(&server).max_retries(3).build().unwrap());
    ok(client.token());
    assert_eq!(server.token_requests(), 4);
}

#[test]
fn a_connection_reset_is_retried() {
    let server = Server::tokens();
    server.push(Action::Reset);
    let token = ok(client(&server).token());
    assert_eq!(token.secret(), issued("t", 1));
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_truncated_response_is_retried() {
    let server = Server::tokens();
    server.push(Action::Truncated {
        status: 200,
        declared: 500,
        sent: 10,
    });
    let token = ok(client(&server).token());
    assert_eq!(token.secret(), issued("t", 1));
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_connection_refused_is_a_transport_error_after_retries() {
    // Bind, learn the port, close: nothing listens there any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new(
        lwolf_auth::Config::builder()
            .client_id(CLIENT_ID)
            .client_secret(SECRET)
            .token_url(format!("http://127.0.0.1:{port}/oauth/token"))
            .max_retries(2)
            .retry_base(ms(10))
            .retry_max(ms(50))
            .build()
            .unwrap(),
    );
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 8);
    assert_eq!(e.attempts(), 3);
    assert!(e.is_retryable());
}

#[test]
fn retry_after_is_honoured() {
    let server = Server::tokens();
    server.push(Action::json(429, r#"{"error":"slow_down"}"#).header("Retry-After", "1"));
    let client = Client::new(builder(&server).retry_max(ms(5000)).build().unwrap());
    let token = ok(client.token());
    assert_eq!(token.secret(), issued("t", 1));
    assert_eq!(server.token_requests(), 2);
    let waited = gap(&server, 0, 1);
    assert!(
        waited >= ms(1000),
        "Retry-After: 1 but retried after {waited:?}"
    );
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let server = Server::tokens();
    server.push(Action::dynamic(|_| {
        let when = std::time::SystemTime::now() + secs(2);
        Action::status(503).header("Retry-After", &httpdate::fmt_http_date(when))
    }));
    let client = Client::new(builder(&server).retry_max(ms(5000)).build().unwrap());
    ok(client.token());
    // The date has one-second resolution: at least one second is left of the two.
    let waited = gap(&server, 0, 1);
    assert!(waited >= ms(900), "retried after {waited:?}");
}

#[test]
fn x_ratelimit_reset_on_429_is_honoured() {
    let server = Server::tokens();
    server.push(Action::dynamic(|_| {
        // A UNIX time at least one second ahead.
        let reset = unix_now().ceil() as u64 + 1;
        Action::status(429).header("X-RateLimit-Reset", &reset.to_string())
    }));
    let client = Client::new(builder(&server).retry_max(ms(5000)).build().unwrap());
    ok(client.token());
    assert_eq!(server.token_requests(), 2);
    let waited = gap(&server, 0, 1);
    assert!(
        waited >= ms(900),
        "X-RateLimit-Reset ignored: retried after {waited:?}"
    );
}

#[test]
fn retry_after_is_capped_at_retry_max() {
    let server = Server::tokens();
    server.push(Action::status(429).header("Retry-After", "30"));
    server.push(Action::status(503).header("Retry-After", "3600"));
    let client = Client::new(builder(&server).retry_max(ms(200)).build().unwrap());
    let start = Instant::now();
    ok(client.token());
    assert_eq!(server.token_requests(), 3);
    assert!(
        start.elapsed() < secs(20),
        "Retry-After was not capped: {:?}",
        start.elapsed()
    );
    assert!(gap(&server, 0, 1) < secs(20));
}

#[test]
fn exhausted_rate_limit_is_rate_limited() {
    let server = Server::new(Action::json(
        429,
        r#"{"error":"rate_limited","error_description":"too many token requests"}"#,
    ));
    let client = Client::new(builder(&server).max_retries(2).build().unwrap());
    let e = err(client.token());
    assert!(matches!(e, Error::RateLimited(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 6);
    assert_eq!(e.attempts(), 3);
    assert_eq!(server.token_requests(), 3);
    assert_eq!(e.http_status(), Some(429));
    assert!(e.to_string().contains("too many token requests"), "{e}");
    assert!(e.is_retryable());
}

#[test]
fn exhausted_server_errors_are_server() {
    for (max_retries, status) in [(0u32, 500u16), (1, 502), (3, 503), (2, 504), (2, 408)] {
        let server = Server::new(Action::status(status));
        let client = Client::new(builder(&server).max_retries(max_retries).build().unwrap());
        let e = err(client.token());
        assert!(matches!(e, Error::Server(_)), "{status}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 7);
        assert_eq!(e.http_status(), Some(status));
        assert_eq!(e.attempts(), max_retries + 1, "{status}");
        assert_eq!(
            server.token_requests(),
            max_retries as usize + 1,
            "{status}"
        );
    }
}

#[test]
fn exhausted_resets_are_transport_errors() {
    let server = Server::new(Action::Reset);
    let client = Client::new(builder(&server).max_retries(2).build().unwrap());
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(e.attempts(), 3);
    assert_eq!(server.token_requests(), 3);
}

#[test]
fn default_max_retries_is_four() {
    let server = Server::new(Action::status(503));
    // Only the waits are shortened; max_retries stays at its default.
    let config = lwolf_auth::Config::builder()
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .token_url(server.token_url())
        .retry_base(ms(5))
        .retry_max(ms(20))
        .build()
        .unwrap();
    assert_eq!(config.max_retries(), 4);
    let e = err(Client::new(config).token());
    assert_eq!(e.attempts(), 5);
    assert_eq!(server.token_requests(), 5);
}

#[test]
fn timeout_is_bounded() {
    let server = Server::new(Action::Hang);
    let client = Client::new(
        builder(&server)
            .timeout(ms(300))
            .max_retries(1)
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    let e = err(client.token());
    let took = start.elapsed();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 8);
    assert_eq!(e.attempts(), 2, "a timeout is retried");
    assert_eq!(server.token_requests(), 2);
    // Two attempts of 300 ms and a wait of at most 100 ms: far below this bound.
    assert!(took < secs(10), "took {took:?}");
    assert!(
        took >= ms(600),
        "two attempts of 300 ms each took only {took:?}"
    );
}

#[test]
fn a_slow_body_is_bounded_by_the_timeout() {
    // Headers, then a body that never completes and a connection that stays open.
    let server = Server::new(Action::Stall {
        status: 200,
        declared: 1000,
        sent: 10,
    });
    let client = Client::new(
        builder(&server)
            .timeout(ms(300))
            .max_retries(0)
            .build()
            .unwrap(),
    );
    let start = Instant::now();
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(server.token_requests(), 1);
    assert!(start.elapsed() < secs(10), "took {:?}", start.elapsed());
}

/// `deadline_ms` bounds a whole call: no retry is begun whose wait would end past it.
#[test]
fn the_deadline_stops_retries_that_could_not_end_in_time() {
    let server = Server::new(Action::status(503).header("Retry-After", "1"));
    let client = Client::new(
        builder(&server)
            .max_retries(10)
            .retry_max(secs(5))
            .deadline(ms(1500))
            .build()
            .unwrap(),
    );
    let e = err(client.token());
    assert!(matches!(e, Error::Server(_)), "{e:?}");
    // 0 s, 1 s; the next 1 s wait would end at 2 s, past the deadline.
    assert_eq!(server.token_requests(), 2);
}

/// A hung API holds a call no longer than the deadline, whatever timeout_ms says, and the
/// error says which host hung.
#[test]
fn a_hung_api_is_bounded_by_the_deadline_and_named() {
    let tokens = Server::tokens();
    let api = Server::new(Action::Hang);
    let client = Client::new(
        builder_for(&tokens, &api)
            .timeout(secs(30))
            .deadline(ms(400))
            .build()
            .unwrap(),
    );
    let e = err(client.get("/v1/x").send());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("timeout"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", api.port())),
        "{message}"
    );
    assert_eq!(api.request_count(), 1, "no retry past the deadline");
}

/// Each retry is a WARN record (with the `log` facade and the host's handler alike): a host
/// that logs at WARN sees a failing gateway.
#[test]
fn each_retry_is_logged_at_warn() {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    lwolf_auth::unversioned::log::set_handler(
        lwolf_auth::unversioned::log::LevelFilter::Warn,
        |level, message| {
            SEEN.lock().unwrap().push(format!("{level} {message}"));
        },
    );
    let server = Server::tokens();
    server.push(Action::json(503, r#"{"error":"temporarily_unavailable"}"#));
    ok(client(&server).token());
    lwolf_auth::unversioned::log::clear_handler();
    let seen = SEEN.lock().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("WARN token request failed (http status 503); retry 1 of 2")),
        "{seen:?}"
    );
}
