//! The fault matrix: every fault of the scriptable loopback server (`tests/common`) against
//! the token endpoint and against the API, each row with the outcome the contract asks for
//! (retried and recovered, a specific `Error` variant, or a specific response status), each
//! bounded in time, none panicking, none leaking the secret or a token.
//!
//! Every row makes one `client.get("/v1/x").send()` with a fresh client and fresh servers: for a
//! token-endpoint row the API is healthy and the fault is on `POST /oauth/token`; for an API
//! row the token endpoint is healthy and the fault is on `GET /backoffice/v1/x`. The rows
//! run on a few threads; `cargo test --test fault_matrix -- --nocapture` prints the matrix.
//!
//! Retries in every row: `max_retries` 2 (three attempts), `retry_base` 10 ms, `retry_max`
//! 100 ms unless the row says otherwise; `timeout` 10 s, or 600 ms in the rows where the
//! per-attempt timeout is what ends the fault.

use lwolf_test_support::common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use lwolf_auth::{Client, Config, Error};

/// What the rows' API answers when it is healthy.
const API_OK: &str = r#"{"ok":true}"#;
const API_PATH: &str = "/backoffice/v1/x";
/// Auth0's answer to bad credentials (what the vendor's gateway sends).
const AUTH0_BODY: &str = r#"{"error":"access_denied","error_description":"Unauthorized"}"#;
/// RFC 6749 §5.2's answer.
const RFC_BODY: &str = r#"{"error":"invalid_client"}"#;
/// Rows run on this many threads.
const WORKERS: usize = 8;
/// The per-attempt timeout of the rows that end in a timeout.
const SHORT_TIMEOUT: Duration = Duration::from_millis(600);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Token,
    Api,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Token => "token",
            Target::Api => "api",
        }
    }
}

/// What the faulty endpoint does.
#[derive(Clone)]
enum Fault {
    /// Answers its first requests with these actions, then is healthy.
    Once(Vec<Action>),
    /// Always answers with this action.
    Always(Action),
    /// Nothing listens on its port (bind a listener, note the port, drop it).
    DeadPort,
    /// An HTTPS server whose certificate (from a CA in `ca_file`) names only `wrong.example`.
    TlsWrongName,
    /// An HTTPS server whose certificate (from a CA in `ca_file`) expired in 2021.
    TlsExpired,
}

/// The variant of an `Error`, by name (its `Debug` is `Variant(message)`).
fn variant(e: &Error) -> String {
    let debug = format!("{e:?}");
    debug.split('(').next().unwrap_or_default().to_owned()
}

#[derive(Clone)]
enum Expect {
    /// The GET is answered 200 after `seen` requests reached the faulty endpoint.
    Recovered { seen: usize },
    /// The GET fails with this `Error` variant after `attempts` attempts, `seen` of which
    /// reached the faulty endpoint, and the message contains `says`.
    Fails {
        variant: &'static str,
        attempts: u32,
        seen: usize,
        says: &'static str,
    },
    /// The API's `status` is handed back after `seen` requests reached it.
    Status { status: u16, seen: usize },
}

impl Expect {
    fn describe(&self) -> String {
        match self {
            Expect::Recovered { seen } => format!("recovered: 200 after {seen}"),
            Expect::Fails {
                variant,
                attempts,
                says,
                ..
            } => format!("Err({variant}) after {attempts}, says {says:?}"),
            Expect::Status { status, seen } => format!("response {status} after {seen}"),
        }
    }
}

#[derive(Clone)]
struct Row {
    target: Target,
    fault_name: String,
    fault: Fault,
    expect: Expect,
    /// Token requests in all, when that is part of the outcome (renewals on 401/403).
    token_requests: Option<usize>,
    timeout: Duration,
    retry_max: Duration,
    max_response_bytes: Option<usize>,
    /// How long the row should take on an idle machine; it must finish within 5x this
    /// (and never in less than 2 s, for the noise of a busy 2-core machine).
    nominal: Duration,
    /// The row must not finish sooner than this (a wait that must be honoured).
    at_least: Duration,
}

