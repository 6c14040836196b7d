//! Token caching, single flight, refresh ahead of expiry, and what a failed refresh does.

use lwolf_test_support::common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use lwolf_auth::{AccessToken, Client, Error};

#[test]
fn a_thousand_calls_make_one_request() {
    let server = Server::tokens();
    let client = client(&server);
    let first = ok(client.token());
    for _ in 0..1000 {
        let t = ok(client.token());
        assert_eq!(t.secret(), first.secret());
        assert_eq!(t.fingerprint(), first.fingerprint());
    }
    // Clones share the cache.
    let clone = client.clone();
    assert_eq!(ok(clone.token()).secret(), first.secret());
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn creating_a_client_does_no_io() {
    let server = Server::tokens();
    let client = client(&server);
    assert!(client.cached_token().is_none());
    thread::sleep(ms(50));
    assert_eq!(server.connections(), 0);
    drop(client);
    assert_eq!(server.connections(), 0);
}

#[test]
fn thirty_two_threads_on_a_cold_cache_share_one_request() {
    let server = Server::new(Action::token("TKN-shared", 3600).after(ms(200)));
    let client = client(&server);
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                ok(client.token()).secret().to_owned()
            })
        })
        .collect();
    let tokens: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(tokens.len(), 32);
    assert!(tokens.iter().all(|t| t == "TKN-shared"), "{tokens:?}");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn waiters_share_a_failure_too() {
    let server = Server::new(
        Action::json(
            401,
            r#"{"error":"invalid_client","error_description":"nope"}"#,
        )
        .after(ms(300)),
    );
    let client = client(&server);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                err(client.token())
            })
        })
        .collect();
    for h in handles {
        let e = h.join().unwrap();
        assert!(matches!(e, Error::InvalidCredentials(_)), "{e:?}");
    }
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn no_lock_is_held_while_a_request_is_in_flight() {
    let server = Server::new(Action::token("TKN-slow", 3600).after(ms(1500)));
    let client = client(&server);
    let fetcher = {
        let client = client.clone();
        thread::spawn(move || ok(client.token()).secret().to_owned())
    };
    server.wait_for_requests(1, secs(10));
    // None of these may wait for the token request.
    assert!(client.cached_token().is_none());
    assert_no_secret(&format!("{client:?}"));
    client.invalidate();
    let tenant = client.for_tenant("other").unwrap();
    assert!(tenant.cached_token().is_none());
    assert!(
        !server.answered(0),
        "the calls above waited for the token request to be answered"
    );
    assert_eq!(fetcher.join().unwrap(), "TKN-slow");
}

#[test]
fn cached_token_and_invalidate() {
    let server = Server::tokens();
    let client = client(&server);
    assert!(
        client.cached_token().is_none(),
        "nothing cached before the first fetch"
    );
    assert_eq!(server.request_count(), 0, "cached_token never fetches");

    let first = ok(client.token());
    let cached = client.cached_token().expect("a cached token");
    assert_eq!(cached.secret(), first.secret());
    assert_eq!(server.token_requests(), 1);

    client.invalidate();
    assert!(client.cached_token().is_none());
    assert_eq!(server.token_requests(), 1, "invalidate does no I/O");
    let second = ok(client.token());
    assert_eq!(
        server.token_requests(),
        2,
        "the call after invalidate fetches"
    );
    assert_ne!(second.secret(), first.secret());
    assert_eq!(second.secret(), issued("t", 2));
    assert_eq!(ok(client.token()).secret(), second.secret());
    assert_eq!(server.token_requests(), 2);
}

/// When the successful attempt was sent, by the wall clock.
fn sent_at(t: &AccessToken) -> SystemTime {
    t.expires_at() - t.lifetime()
}

fn fraction(t: &AccessToken, at: SystemTime) -> f64 {
    at.duration_since(sent_at(t)).unwrap().as_secs_f64() / t.lifetime().as_secs_f64()
}

#[test]
fn refresh_point_is_between_85_and_90_percent_with_jitter() {
    for lifetime in [86_400u64, 600, 4] {
        let server = Server::new(issue_tokens("j", lifetime));
        let client = client(&server);
        let mut fractions = Vec::new();
        for _ in 0..100 {
            client.invalidate();
            let t = ok(client.token());
            assert_eq!(t.lifetime(), Duration::from_secs(lifetime));
            let f = fraction(&t, t.refresh_at());
            assert!(f <= 0.9 + 1e-9, "refresh at {f} of the lifetime, after 90%");
            assert!(
                f >= 0.85 - 1e-9,
                "refresh at {f} of the lifetime, before 85%"
            );
            // Served until expiry less min(60 s, 5% of the lifetime).
            let margin = Duration::from_secs(60).min(t.lifetime().mul_f64(0.05));
            let usable = t.usable_until().duration_since(sent_at(&t)).unwrap();
            let want = t.lifetime() - margin;
            let diff = usable.abs_diff(want);
            assert!(diff < ms(1), "usable for {usable:?}, want {want:?}");
            assert!(t.refresh_at() <= t.usable_until());
            assert!(t.usable_until() < t.expires_at());
            fractions.push(f);
        }
        let distinct: HashSet<u64> = fractions.iter().map(|f| (f * 1e6) as u64).collect();
        assert!(
            distinct.len() > 10,
            "refresh points should be jittered, got {} distinct of 100",
            distinct.len()
        );
        assert_eq!(server.token_requests(), 100);
    }
}

