//! The fleet cache (`cache_url`) when Redis misbehaves: unreachable, hung, slow, killed, not
//! Redis, full, the wrong password, garbage in the entry, an unknown CA. Never an outage: every
//! call gets a token, and the log says what happened.
//!
//! Needs `redis-server` (Debian's `redis-server`): without it the tests fail, saying so.

#![cfg(unix)]

use lwolf_test_support::common;
use lwolf_test_support::fleet_support;
use lwolf_test_support::redis_support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, TempDir, CLIENT_ID, SECRET};
use fleet_support::*;
use lwolf_auth::{Client, TokenSource};
use redis_support::Redis;

// ---------------------------------------------------------------------------------------------
// Redis trouble is never an outage

#[test]
fn an_unreachable_redis_is_tried_once_a_minute() {
    capture_logs();
    let server = Server::tokens();
    // A server that accepts and never answers: the worst kind of unreachable.
    let hung = FakeRedis::start(None);
    for i in 0..3 {
        let client = Client::new(builder(&server, &hung.url()).build().unwrap());
        let token = client.token().unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(token.source(), TokenSource::TokenEndpoint);
    }
    assert_eq!(server.token_requests(), 3);
    assert_eq!(
        hung.accepted.load(Ordering::SeqCst),
        1,
        "one connect per process per minute"
    );
    let port = hung.port.to_string();
    let warnings = logged(&port, "going on without it for 60 s");
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    // Nothing listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("redis://127.0.0.1:{port}");
    let client = Client::new(builder(&server, &url).build().unwrap());
    client.token().unwrap();
    assert_eq!(logged(&port.to_string(), "connecting failed").len(), 1);
}