impl Row {
    fn new(target: Target, fault_name: impl Into<String>, fault: Fault, expect: Expect) -> Row {
        Row {
            target,
            fault_name: fault_name.into(),
            fault,
            expect,
            token_requests: None,
            timeout: secs(10),
            retry_max: ms(100),
            max_response_bytes: None,
            nominal: ms(100),
            at_least: Duration::ZERO,
        }
    }

    fn bound(&self) -> Duration {
        (self.nominal * 5).max(secs(2))
    }

    fn timeout(mut self, t: Duration) -> Row {
        self.timeout = t;
        self
    }

    fn retry_max(mut self, t: Duration) -> Row {
        self.retry_max = t;
        self
    }

    fn nominal(mut self, t: Duration) -> Row {
        self.nominal = t;
        self
    }

    fn at_least(mut self, t: Duration) -> Row {
        self.at_least = t;
        self
    }

    fn token_requests(mut self, n: usize) -> Row {
        self.token_requests = Some(n);
        self
    }

    fn max_response_bytes(mut self, n: usize) -> Row {
        self.max_response_bytes = Some(n);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The rows

fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Answered on a retryable status: the token endpoint's error once retries run out.
fn exhausted(status: u16) -> &'static str {
    if status == 429 {
        "RateLimited"
    } else {
        "Server"
    }
}

fn rows() -> Vec<Row> {
    use Target::{Api, Token};
    let mut rows = Vec::new();
    let both = [Token, Api];

    // Retryable statuses, once, with every form of Retry-After.
    for target in both {
        for status in [408u16, 429, 500, 502, 503, 504] {
            let fault = |a: Action| Fault::Once(vec![a]);
            rows.push(Row::new(
                target,
                format!("{status} once"),
                fault(Action::json(
                    status,
                    r#"{"error":"temporarily_unavailable"}"#,
                )),
                Expect::Recovered { seen: 2 },
            ));
            rows.push(
                Row::new(
                    target,
                    format!("{status} once, Retry-After: 1"),
                    fault(Action::status(status).header("Retry-After", "1")),
                    Expect::Recovered { seen: 2 },
                )
                .retry_max(secs(5))
                .nominal(ms(1100))
                .at_least(ms(1000)),
            );
            rows.push(
                Row::new(
                    target,
                    format!("{status} once, Retry-After: <date 1 h ago>"),
                    fault(Action::dynamic(move |_| {
                        let past = SystemTime::now() - secs(3600);
                        Action::status(status).header("Retry-After", &httpdate::fmt_http_date(past))
                    })),
                    Expect::Recovered { seen: 2 },
                )
                .retry_max(secs(5)),
            );
            rows.push(
                Row::new(
                    target,
                    format!("{status} once, Retry-After: <date in 1 day>, retry_max 300 ms"),
                    fault(Action::dynamic(move |_| {
                        let later = SystemTime::now() + secs(86_400);
                        Action::status(status)
                            .header("Retry-After", &httpdate::fmt_http_date(later))
                    })),
                    Expect::Recovered { seen: 2 },
                )
                .retry_max(ms(300))
                .nominal(ms(400))
                .at_least(ms(300)),
            );
        }
        // Retryable statuses, always: retries run out.
        for status in [408u16, 429, 500, 502, 503, 504] {
            let expect = match target {
                Token => Expect::Fails {
                    variant: exhausted(status),
                    attempts: 3,
                    seen: 3,
                    says: "temporarily_unavailable",
                },
                Api => Expect::Status { status, seen: 3 },
            };
            rows.push(Row::new(
                target,
                format!("{status} always"),
                Fault::Always(Action::json(
                    status,
                    r#"{"error":"temporarily_unavailable"}"#,
                )),
                expect,
            ));
        }
        // Retry-After in seconds, far beyond retry_max: capped.
        rows.push(
            Row::new(
                target,
                "503 once, Retry-After: 3600, retry_max 300 ms",
                Fault::Once(vec![Action::status(503).header("Retry-After", "3600")]),
                Expect::Recovered { seen: 2 },
            )
            .retry_max(ms(300))
            .nominal(ms(400))
            .at_least(ms(300)),
        );
        // X-RateLimit-Reset on a 429: honoured (a UNIX time 1-2 s ahead), and capped.
        rows.push(
            Row::new(
                target,
                "429 once, X-RateLimit-Reset: <now + 1-2 s>",
                Fault::Once(vec![Action::dynamic(|_| {
                    let reset = unix_now().ceil() as u64 + 1;
                    Action::status(429).header("X-RateLimit-Reset", &reset.to_string())
                })]),
                Expect::Recovered { seen: 2 },
            )
            .retry_max(secs(5))
            .nominal(ms(2000))
            .at_least(ms(1000)),
        );
        rows.push(
            Row::new(
                target,
                "429 once, X-RateLimit-Reset: <now + 1 day>, retry_max 300 ms",
                Fault::Once(vec![Action::dynamic(|_| {
                    let reset = unix_now() as u64 + 86_400;
                    Action::status(429).header("X-RateLimit-Reset", &reset.to_string())
                })]),
                Expect::Recovered { seen: 2 },
            )
            .retry_max(ms(300))
            .nominal(ms(400))
            .at_least(ms(300)),
        );
        // ... but only on a 429: a 503 carrying it retries on the backoff (at most 100 ms).
        rows.push(
            Row::new(
                target,
                "503 once, X-RateLimit-Reset: <now + 1 day> (ignored: not a 429)",
                Fault::Once(vec![Action::dynamic(|_| {
                    let reset = unix_now() as u64 + 86_400;
                    Action::status(503).header("X-RateLimit-Reset", &reset.to_string())
                })]),
                Expect::Recovered { seen: 2 },
            )
            .retry_max(secs(5)),
        );
        // An unreadable Retry-After: the backoff applies.
        rows.push(Row::new(
            target,
            "503 once, Retry-After: soon (unparsable)",
            Fault::Once(vec![Action::status(503).header("Retry-After", "soon")]),
            Expect::Recovered { seen: 2 },
        ));
    }

    // Client errors with Auth0-style and RFC 6749 bodies.
    for (status, token_variant) in [
        (401u16, "InvalidCredentials"),
        (400, "BadRequest"),
        (403, "Forbidden"),
    ] {
        for (body_name, body, says) in [
            ("Auth0 body", AUTH0_BODY, "access_denied: Unauthorized"),
            ("RFC 6749 body", RFC_BODY, "invalid_client"),
        ] {
            rows.push(Row::new(
                Token,
                format!("{status} {body_name}"),
                Fault::Always(Action::json(status, body)),
                Expect::Fails {
                    variant: token_variant,
                    attempts: 1,
                    seen: 1,
                    says,
                },
            ));
            let api = match status {
                // The token is renewed once and the request sent again.
                401 | 403 => Row::new(
                    Api,
                    format!("{status} {body_name} once"),
                    Fault::Once(vec![Action::json(status, body)]),
                    Expect::Recovered { seen: 2 },
                )
                .token_requests(2),
                _ => Row::new(
                    Api,
                    format!("{status} {body_name}"),
                    Fault::Always(Action::json(status, body)),
                    Expect::Status { status, seen: 1 },
                )
                .token_requests(1),
            };
            rows.push(api);
        }
        if status != 400 {
            rows.push(
                Row::new(
                    Api,
                    format!("{status} Auth0 body always"),
                    Fault::Always(Action::json(status, AUTH0_BODY)),
                    Expect::Status { status, seen: 2 },
                )
                .token_requests(2),
            );
        }
    }

    // A 200 carrying an OAuth error.
    rows.push(Row::new(
        Token,
        "200 with {\"error\":...}",
        Fault::Always(Action::json(200, AUTH0_BODY)),
        Expect::Fails {
            variant: "InvalidResponse",
            attempts: 0,
            seen: 1,
            says: "no access_token (error access_denied: Unauthorized)",
        },
    ));
    rows.push(Row::new(
        Api,
        "200 with {\"error\":...}",
        Fault::Always(Action::json(200, AUTH0_BODY)),
        Expect::Status {
            status: 200,
            seen: 1,
        },
    ));

    // Redirects: never followed at the token endpoint; not to another origin at the API.
    rows.push(Row::new(
        Token,
        "302 to another origin",
        Fault::Always(Action::redirect(302, "http://127.0.0.1:9/oauth/token")),
        Expect::Fails {
            variant: "InvalidResponse",
            attempts: 0,
            seen: 1,
            says: "redirect",
        },
    ));
    rows.push(Row::new(
        Api,
        "302 to another origin",
        Fault::Always(Action::redirect(302, "http://127.0.0.1:9/steal")),
        Expect::Status {
            status: 302,
            seen: 1,
        },
    ));

    // Transport faults.
    for target in both {
        let transport = |says: &'static str| Expect::Fails {
            variant: "Transport",
            attempts: 3,
            seen: 3,
            says,
        };
        rows.push(Row::new(
            target,
            "connection refused (dead port)",
            Fault::DeadPort,
            Expect::Fails {
                variant: "Transport",
                attempts: 3,
                seen: 0,
                says: "connection",
            },
        ));
        rows.push(Row::new(
            target,
            "closed before answering, once",
            Fault::Once(vec![Action::Reset]),
            Expect::Recovered { seen: 2 },
        ));
        rows.push(Row::new(
            target,
            "closed before answering, always",
            Fault::Always(Action::Reset),
            transport("i/o error"),
        ));
        let rst = Action::ResetAfterHeaders {
            status: 200,
            declared: 500,
        };
        rows.push(Row::new(
            target,
            "RST after headers, once",
            Fault::Once(vec![rst.clone()]),
            Expect::Recovered { seen: 2 },
        ));
        rows.push(Row::new(
            target,
            "RST after headers, always",
            Fault::Always(rst),
            transport("i/o error"),
        ));
        let half = Action::Truncated {
            status: 200,
            declared: 200,
            sent: 100,
        };
        rows.push(Row::new(
            target,
            "body stops halfway (100 of 200 bytes, then FIN), once",
            Fault::Once(vec![half.clone()]),
            Expect::Recovered { seen: 2 },
        ));
        rows.push(Row::new(
            target,
            "body stops halfway, always",
            Fault::Always(half),
            transport("i/o error"),
        ));
        rows.push(
            Row::new(
                target,
                "accepts, never answers, once",
                Fault::Once(vec![Action::Hang]),
                Expect::Recovered { seen: 2 },
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(700))
            .at_least(SHORT_TIMEOUT),
        );
        rows.push(
            Row::new(
                target,
                "accepts, never answers, always",
                Fault::Always(Action::Hang),
                transport("timeout"),
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(2000))
            .at_least(SHORT_TIMEOUT * 3),
        );
        let stall = Action::Stall {
            status: 200,
            declared: 1000,
            sent: 10,
        };
        rows.push(
            Row::new(
                target,
                "headers + 10 of 1000 bytes, then silence, once",
                Fault::Once(vec![stall.clone()]),
                Expect::Recovered { seen: 2 },
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(700))
            .at_least(SHORT_TIMEOUT),
        );
        rows.push(
            Row::new(
                target,
                "headers + 10 of 1000 bytes, then silence, always",
                Fault::Always(stall),
                transport("timeout"),
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(2000))
            .at_least(SHORT_TIMEOUT * 3),
        );
        let drip = Action::Drip {
            status: 200,
            declared: 100_000,
            every: ms(50),
        };
        rows.push(
            Row::new(
                target,
                "slow drip (1 byte / 50 ms of 100000), once",
                Fault::Once(vec![drip.clone()]),
                Expect::Recovered { seen: 2 },
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(700))
            .at_least(SHORT_TIMEOUT),
        );
        rows.push(
            Row::new(
                target,
                "slow drip, always",
                Fault::Always(drip),
                transport("timeout"),
            )
            .timeout(SHORT_TIMEOUT)
            .nominal(ms(2000))
            .at_least(SHORT_TIMEOUT * 3),
        );
        let garbage = Action::Raw(b"\x00\xff\x13garbage, not HTTP at all\r\n\r\n".to_vec());
        rows.push(Row::new(
            target,
            "garbage bytes instead of HTTP, once",
            Fault::Once(vec![garbage.clone()]),
            Expect::Recovered { seen: 2 },
        ));
        rows.push(Row::new(
            target,
            "garbage bytes instead of HTTP, always",
            Fault::Always(garbage),
            transport("malformed"),
        ));
        let tls = |says| Expect::Fails {
            variant: "Transport",
            attempts: 1,
            seen: 0,
            says,
        };
        rows.push(Row::new(
            target,
            "TLS, certificate for another name",
            Fault::TlsWrongName,
            tls("tls"),
        ));
        rows.push(Row::new(
            target,
            "TLS, certificate expired",
            Fault::TlsExpired,
            tls("tls"),
        ));
    }

