//! The fleet cache (`cache_url`) against a real `redis-server` on loopback: processes of
//! several "hosts" (each its own `cache_dir`) share one token; Redis holds nothing
//! readable; and no Redis trouble is ever an outage.
//!
//! Needs `redis-server` (Debian's `redis-server`): without it the tests fail, saying so.
//! The process tests run the `lwolf` command-line tool as the fleet's processes.

#![cfg(unix)]

mod at_rest;
mod common;
mod ffi_support;
mod redis_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use common::{issue_tokens, Action, Server, TempDir, CLIENT_ID, SECRET, TOKEN_MARK};
use ffi_support::clean_command;
use lwolf_auth::{Client, ConfigBuilder, TokenSource};
use redis_support::Redis;

const LWOLF: &str = env!("CARGO_BIN_EXE_lwolf");

// ---------------------------------------------------------------------------------------------
// Helpers

/// A token endpoint that answers every request with a new token after `delay`.
fn slow_tokens(delay: Duration) -> Server {
    let counter = Arc::new(AtomicUsize::new(0));
    Server::new(Action::dynamic(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Action::token(&format!("{TOKEN_MARK}fleet-{n}"), 86_400).after(delay)
    }))
}

fn builder(server: &Server, cache_url: &str) -> ConfigBuilder {
    common::builder(server)
        .cache_url(cache_url)
        .max_retries(0)
        .timeout(Duration::from_secs(5))
}

/// The entry of `server`'s identity with `secret`, as the format says it is named.
fn entry_of(server: &Server, secret: &str) -> at_rest::Entry {
    at_rest::Entry::of(&at_rest::Who {
        token_url: &server.token_url(),
        client_id: CLIENT_ID,
        audience: lwolf_auth::DEFAULT_AUDIENCE,
        lwt_client_id: None,
        secret,
    })
}

/// `lwolf token --json` as one process of the fleet on the "host" whose cache is `dir`.
fn fleet_process(server: &Server, cache_url: &str, dir: Option<&Path>) -> Command {
    lwolf(&["token", "--json"], server, cache_url, dir)
}

/// `lwolf <args>` as one process of the fleet on the "host" whose cache is `dir`.
fn lwolf(args: &[&str], server: &Server, cache_url: &str, dir: Option<&Path>) -> Command {
    let mut cmd = clean_command(LWOLF);
    cmd.args(args)
        .env("LWOLF_TOKEN_URL", server.token_url())
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_CACHE_URL", cache_url)
        .env(
            "LWOLF_CACHE_DIR",
            dir.map_or("".into(), |d| d.as_os_str().to_owned()),
        )
        .env("LWOLF_TIMEOUT_MS", "5000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Each process's `(fingerprint, source)`, once all have exited successfully.
fn outcomes(children: Vec<Child>) -> Vec<(String, String)> {
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a fleet process failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (
                json["fingerprint"].as_str().unwrap().to_owned(),
                json["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `hosts` hosts of `per_host` processes each, all started at once.
fn run_fleet(
    server: &Server,
    cache_url: &str,
    hosts: &[&Path],
    per_host: usize,
) -> Vec<(String, String)> {
    let mut children = Vec::new();
    for _ in 0..per_host {
        for host in hosts {
            children.push(
                fleet_process(server, cache_url, Some(host))
                    .spawn()
                    .unwrap(),
            );
        }
    }
    outcomes(children)
}

/// What the library logged, for the tests to search (by a port or name of their own: the
/// tests of this file run in parallel, and the handler is the process's).
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        lwolf_auth::log::set_handler(log::LevelFilter::Trace, |level, message| {
            LOGS.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{level} {message}"));
        });
    });
}

fn logged(needle: &str, also: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle) && l.contains(also))
        .cloned()
        .collect()
}

/// A TCP server on loopback that accepts connections and counts them, and answers each
/// with `reply` (nothing at all, for `None`: a server that hangs).
struct FakeRedis {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl FakeRedis {
    fn start(reply: Option<&'static [u8]>) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    match reply {
                        Some(bytes) => {
                            let _ = conn.write_all(bytes);
                        }
                        None => std::thread::sleep(Duration::from_secs(30)),
                    }
                });
            }
        });
        FakeRedis { port, accepted }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A TCP proxy to `target` that holds each chunk for the current delay (in ms) before
/// passing it on: Redis made slow on demand.
struct DelayingProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    accepted: Arc<AtomicUsize>,
}