#[test]
fn a_slow_redis_is_left_alone() {
    capture_logs();
    let redis = Redis::start();
    let proxy = DelayingProxy::start(redis.port());
    let server = Server::tokens();
    let first = Client::new(builder(&server, &proxy.url()).build().unwrap())
        .token()
        .unwrap();
    let second = Client::new(builder(&server, &proxy.url()).build().unwrap())
        .token()
        .unwrap();
    assert_eq!(second.secret(), first.secret());
    assert_eq!(second.source(), TokenSource::CacheUrl);

    // Slower than the bound of a Redis step (1 s).
    proxy.delay_ms.store(3000, Ordering::SeqCst);
    let before = proxy.accepted.load(Ordering::SeqCst);
    let slow = Client::new(builder(&server, &proxy.url()).build().unwrap());
    let token = slow.token().unwrap();
    assert_eq!(token.source(), TokenSource::TokenEndpoint);
    assert_eq!(server.token_requests(), 2);
    assert_eq!(
        logged(&proxy.port.to_string(), "going on without it").len(),
        1
    );
    // Within the minute, the next client does not try it.
    Client::new(builder(&server, &proxy.url()).build().unwrap())
        .token()
        .unwrap();
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_redis_killed_mid_run_is_no_outage() {
    capture_logs();
    let mut redis = Redis::start();
    let server = Server::tokens();
    let url = redis.url();
    let warm = Client::new(builder(&server, &url).build().unwrap());
    warm.token().unwrap();
    let failures = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    // Calls before the kill, and after it (counted from when it happened).
    let after_kill = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server_url, url) = (server.token_url(), url.clone());
            let (failures, calls) = (Arc::clone(&failures), Arc::clone(&calls));
            let (after_kill, killed) = (Arc::clone(&after_kill), Arc::clone(&killed));
            std::thread::spawn(move || {
                while after_kill.load(Ordering::SeqCst) < 20 {
                    let client = Client::new(
                        lwolf_auth::Config::builder()
                            .client_id(CLIENT_ID)
                            .client_secret(SECRET)
                            .token_url(&server_url)
                            .cache_url(&url)
                            .max_retries(0)
                            .build()
                            .unwrap(),
                    );
                    let was_killed = killed.load(Ordering::SeqCst);
                    calls.fetch_add(1, Ordering::SeqCst);
                    if client.token().is_err() {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    if was_killed {
                        after_kill.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    while calls.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }
    redis.kill();
    killed.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(calls.load(Ordering::SeqCst) >= 40);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "a dead Redis failed a call"
    );
    assert!(!logged(&redis.port().to_string(), "going on without it").is_empty());
}

#[test]
fn garbage_in_the_entry_is_ignored_and_replaced() {
    capture_logs();
    let redis = Redis::start();
    let server = Server::tokens();
    let entry = entry_of(&server, SECRET);
    let key = format!("lwolf-auth:{}", entry.name);
    let mut conn = redis.conn();
    // Larger than any value the library reads (80 KiB).
    let oversized = vec![1u8; 100 * 1024];
    for garbage in [
        &b"\x01not sealed at all, but long enough to look sealed"[..],
        b"",
        b"\x02",
        &oversized,
    ] {
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(garbage)
            .query(&mut conn)
            .unwrap();
        let client = Client::new(builder(&server, &redis.url()).build().unwrap());
        let token = client.token().unwrap();
        assert_eq!(token.source(), TokenSource::TokenEndpoint);
        let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        assert_eq!(
            entry.open(&value).unwrap()["access_token"],
            token.secret(),
            "not replaced"
        );
    }
    let port = redis.port().to_string();
    assert!(!logged("ignoring the fleet cache's entry", &port).is_empty());
    assert!(!logged("the reply is too large", &port).is_empty());
    // The wrong type of key: an error from Redis, carried on through.
    let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(&key)
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let client = Client::new(builder(&server, &redis.url()).build().unwrap());
    client.token().unwrap();
    assert!(!logged(&redis.port().to_string(), "WRONGTYPE").is_empty());
}

#[test]
fn a_server_that_is_not_redis_is_no_outage() {
    capture_logs();
    let server = Server::tokens();
    let http = FakeRedis::start(Some(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    ));
    let client = Client::new(builder(&server, &http.url()).build().unwrap());
    assert_eq!(client.token().unwrap().source(), TokenSource::TokenEndpoint);
    assert_eq!(
        logged(&http.port.to_string(), "going on without it").len(),
        1
    );
}

#[test]
fn a_full_redis_is_no_outage() {
    capture_logs();
    let redis = Redis::start_with(&["--maxmemory", "1", "--maxmemory-policy", "noeviction"]);
    let server = Server::tokens();
    let client = Client::new(builder(&server, &redis.url()).build().unwrap());
    assert_eq!(client.token().unwrap().source(), TokenSource::TokenEndpoint);
    assert!(!logged(&redis.port().to_string(), "OOM").is_empty());
    assert!(redis.dump().is_empty());
}

#[test]
fn passwords_are_used_and_never_shown() {
    capture_logs();
    let password = "r3dis-PASSWORD-never-shown";
    let redis = Redis::start_with(&["--requirepass", password]);
    let server = Server::tokens();
    let port = redis.port();
    // Right: shared.
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let config = builder(&server, &url).build().unwrap();
    assert_eq!(
        config.cache_url(),
        Some(format!("redis://:***@127.0.0.1:{port}").as_str())
    );
    assert!(!format!("{config:?}").contains(password));
    assert!(!format!("{:?}", builder(&server, &url)).contains(password));
    Client::new(config).token().unwrap();
    let second = Client::new(builder(&server, &url).build().unwrap())
        .token()
        .unwrap();
    assert_eq!(second.source(), TokenSource::CacheUrl);
    // Wrong, and missing: carried on without.
    let wrong = format!("redis://:not-{password}@127.0.0.1:{port}");
    assert_eq!(
        Client::new(builder(&server, &wrong).build().unwrap())
            .token()
            .unwrap()
            .source(),
        TokenSource::TokenEndpoint
    );
    assert!(logged(&port.to_string(), "")
        .iter()
        .all(|l| !l.contains(password)));
    assert!(!logged(&port.to_string(), "going on without it").is_empty());
}

#[test]
fn bad_cache_urls_are_config_errors() {
    let server = Server::tokens();
    for bad in [
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "redis://:pw-SHOWN@[::1",
    ] {
        let e = builder(&server, bad).build().unwrap_err();
        assert!(matches!(e, lwolf_auth::Error::Config(_)), "{bad}: {e:?}");
        assert!(!e.to_string().contains("pw-SHOWN"), "{e}");
    }
    let mut b = common::builder(&server);
    b.set("cache_url", "redis://127.0.0.1:1").unwrap();
    assert_eq!(b.build().unwrap().cache_url(), Some("redis://127.0.0.1:1"));
    b.set("cache_url", "").unwrap();
    assert_eq!(b.build().unwrap().cache_url(), None);
}

#[test]
fn rediss_trusts_the_bundled_roots_plus_ca_file_only() {
    capture_logs();
    let pki = common::TestPki::new();
    let redis = Redis::start_tls(&pki.server_cert_pem, &pki.server_key_pem);
    let server = Server::tokens();
    let tmp = TempDir::new("fleet-tls");
    let ca = tmp.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = redis.tls_url("localhost");
    let trusting = || Client::new(builder(&server, &url).ca_file(&ca).build().unwrap());
    let first = trusting().token().unwrap();
    let second = trusting().token().unwrap();
    assert_eq!(
        (second.secret(), second.source()),
        (first.secret(), TokenSource::CacheUrl)
    );
    assert_eq!(server.token_requests(), 1);
    // The values went over TLS to the same server.
    assert_eq!(redis.dump().len(), 1);

    // Without the CA the certificate is unknown: carried on without Redis.
    let untrusting = Client::new(
        builder(&server, &redis.tls_url("127.0.0.1"))
            .build()
            .unwrap(),
    );
    assert_eq!(
        untrusting.token().unwrap().source(),
        TokenSource::TokenEndpoint
    );
    let port = redis.tls_url("127.0.0.1");
    let port = port.rsplit(':').next().unwrap();
    assert!(!logged(&format!("127.0.0.1:{port}"), "going on without it").is_empty());
}