#[test]
fn refresh_ratio_moves_the_refresh_point() {
    let server = Server::new(issue_tokens("r", 1000));
    let client = Client::new(builder(&server).refresh_ratio(0.5).build().unwrap());
    for _ in 0..20 {
        client.invalidate();
        let t = ok(client.token());
        let f = fraction(&t, t.refresh_at());
        assert!((0.45 - 1e-9..=0.5 + 1e-9).contains(&f), "{f}");
    }
}

#[test]
fn lifetime_is_counted_from_the_successful_attempt() {
    let server = Server::tokens();
    server.push(Action::status(503).after(ms(500)));
    let client = client(&server);
    let t = ok(client.token());
    assert_eq!(server.token_requests(), 2);
    let first = server.request(0);
    let second = server.request(1);
    let sent = sent_at(&t);
    assert!(
        sent >= first.wall + ms(500),
        "lifetime counted from the failed attempt, not the one that succeeded"
    );
    assert!(
        sent <= second.wall,
        "the attempt was sent before it arrived"
    );
}

#[test]
fn a_due_token_is_refreshed_and_a_fresh_one_is_not() {
    let server = Server::new(issue_tokens("d", 4));
    let client = client(&server);
    let first = ok(client.token());
    assert_eq!(first.secret(), issued("d", 1));

    // Well before 85% of the lifetime: served from the cache.
    thread::sleep(ms(1000));
    assert!(SystemTime::now() < first.refresh_at());
    assert_eq!(ok(client.token()).secret(), first.secret());
    assert_eq!(server.token_requests(), 1);

    // After 90%: the call that finds it due still gets it, and starts the refresh on a
    // thread of its own, which publishes the new token.
    sleep_until_wall(sent_at(&first) + first.lifetime().mul_f64(0.9));
    assert_eq!(ok(client.token()).secret(), first.secret());
    wait_for_token(&client, &issued("d", 2));
    assert_eq!(server.token_requests(), 2);
    assert_eq!(ok(client.token()).secret(), issued("d", 2));
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn callers_are_not_blocked_while_one_refreshes() {
    let server = Server::tokens();
    server.push(Action::token("TKN-old", 20));
    let client = Client::new(builder(&server).refresh_ratio(0.1).build().unwrap());
    let old = ok(client.token());
    assert_eq!(old.secret(), "TKN-old");

    // The refresh will be answered after 1.5 s.
    server.push(Action::token("TKN-new", 3600).after(ms(1500)));
    sleep_until_wall(old.refresh_at());
    // The caller that finds it due is not blocked either: the refresh has its own thread.
    assert_eq!(ok(client.token()).secret(), "TKN-old");
    server.wait_for_requests(2, secs(10));
    let refresh_index = 1;
    assert!(!server.answered(refresh_index));

    let others: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                (0..10)
                    .map(|_| ok(client.token()).secret().to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in others {
        let got = h.join().unwrap();
        assert!(got.iter().all(|t| t == "TKN-old"), "{got:?}");
    }
    assert!(
        !server.answered(refresh_index),
        "the other callers returned only after the refresh was answered: they waited on it"
    );
    assert_eq!(server.token_requests(), 2, "only one refresh in flight");

    wait_for_token(&client, "TKN-new");
    // The server marks an answer done after its last write, which the client may read
    // first: give that bookkeeping a moment on a loaded machine.
    let marked = Instant::now();
    while !server.answered(refresh_index) {
        assert!(
            marked.elapsed() < secs(5),
            "the refresh was never marked answered"
        );
        thread::sleep(ms(5));
    }
    assert_eq!(ok(client.token()).secret(), "TKN-new");
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn an_expired_token_is_never_served() {
    let server = Server::new(issue_tokens("e", 1));
    let client = client(&server);
    let first = ok(client.token());
    thread::sleep(ms(1100));
    assert!(
        client.cached_token().is_none(),
        "an expired token is not cached_token()"
    );
    let second = ok(client.token());
    assert_eq!(server.token_requests(), 2);
    assert_ne!(second.secret(), first.secret());

    // And when the endpoint then fails, the error comes back, not the dead token.
    let server = Server::new(Action::token("TKN-short", 1));
    let client = Client::new(builder(&server).max_retries(0).build().unwrap());
    ok(client.token());
    server.set_default(Action::status(500));
    thread::sleep(ms(1100));
    let e = err(client.token());
    assert!(matches!(e, Error::Server(_)), "{e:?}");
    assert!(client.cached_token().is_none());
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn expired_token_with_waiting_callers_is_not_served_either() {
    // Callers finding no usable token wait for the single request and share its outcome.
    let server = Server::new(Action::token("TKN-short", 1));
    let client = Client::new(builder(&server).max_retries(0).build().unwrap());
    ok(client.token());
    thread::sleep(ms(1100));
    // Slow enough that all four callers are waiting before the one request is answered.
    server.set_default(Action::status(503).after(ms(1500)));
    let start = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (client, start) = (client.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                client.token()
            })
        })
        .collect();
    for h in handles {
        let e = err(h.join().unwrap());
        assert!(matches!(e, Error::Server(_)), "{e:?}");
    }
    // The first token, then one request for all four callers.
    assert_eq!(server.token_requests(), 2, "no single flight");
}

#[test]
fn a_failed_refresh_keeps_the_valid_token_and_backs_off() {
    let server = Server::new(Action::status(500));
    server.push(Action::token("TKN-old", 20));
    let client = Client::new(
        builder(&server)
            .refresh_ratio(0.06)
            .max_retries(0)
            .retry_base(ms(1000))
            .retry_max(ms(8000))
            .build()
            .unwrap(),
    );
    let old = ok(client.token());
    sleep_until_wall(old.refresh_at());

    // The refresh fails: not an error, the current token keeps being served.
    let t = ok(client.token());
    assert_eq!(t.secret(), "TKN-old");
    server.wait_for_requests(2, secs(10));
    let failed_at = server.request(1).at;

    // Within the backoff (1 s), calls do not hit the server.
    for _ in 0..50 {
        assert_eq!(ok(client.token()).secret(), "TKN-old");
    }
    if failed_at.elapsed() < ms(1000) {
        assert_eq!(
            server.token_requests(),
            2,
            "a call within the backoff retried"
        );
    } else {
        // A very slow machine may have crossed the end of the backoff: one more at most.
        assert!(
            server.token_requests() <= 3,
            "every call retried the refresh"
        );
    }

    // After it, another attempt is made; it fails again, and the backoff doubles (2 s).
    thread::sleep((failed_at + ms(1500)).saturating_duration_since(Instant::now()));
    assert_eq!(ok(client.token()).secret(), "TKN-old");
    server.wait_for_requests(3, secs(10));
    let failed_again = server.request(2).at;
    thread::sleep((failed_again + ms(1300)).saturating_duration_since(Instant::now()));
    assert_eq!(ok(client.token()).secret(), "TKN-old");
    assert_eq!(
        server.token_requests(),
        3,
        "the second backoff should be twice the first"
    );

    // Once it has passed, the refresh succeeds and the new token is served.
    server.set_default(Action::token("TKN-new", 3600));
    thread::sleep((failed_again + ms(2500)).saturating_duration_since(Instant::now()));
    assert_eq!(ok(client.token()).secret(), "TKN-old");
    wait_for_token(&client, "TKN-new");
    assert_eq!(server.token_requests(), 4);
    assert_eq!(ok(client.token()).secret(), "TKN-new");
    assert_eq!(server.token_requests(), 4);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let server = Server::tokens();
    let builder = builder(&server);
    assert_no_secret(&format!("{builder:?}"));
    let config = builder.build().unwrap();
    assert_no_secret(&format!("{config:?}"));
    let client = Client::new(config.clone());
    assert_no_secret(&format!("{client:?}"));
    let token = ok(client.token());
    assert_no_secret(&format!("{token:?}"));
    assert_no_secret(&format!("{token}"));
    assert_no_secret(&format!("{client:?}"));
    assert_no_secret(&format!("{:?}", client.config()));
    assert!(format!("{client:?}").contains(token.fingerprint()));
    assert_ne!(token.fingerprint(), token.secret());
    let tenant = client.for_tenant("tenant-1").unwrap();
    ok(tenant.token());
    assert_no_secret(&format!("{tenant:?}"));
}

/// After a failed token request, callers with no usable token get that failure at once until
/// the shared backoff has passed: 64 callers in a loop cannot hammer a failing gateway, even
/// with no retries of their own.
#[test]
fn a_failing_gateway_is_not_hammered_by_callers_without_a_token() {
    let server = Server::new(Action::status(503));
    let client = Client::new(
        builder(&server)
            .max_retries(0)
            .retry_base(ms(500))
            .retry_max(ms(30_000))
            .build()
            .unwrap(),
    );
    let start = Arc::new(Barrier::new(64));
    let deadline = Instant::now() + ms(650);
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let (client, start) = (client.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    let e = err(client.token());
                    assert!(matches!(e, Error::Server(_)), "{e:?}");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let calls: u64 = callers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(calls > 1000, "only {calls} calls: the test did not loop");
    // The first request, and at most one after its 500 ms backoff (the next one is 1 s).
    let requests = server.token_requests();
    assert!((1..=2).contains(&requests), "{requests} token requests");
}