    // Oversized bodies: token responses over 64 KiB, API responses over max_response_bytes.
    rows.push(Row::new(
        Token,
        "200 with a 100 KiB body",
        Fault::Always(Action::Oversized {
            status: 200,
            len: 100 * 1024,
        }),
        Expect::Fails {
            variant: "InvalidResponse",
            attempts: 0,
            seen: 1,
            says: "64 KiB",
        },
    ));
    rows.push(Row::new(
        Token,
        "503 with a 100 KiB body",
        Fault::Always(Action::Oversized {
            status: 503,
            len: 100 * 1024,
        }),
        Expect::Fails {
            variant: "InvalidResponse",
            attempts: 0,
            seen: 1,
            says: "64 KiB",
        },
    ));
    rows.push(
        Row::new(
            Api,
            "200 with a 1 MiB body, max_response_bytes 64 KiB",
            Fault::Always(Action::Oversized {
                status: 200,
                len: 1024 * 1024,
            }),
            Expect::Fails {
                variant: "InvalidResponse",
                attempts: 0,
                seen: 1,
                says: "max_response_bytes",
            },
        )
        .max_response_bytes(64 * 1024),
    );
    rows
}

// ---------------------------------------------------------------------------------------------
// Running a row

struct Outcome {
    got: String,
    attempts: String,
    elapsed: Duration,
    failure: Option<String>,
}

