//! Stress and concurrency: many threads share one client against a loopback server
//! (`tests/common`) that issues 2-second tokens and injects faults on the token endpoint
//! (500s, resets, a delay on every request) and on the API (500s, resets, delays, the odd
//! 401). The server keeps the books:
//!
//! - every token it issued and when it expires (by its own clock, from when it issued it,
//!   which is after the client sent the request: the client's count is never later);
//! - every API request's bearer token: none may be unknown or expired on arrival;
//! - how many token requests were in flight at once: never more than one.
//!
//! And every thread must finish within a bound (no deadlock). Once in Rust (64 threads),
//! once through the C ABI (`examples-c/stress.c`, 32 pthreads, built by its Makefile
//! against the release library as `tests/c_abi.rs` builds it). Run with `--nocapture` for
//! the figures.

use lwolf_test_support::common;
use lwolf_test_support::ffi_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use lwolf_auth::Client;

/// The tokens' lifetime, as `expires_in`.
const TOKEN_SECS: u64 = 2;
const API_PATH: &str = "/backoffice/v1/x";
/// How long each thread keeps calling, at most.
const RUN_FOR: Duration = Duration::from_secs(4);
/// Calls per thread, at most.
const MAX_CALLS: usize = 10_000;
/// Every this-many-th call of a thread is an API request; the others are `token()`.
const REQUEST_EVERY: usize = 20;
/// Past `RUN_FOR`, how long the threads get to finish before it counts as a deadlock.
const JOIN_GRACE: Duration = Duration::from_secs(60);

/// The two stress tests take turns: on a 2-core machine they would only slow each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the server saw.
#[derive(Default)]
struct Books {
    /// Token -> when it expires, by the server's clock.
    issued: Mutex<HashMap<String, Instant>>,
    token_requests: AtomicUsize,
    tokens_issued: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    token_faults: AtomicUsize,
    api_requests: AtomicUsize,
    api_faults: AtomicUsize,
    /// API requests whose token had expired on arrival, and by how much at most (µs).
    expired: AtomicUsize,
    most_late_us: AtomicU64,
    /// API requests with no bearer token, or one the server never issued.
    unknown: AtomicUsize,
    random: AtomicU64,
}