impl DelayingProxy {
    fn start(target: u16) -> DelayingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (delay, count) = (Arc::clone(&delay_ms), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let delay = Arc::clone(&delay);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        DelayingProxy {
            port,
            delay_ms,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// One token for the fleet

#[test]
fn thirty_cold_processes_on_three_hosts_make_one_token_request() {
    let redis = Redis::start();
    // Slow enough that all thirty are running before the first token arrives.
    let server = slow_tokens(Duration::from_millis(300));
    let tmp = TempDir::new("fleet30");
    let hosts: Vec<_> = (0..3).map(|i| tmp.join(&format!("host{i}"))).collect();
    let hosts: Vec<&Path> = hosts.iter().map(|p| p.as_path()).collect();

    let cold = run_fleet(&server, &redis.url(), &hosts, 10);
    assert_eq!(cold.len(), 30);
    assert_eq!(server.token_requests(), 1, "cold fleet: {cold:?}");
    assert!(cold.iter().all(|(f, _)| *f == cold[0].0), "{cold:?}");
    let from =
        |runs: &[(String, String)], source: &str| runs.iter().filter(|(_, s)| s == source).count();
    assert_eq!(from(&cold, "token endpoint"), 1, "{cold:?}");
    assert!(
        from(&cold, "cache_url") >= 2,
        "the other hosts' processes: {cold:?}"
    );

    // A warm fleet: new hosts read Redis; the old ones their own files. No token request.
    let fresh: Vec<_> = (3..6).map(|i| tmp.join(&format!("host{i}"))).collect();
    let fresh: Vec<&Path> = fresh.iter().map(|p| p.as_path()).collect();
    let warm = run_fleet(&server, &redis.url(), &fresh, 10);
    assert_eq!(server.token_requests(), 1, "warm fleet: {warm:?}");
    assert!(warm.iter().all(|(f, _)| *f == cold[0].0));
    assert_eq!(from(&warm, "token endpoint"), 0);
    assert!(
        from(&warm, "cache_url") >= 3,
        "each new host reads Redis once: {warm:?}"
    );
    let again = run_fleet(&server, &redis.url(), &hosts, 2);
    assert_eq!(from(&again, "cache_dir"), 6, "{again:?}");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn without_cache_url_each_host_fetches_its_own() {
    let server = slow_tokens(Duration::from_millis(300));
    let tmp = TempDir::new("fleet-no-url");
    let hosts: Vec<_> = (0..3).map(|i| tmp.join(&format!("host{i}"))).collect();
    let hosts: Vec<&Path> = hosts.iter().map(|p| p.as_path()).collect();
    let runs = run_fleet(&server, "", &hosts, 5);
    assert_eq!(runs.len(), 15);
    assert_eq!(server.token_requests(), 3, "one per host: {runs:?}");
}

#[test]
fn nothing_readable_is_stored_in_redis() {
    let redis = Redis::start();
    let server = Server::tokens();
    let client = Client::new(builder(&server, &redis.url()).build().unwrap());
    let token = client.token().unwrap();
    assert_eq!(token.source(), TokenSource::TokenEndpoint);

    let dump = redis.dump();
    assert_eq!(
        dump.len(),
        1,
        "only the entry, its lock freed: {:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let (key, value) = &dump[0];
    let entry = entry_of(&server, SECRET);
    assert_eq!(*key, format!("lwolf-auth:{}", entry.name));
    for (what, needle) in [
        ("token", token.secret()),
        ("secret", SECRET),
        ("client id", CLIENT_ID),
    ] {
        assert!(!key.contains(needle), "the key shows the {what}");
        assert!(
            !value.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the value shows the {what}"
        );
    }
    // The format is what the documentation says: it opens, with the credential only.
    let json = entry
        .open(value)
        .expect("the value does not open as documented");
    assert_eq!(json["access_token"], token.secret());
    assert!(entry_of(&server, "another secret").open(value).is_none());
    // And Redis lets it go when it is of no more use.
    let mut conn = redis.conn();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 3600 * 1000, "{ttl_ms}");

    // Another process (here: another client, so another memory) reads it.
    let other = Client::new(builder(&server, &redis.url()).build().unwrap());
    let shared = other.token().unwrap();
    assert_eq!(shared.secret(), token.secret());
    assert_eq!(shared.source(), TokenSource::CacheUrl);
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn a_rotated_secret_gets_its_own_token() {
    let redis = Redis::start();
    let server = Server::tokens();
    let old = Client::new(builder(&server, &redis.url()).build().unwrap());
    let old_token = old.token().unwrap();
    let rotated = Client::new(
        builder(&server, &redis.url())
            .client_secret("the-rotated-secret")
            .build()
            .unwrap(),
    );
    let new_token = rotated.token().unwrap();
    assert_ne!(
        new_token.secret(),
        old_token.secret(),
        "served the old secret's token"
    );
    assert_eq!(new_token.source(), TokenSource::TokenEndpoint);
    assert_eq!(server.token_requests(), 2);
    let names: Vec<_> = redis.dump().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&format!(
        "lwolf-auth:{}",
        entry_of(&server, "the-rotated-secret").name
    )));
}

#[test]
fn tenants_and_tokens_rejected_by_the_api_follow_the_fleet() {
    let redis = Redis::start();
    let server = Server::tokens();
    let a = Client::new(builder(&server, &redis.url()).build().unwrap());
    let first = a.token().unwrap();
    let tenant = a.for_tenant("customer-7").unwrap();
    assert_ne!(tenant.token().unwrap().secret(), first.secret());
    assert_eq!(redis.dump().len(), 2);
    // A token the API turns away is dropped for the whole fleet.
    assert!(a.reject_token(first.secret()));
    let b = Client::new(builder(&server, &redis.url()).build().unwrap());
    let renewed = b.token().unwrap();
    assert_ne!(
        renewed.secret(),
        first.secret(),
        "the fleet kept a rejected token"
    );
    assert_eq!(server.token_requests(), 3);
    // And invalidate() empties the entry.
    b.invalidate();
    let c = Client::new(builder(&server, &redis.url()).build().unwrap());
    assert_eq!(c.token().unwrap().source(), TokenSource::TokenEndpoint);
}

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
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
    for garbage in [
        &b"\x01not sealed at all, but long enough to look sealed"[..],
        b"",
        b"\x02",
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
    assert!(!logged(
        "ignoring the fleet cache's entry",
        &redis.port().to_string()
    )
    .is_empty());
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

// ---------------------------------------------------------------------------------------------
// The lock

#[test]
fn a_killed_lock_holder_costs_the_others_at_most_the_lock_expiry() {
    let redis = Redis::start();
    // The first token request never gets an answer: its process holds the fleet's lock.
    let server = Server::new(issue_tokens("after-kill", 86_400));
    server.push(Action::Hang);
    let mut holder = fleet_process(&server, &redis.url(), None)
        .env("LWOLF_TIMEOUT_MS", "1500")
        .spawn()
        .unwrap();
    server.wait_for_requests(1, Duration::from_secs(10));
    let entry = entry_of(&server, SECRET);
    let lock = format!("lwolf-auth:{}:lock", entry.name);
    assert!(
        redis.dump().iter().any(|(k, _)| *k == lock),
        "the holder took no lock"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // The next process waits for the lock's expiry (1.5 s), then fetches and shares.
    let next = fleet_process(&server, &redis.url(), None)
        .env("LWOLF_TIMEOUT_MS", "1500")
        .spawn()
        .unwrap();
    let runs = outcomes(vec![next]);
    assert_eq!(runs[0].1, "token endpoint");
    assert_eq!(server.token_requests(), 2);
    assert!(
        !redis.dump().iter().any(|(k, _)| *k == lock),
        "the lock was not freed"
    );
    let later = outcomes(vec![fleet_process(&server, &redis.url(), None)
        .spawn()
        .unwrap()]);
    assert_eq!(later[0], (runs[0].0.clone(), "cache_url".to_owned()));
}

#[test]
fn a_stuck_lock_holder_delays_the_others_by_timeout_ms_only() {
    capture_logs();
    let redis = Redis::start();
    let server = Server::new(issue_tokens("stuck", 86_400));
    let entry = entry_of(&server, SECRET);
    // A holder that never lets go (and whose lock outlives the wait).
    let lock = format!("lwolf-auth:{}:lock", entry.name);
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query(&mut redis.conn())
        .unwrap();
    let client = Client::new(
        builder(&server, &redis.url())
            .timeout(Duration::from_millis(700))
            .build()
            .unwrap(),
    );
    let token = client.token().unwrap();
    assert_eq!(token.source(), TokenSource::TokenEndpoint);
    assert_eq!(server.token_requests(), 1);
    assert_eq!(logged("held the token lock for over 700 ms", "").len(), 1);
    // Its token is shared all the same, and the other's lock left alone.
    let dump = redis.dump();
    assert!(dump.iter().any(|(k, v)| *k == lock && v == b"someone-else"));
    assert_eq!(dump.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// DPoP and the C ABI

#[test]
fn a_dpop_bound_token_is_shared_only_with_holders_of_its_key() {
    let redis = Redis::start();
    let sandbox = lwolf_auth::sandbox::Sandbox::start().unwrap();
    let tmp = TempDir::new("fleet-dpop");
    let key_file = |name: &str| {
        openssl_key(
            &tmp.join(name),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        )
    };
    let (k1, k2) = (key_file("k1.pem"), key_file("k2.pem"));
    let client = |key: Option<&Path>| {
        let mut b = sandbox.config_builder().cache_url(redis.url()).dpop(true);
        if let Some(key) = key {
            b = b.dpop_key_file(key);
        }
        Client::new(b.build().unwrap())
    };
    let a = client(Some(&k1)).token().unwrap();
    assert_eq!(a.token_type(), lwolf_auth::TokenType::Dpop);
    let b = client(Some(&k1)).token().unwrap();
    assert_eq!(
        (b.secret(), b.source()),
        (a.secret(), TokenSource::CacheUrl)
    );
    let c = client(Some(&k2)).token().unwrap();
    assert_ne!(c.secret(), a.secret(), "shared with another key's holder");
    // A key made in memory is this process's alone: its tokens are not written.
    let entries = redis.dump().len();
    let d = client(None).token().unwrap();
    assert_ne!(d.secret(), a.secret());
    assert_eq!(redis.dump().len(), entries);
    // k1 once, k2 once, the made key once.
    assert_eq!(sandbox.token_requests(), 3);
    // And the bound token works for its other holder.
    assert_eq!(
        client(Some(&k1))
            .get("/v1/offices")
            .send()
            .unwrap()
            .status(),
        200
    );
}

/// A new private key made by `openssl genpkey <args>` at `path`.
fn openssl_key(path: &Path, args: &[&str]) -> std::path::PathBuf {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(path)
        .output()
        .expect("openssl is needed to make keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_owned()
}

#[test]
fn a_private_key_is_a_credential_of_its_own() {
    let redis = Redis::start();
    let server = Server::tokens();
    let tmp = TempDir::new("fleet-pkjwt");
    let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    let (k1, k2) = (
        openssl_key(&tmp.join("k1.pem"), &rsa),
        openssl_key(&tmp.join("k2.pem"), &rsa),
    );
    let client = |key: &Path| {
        let mut b = common::builder(&server).cache_url(redis.url());
        b.set("client_auth", "private_key_jwt").unwrap();
        Client::new(b.private_key_file(key).build().unwrap())
    };
    let a = client(&k1).token().unwrap();
    let b = client(&k1).token().unwrap();
    assert_eq!(
        (b.secret(), b.source()),
        (a.secret(), TokenSource::CacheUrl)
    );
    // Another key (a rotated one): its own entry, its own token.
    let c = client(&k2).token().unwrap();
    assert_ne!(c.secret(), a.secret());
    assert_eq!(server.token_requests(), 2);
    assert_eq!(redis.dump().len(), 2);
}

#[test]
fn the_c_abi_shares_through_cache_url() {
    let redis = Redis::start();
    let sandbox = lwolf_auth::sandbox::Sandbox::start().unwrap();
    let (token_url, cache_url) = (sandbox.token_url(), redis.url());
    let settings = [
        ("client_id", sandbox.client_id()),
        ("client_secret", sandbox.client_secret()),
        ("token_url", token_url.as_str()),
        ("cache_url", cache_url.as_str()),
    ];
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            let client = c_calls::client(&settings);
            let token = c_calls::token(client).unwrap();
            // SAFETY: a live client, freed once.
            unsafe { lwolf_auth::ffi::lwolf_client_free(client) };
            token
        })
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(sandbox.token_requests(), 1);
    // A bad URL is refused when the client is made, as every setting is.
    let cfg = c_calls::config(&[
        ("client_id", "x"),
        ("client_secret", "y"),
        ("cache_url", "ftp://nowhere"),
    ]);
    let mut client = std::ptr::null_mut();
    // SAFETY: a live config and a valid out-pointer; the config is freed once.
    let status = unsafe { lwolf_auth::ffi::lwolf_client_new(cfg, &mut client) };
    unsafe { lwolf_auth::ffi::lwolf_config_free(cfg) };
    assert_eq!(status, lwolf_auth::ffi::lwolf_status::LWOLF_ERR_CONFIG);
    assert!(client.is_null());
    assert!(
        c_calls::last_error().contains("cache_url"),
        "{}",
        c_calls::last_error()
    );
}

mod c_calls;

// ---------------------------------------------------------------------------------------------
// The command-line tool, and the dependency tree

#[test]
fn lwolf_info_says_which_layer_served_the_token() {
    let redis = Redis::start();
    let server = Server::tokens();
    let tmp = TempDir::new("fleet-info");
    let info = |dir: Option<&Path>| {
        let out = lwolf(&["info"], &server, &redis.url(), dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).unwrap();
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
        };
        (field("served_by"), field("cache_url"))
    };
    let host = tmp.join("host");
    assert_eq!(info(None), ("token endpoint".into(), redis.url()));
    assert_eq!(info(Some(&host)).0, "cache_url");
    assert_eq!(info(Some(&host)).0, "cache_dir");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn no_async_runtime_is_in_the_tree() {
    let out = Command::new(ffi_support::cargo())
        .args(["tree", "--edges", "normal", "--prefix", "none", "--offline"])
        .current_dir(ffi_support::repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.lines().any(|l| l.starts_with("redis v")), "{tree}");
    for runtime in [
        "tokio ",
        "async-std ",
        "smol ",
        "async-io ",
        "futures-executor ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(runtime)),
            "{runtime}in the tree:\n{tree}"
        );
    }
}