/// An endpoint of a row: a server (plain or TLS) or a dead port, and its base URL.
struct Endpoint {
    server: Option<Server>,
    base: String,
    /// The CA of a TLS endpoint, in a directory removed with the endpoint.
    ca_file: Option<(TempDir, std::path::PathBuf)>,
}

fn endpoint(row: &Row, is_faulty: bool, healthy: Action) -> Endpoint {
    if !is_faulty {
        let server = Server::new(healthy);
        return Endpoint {
            base: server.url(),
            server: Some(server),
            ca_file: None,
        };
    }
    let tls = |pki: TestPki| {
        let tmp = TempDir::new("fault-matrix-ca");
        let ca = tmp.join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let server = Server::new_tls(healthy.clone(), pki.server_config.clone());
        Endpoint {
            base: server.url(),
            server: Some(server),
            ca_file: Some((tmp, ca)),
        }
    };
    match &row.fault {
        Fault::Once(actions) => {
            let server = Server::new(healthy);
            for a in actions {
                server.push(a.clone());
            }
            Endpoint {
                base: server.url(),
                server: Some(server),
                ca_file: None,
            }
        }
        Fault::Always(action) => {
            let server = Server::new(action.clone());
            Endpoint {
                base: server.url(),
                server: Some(server),
                ca_file: None,
            }
        }
        Fault::DeadPort => Endpoint {
            server: None,
            base: format!("http://127.0.0.1:{}", dead_port()),
            ca_file: None,
        },
        Fault::TlsWrongName => tls(TestPki::with_server_cert(&["wrong.example"], None)),
        Fault::TlsExpired => tls(TestPki::with_server_cert(
            &["localhost", "127.0.0.1"],
            Some(((2020, 1, 1), (2021, 1, 1))),
        )),
    }
}