impl Books {
    /// A deterministic pseudo-random number (splitmix64 of a counter).
    fn random(&self) -> u64 {
        let mut z = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Answers the token endpoint: 5-30 ms late always (so that overlapping requests would
    /// overlap here), 1 in 4 a 500, 1 in 8 a reset, else a new token.
    fn token(&self) -> Action {
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let r = self.random();
        thread::sleep(ms(5 + r % 26));
        let action = match (r >> 8) % 8 {
            0 | 1 => {
                self.token_faults.fetch_add(1, Ordering::SeqCst);
                Action::json(500, r#"{"error":"server_error"}"#)
            }
            2 => {
                self.token_faults.fetch_add(1, Ordering::SeqCst);
                Action::Reset
            }
            _ => {
                let n = self.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("{TOKEN_MARK}stress-{n}");
                let expires = Instant::now() + secs(TOKEN_SECS);
                self.issued.lock().unwrap().insert(token.clone(), expires);
                Action::token(&token, TOKEN_SECS)
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        action
    }

    /// Answers the API: checks the bearer token, then 1 in 50 a 500, 1 in 100 a reset,
    /// 1 in 25 a 0-20 ms delay, 1 in 500 a 401 (the token is renewed), else 200.
    fn api(&self, req: &Request) -> Action {
        let arrived = Instant::now();
        self.api_requests.fetch_add(1, Ordering::SeqCst);
        let token = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        let expiry = token.and_then(|t| self.issued.lock().unwrap().get(t).copied());
        match expiry {
            None => {
                self.unknown.fetch_add(1, Ordering::SeqCst);
            }
            Some(expires) if arrived >= expires => {
                self.expired.fetch_add(1, Ordering::SeqCst);
                let late = (arrived - expires).as_micros() as u64;
                self.most_late_us.fetch_max(late, Ordering::SeqCst);
            }
            Some(_) => {}
        }
        let r = self.random();
        let fault = |a: Action| {
            self.api_faults.fetch_add(1, Ordering::SeqCst);
            a
        };
        match r % 2000 {
            0..=39 => fault(Action::json(500, r#"{"message":"boom"}"#)),
            40..=59 => fault(Action::Reset),
            60..=139 => fault(Action::json(200, r#"{"ok":true}"#).after(ms(r % 21))),
            140..=143 => fault(Action::json(401, r#"{"message":"token revoked"}"#)),
            _ => Action::json(200, r#"{"ok":true}"#),
        }
    }

    fn check(&self, what: &str) {
        let max = self.max_in_flight.load(Ordering::SeqCst);
        assert_eq!(
            max, 1,
            "{what}: at most one token request may be in flight; saw {max} at once"
        );
        let expired = self.expired.load(Ordering::SeqCst);
        assert_eq!(
            expired,
            0,
            "{what}: {expired} API requests carried an expired token (the latest {} µs late)",
            self.most_late_us.load(Ordering::SeqCst)
        );
        let unknown = self.unknown.load(Ordering::SeqCst);
        assert_eq!(
            unknown, 0,
            "{what}: {unknown} API requests carried no token or one never issued"
        );
        assert!(
            self.tokens_issued.load(Ordering::SeqCst) >= 2,
            "{what}: the run must outlive a token"
        );
    }

    /// The most errors the injected faults can explain: a token request fails only after
    /// five faults in a row (`max_retries` 4), and each failure reaches each thread at most
    /// twice (a caller waits on the one request, or gets the failure while its backoff runs,
    /// then waits longer than the backoff); API retries running out (five faults in a row
    /// at 3%) get one in a thousand requests.
    fn error_bound(&self, threads: usize, requests: usize) -> usize {
        2 * threads * (self.token_faults.load(Ordering::SeqCst) / 5) + requests / 1000
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: server saw {} token requests ({} faults injected), issued {} tokens, \
             max {} token request(s) in flight at once; {} API requests ({} faults injected), \
             {} with an expired token, {} with an unknown one",
            self.token_requests.load(Ordering::SeqCst),
            self.token_faults.load(Ordering::SeqCst),
            self.tokens_issued.load(Ordering::SeqCst),
            self.max_in_flight.load(Ordering::SeqCst),
            self.api_requests.load(Ordering::SeqCst),
            self.api_faults.load(Ordering::SeqCst),
            self.expired.load(Ordering::SeqCst),
            self.unknown.load(Ordering::SeqCst),
        );
    }
}

/// A server answering the token endpoint and the API by `books`.
fn stress_server(books: &Arc<Books>) -> Server {
    let books = books.clone();
    Server::new(Action::dynamic(move |req| {
        if req.method == "POST" && req.path == TOKEN_PATH {
            books.token()
        } else if req.path == API_PATH {
            books.api(req)
        } else {
            Action::status(404)
        }
    }))
}

#[derive(Default)]
struct Tally {
    token_calls: usize,
    token_errors: usize,
    requests: usize,
    request_errors: usize,
    ok: usize,
    other: usize,
}

#[test]
fn rust_threads_share_one_client_under_faults() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const THREADS: usize = 64;
    let books = Arc::new(Books::default());
    let server = stress_server(&books);
    let client = Client::new(
        builder(&server)
            .max_retries(4)
            .retry_base(ms(5))
            .retry_max(ms(50))
            .timeout(secs(5))
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let deadline = started + RUN_FOR;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                let mut tally = Tally::default();
                let mut kinds: Vec<String> = Vec::new();
                for i in 0..MAX_CALLS {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if i % REQUEST_EVERY == REQUEST_EVERY - 1 {
                        tally.requests += 1;
                        match client.get("/v1/x").send() {
                            Ok(r) if r.status() == 200 => tally.ok += 1,
                            Ok(_) => tally.other += 1,
                            Err(e) => {
                                check_error(&e);
                                tally.request_errors += 1;
                                kinds.push(format!("{e:?}"));
                            }
                        }
                    } else {
                        tally.token_calls += 1;
                        // The clock read before the call: the token must have been usable
                        // when it was handed out, which is at or after this moment. (A read
                        // after the call would race the scheduler: a thread preempted on its
                        // way out sees a token handed out good go past its time.)
                        let called = SystemTime::now();
                        match client.token() {
                            Ok(t) => {
                                // The client's own promise, checked on every call.
                                assert!(
                                    t.usable_until() > called,
                                    "token() handed out a token past its usable time"
                                );
                                assert!(t.secret().starts_with(TOKEN_MARK));
                            }
                            Err(e) => {
                                check_error(&e);
                                tally.token_errors += 1;
                                kinds.push(format!("{e:?}"));
                                // A failure is shared until its backoff (at most retry_max,
                                // 50 ms) has passed: a caller that spun on it would count
                                // one failure thousands of times. Real callers wait too.
                                thread::sleep(ms(60));
                            }
                        }
                    }
                }
                (tally, kinds)
            })
        })
        .collect();

    // Join with a bound: a deadlock fails the test instead of hanging it.
    let limit = RUN_FOR + JOIN_GRACE;
    while handles.iter().any(|h| !h.is_finished()) {
        let stuck = handles.iter().filter(|h| !h.is_finished()).count();
        assert!(
            started.elapsed() < limit,
            "{stuck} of {THREADS} threads still running after {limit:?}: deadlock?"
        );
        thread::sleep(ms(20));
    }
    let ran = started.elapsed();
    let mut total = Tally::default();
    let mut kinds = Vec::new();
    for h in handles {
        let (t, k) = h.join().expect("a stress thread panicked");
        total.token_calls += t.token_calls;
        total.token_errors += t.token_errors;
        total.requests += t.requests;
        total.request_errors += t.request_errors;
        total.ok += t.ok;
        total.other += t.other;
        kinds.extend(k);
    }
    eprintln!(
        "rust stress: {THREADS} threads, {} calls in {ran:.1?}: {} token() ({} errors), {} \
         requests ({} errors, {} answered 200, {} other)",
        total.token_calls + total.requests,
        total.token_calls,
        total.token_errors,
        total.requests,
        total.request_errors,
        total.ok,
        total.other
    );
    books.report("rust stress");
    drop(client);
    drop(server);
    books.check("rust stress");
    // Faults are injected, so a token request may fail all five attempts (p ≈ 0.7%) when no
    // token is left to serve (after a 401): such errors are allowed, but only of the kinds
    // the faults produce, and no more than the faults explain.
    for k in &kinds {
        assert!(
            k.starts_with("Server(") || k.starts_with("Transport("),
            "unexpected error: {k}"
        );
    }
    let bound = books.error_bound(THREADS, total.requests);
    assert!(
        total.token_errors + total.request_errors <= bound,
        "more errors than the injected faults explain (at most {bound}): {kinds:?}"
    );
    assert!(total.requests > 0 && total.token_calls > 0);
}

// ---------------------------------------------------------------------------------------------
// The same through the C ABI

fn field(out: &str, name: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in:\n{out}"))
}

#[test]
fn c_threads_share_one_client_under_faults() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let builddir = ffi_support::make_examples(&["stress"], "c-stress");

    let books = Arc::new(Books::default());
    let server = stress_server(&books);
    let mut cmd = ffi_support::clean_command(builddir.join("dynamic/stress"));
    cmd.arg(RUN_FOR.as_secs().to_string())
        .arg(MAX_CALLS.to_string())
        .env("LWOLF_TOKEN_URL", server.token_url())
        .env("LWOLF_API_BASE_URL", format!("{}/backoffice", server.url()))
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_MAX_RETRIES", "4")
        .env("LWOLF_RETRY_BASE_MS", "5")
        .env("LWOLF_RETRY_MAX_MS", "50")
        .env("LWOLF_TIMEOUT_MS", "5000");
    let started = Instant::now();
    // The program's threads must all finish: a deadlock is killed at the bound and fails.
    let out = ffi_support::run(&mut cmd, RUN_FOR + JOIN_GRACE);
    let ran = started.elapsed();
    let stdout = ffi_support::expect_success(&out, "examples-c/stress");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    eprintln!("c stress ({ran:.1?}):\n{stdout}");
    books.report("c stress");
    drop(server);
    books.check("c stress");

    assert_eq!(field(&stdout, "threads"), 32);
    assert_eq!(field(&stdout, "bad tokens"), 0);
    let calls = field(&stdout, "token calls") + field(&stdout, "requests");
    assert!(calls > 0);
    let errors = field(&stdout, "token errors") + field(&stdout, "request errors");
    let bound = books.error_bound(32, field(&stdout, "requests"));
    assert!(
        errors <= bound,
        "more errors than the injected faults explain (at most {bound}):\n{stdout}"
    );
    // Each answered call made at least one request (retries and resends make more).
    let answered = field(&stdout, "responses 200") + field(&stdout, "responses other");
    assert!(books.api_requests.load(Ordering::SeqCst) >= answered);
}