fn run_row(row: &Row) -> Outcome {
    let tokens = endpoint(row, row.target == Target::Token, issue_tokens("fm", 3600));
    let api = endpoint(row, row.target == Target::Api, Action::json(200, API_OK));
    let mut builder = Config::builder()
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .token_url(format!("{}{TOKEN_PATH}", tokens.base))
        .api_base_url(format!("{}/backoffice", api.base))
        .max_retries(2)
        .retry_base(ms(10))
        .retry_max(row.retry_max)
        .timeout(row.timeout);
    if let Some((_, ca)) = tokens.ca_file.as_ref().or(api.ca_file.as_ref()) {
        builder = builder.ca_file(ca);
    }
    if let Some(n) = row.max_response_bytes {
        builder = builder.max_response_bytes(n);
    }
    let client = Client::new(builder.build().expect("valid row config"));
    assert_no_secret(&format!("{client:?}"));

    let started = Instant::now();
    let result = client.get("/v1/x").send();
    let elapsed = started.elapsed();

    let count_at =
        |e: &Endpoint, path: &str| e.server.as_ref().map_or(0, |s| s.requests_to(path).len());
    let seen = match row.target {
        Target::Token => count_at(&tokens, TOKEN_PATH),
        Target::Api => count_at(&api, API_PATH),
    };
    let token_requests = count_at(&tokens, TOKEN_PATH);
    assert_no_secret(&format!("{client:?}"));

    let mut problems = Vec::new();
    let (got, attempts) = match &result {
        Ok(resp) => {
            assert_no_secret(&format!("{resp:?}"));
            let got = format!("response {} after {seen}", resp.status());
            match &row.expect {
                Expect::Recovered { seen: want } => {
                    if resp.status() != 200 || resp.text() != API_OK || seen != *want {
                        problems.push(format!("wanted 200 {API_OK} after {want}"));
                    }
                }
                Expect::Status { status, seen: want } => {
                    if resp.status() != *status || seen != *want {
                        problems.push(format!("wanted {status} after {want}"));
                    }
                }
                Expect::Fails { .. } => problems.push("wanted an error".to_owned()),
            }
            (got, seen.to_string())
        }
        Err(e) => {
            // Display, Debug and the source chain: no secret, no token.
            check_error(e);
            let got = format!("Err({}) after {}: {e}", variant(e), e.attempts());
            match &row.expect {
                Expect::Fails {
                    variant: want,
                    attempts,
                    seen: want_seen,
                    says,
                } => {
                    if variant(e) != *want {
                        problems.push(format!("wanted {want}"));
                    }
                    if e.attempts() != *attempts {
                        problems.push(format!("wanted {attempts} attempts"));
                    }
                    if seen != *want_seen {
                        problems.push(format!("wanted {want_seen} requests at the endpoint"));
                    }
                    if !e.to_string().contains(says) {
                        problems.push(format!("wanted the message to say {says:?}"));
                    }
                }
                _ => problems.push("wanted a response".to_owned()),
            }
            (got, format!("{seen} (error says {})", e.attempts()))
        }
    };
    if let Some(want) = row.token_requests {
        if token_requests != want {
            problems.push(format!(
                "wanted {want} token requests, saw {token_requests}"
            ));
        }
    }
    if elapsed > row.bound() {
        problems.push(format!("took longer than {:?}", row.bound()));
    }
    if elapsed < row.at_least {
        problems.push(format!("took less than {:?}", row.at_least));
    }
    Outcome {
        got,
        attempts,
        elapsed,
        failure: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

#[test]
fn fault_matrix() {
    let rows = Arc::new(rows());
    let results: Arc<Mutex<Vec<Option<Outcome>>>> =
        Arc::new(Mutex::new((0..rows.len()).map(|_| None).collect()));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (rows, results, next) = (rows.clone(), results.clone(), next.clone());
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(row) = rows.get(i) else { break };
                let began = Instant::now();
                let outcome =
                    catch_unwind(AssertUnwindSafe(|| run_row(row))).unwrap_or_else(|panic| {
                        let msg = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Outcome {
                            got: format!("PANIC: {msg}"),
                            attempts: "-".to_owned(),
                            elapsed: began.elapsed(),
                            failure: Some("panicked".to_owned()),
                        }
                    });
                results.lock().unwrap()[i] = Some(outcome);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a matrix worker died");
    }
    let wall = started.elapsed();

    let results = results.lock().unwrap();
    let mut failed = Vec::new();
    eprintln!(
        "\n{:>3} | {:<5} | {:<62} | {:<58} | {:<100} | {:<14} | {:>8} | verdict",
        "row", "at", "fault", "expected", "got", "attempts", "elapsed"
    );
    for (i, (row, outcome)) in rows.iter().zip(results.iter()).enumerate() {
        let outcome = outcome.as_ref().expect("every row ran");
        let verdict = match &outcome.failure {
            None => "ok".to_owned(),
            Some(why) => {
                failed.push(i + 1);
                format!("FAILED: {why}")
            }
        };
        let mut got = outcome.got.clone();
        got.truncate(100);
        eprintln!(
            "{:>3} | {:<5} | {:<62} | {:<58} | {:<100} | {:<14} | {:>7.0?} | {verdict}",
            i + 1,
            row.target.name(),
            row.fault_name,
            row.expect.describe(),
            got,
            outcome.attempts,
            outcome.elapsed,
        );
    }
    let token_rows = rows.iter().filter(|r| r.target == Target::Token).count();
    eprintln!(
        "\nfault matrix: {} rows ({token_rows} at the token endpoint, {} at the API), {} survived, \
         {} failed, in {wall:.1?} on {WORKERS} threads",
        rows.len(),
        rows.len() - token_rows,
        rows.len() - failed.len(),
        failed.len(),
    );
    assert!(failed.is_empty(), "rows failed: {failed:?}");
}

/// A retry that waits (here `Retry-After: 1`) past the expiry of the token the request
/// started with must not send that token again: the server would see an expired token.
/// The token endpoint fails the refresh in between, so the old token is still the one in
/// service when the request starts, 100 ms before it expires.
#[test]
fn a_retry_never_carries_a_token_that_expired_during_the_wait() {
    let tokens = Server::new(issue_tokens("exp", 2));
    let expiries: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let late = Arc::new(AtomicUsize::new(0));
    let api = {
        let (expiries, late) = (expiries.clone(), late.clone());
        Server::new(Action::dynamic(move |req| {
            let bearer = req.header("authorization").unwrap_or_default().to_owned();
            let expired = expiries
                .lock()
                .unwrap()
                .iter()
                .any(|(t, at)| bearer == format!("Bearer {t}") && req.at >= *at);
            if expired {
                late.fetch_add(1, Ordering::SeqCst);
                Action::json(401, r#"{"message":"token expired"}"#)
            } else {
                Action::json(200, API_OK)
            }
        }))
    };
    let client = Client::new(
        builder_for(&tokens, &api)
            .retry_max(secs(2))
            .build()
            .unwrap(),
    );
    let sent = Instant::now();
    let first = ok(client.token());
    // The server's view: the token expires 2 s after it was issued (after `sent`).
    expiries
        .lock()
        .unwrap()
        .push((first.secret().to_owned(), tokens.request(0).at + secs(2)));
    // Past the refresh point (85-90% of 2 s), before the end of service (95%): the refresh
    // fails (three 500s), so the first token stays in service.
    tokens.push_n(Action::status(500), 3);
    thread::sleep((sent + ms(1820)).saturating_duration_since(Instant::now()));
    api.push(Action::status(503).header("Retry-After", "1"));
    let resp = ok(client.get("/v1/x").send());
    let reqs = api.requests();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {}", first.secret()).as_str()),
        "the request started with the token in service"
    );
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "a retry {:?} after the first attempt carried the expired token",
        reqs.get(1).map(|r| r.at - reqs[0].at)
    );
    assert_eq!(reqs.len(), 2, "the first attempt and its retry");
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Bearer {}", issued("exp", 2)).as_str()),
        "the retry carried a new token"
    );
    assert_eq!(
        tokens.token_requests(),
        5,
        "first, three failed refreshes, the new one"
    );
}
