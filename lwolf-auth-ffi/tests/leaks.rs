//! Security capture: can this library leak the client secret or a token?
//!
//! 1. `everything_said_is_free_of_secrets` installs a capturing `log::Log` (max level Trace,
//!    so ureq's and rustls's own logging is captured too) and runs successes and a slice of
//!    the fault matrix (`tests/fault_matrix.rs`) against the token endpoint and the API, a
//!    failing refresh, the disk cache, the sandbox, and the C ABI (calling the exported
//!    `lwolf_*` functions directly and reading `unsafe { lwolf_last_error_message() }` after every
//!    failure). It collects every error's `Display`, `Debug` and source chain, every log
//!    line, `Debug` of builders, configs, clients, tokens and responses, and every C
//!    last-error message, and asserts that neither the secret (nor its Basic-auth encoding)
//!    nor any token issued appears in any of them.
//! 2. The HTTPS, redirect and foreign-origin rules each have a test in which the place the
//!    secret or the token must not reach is a server that records what it received.
//!
//! Already covered elsewhere and not repeated here: a server echoing the secret into its
//! error bodies (`tests/token_request.rs`), `Debug` of config/client/token
//! (`tests/cache.rs`), the secret zeroed on drop (`tests/zeroize.rs`), plain redirects and
//! foreign origins (`tests/api.rs`), the untrusted-CA case (`tests/transport.rs`), and
//! C messages after a wrong secret (`tests/ffi_boundary.rs`).

use lwolf_test_support::c_calls;
use lwolf_test_support::common;

use std::ffi::{c_char, CStr, CString};
use std::io::Read;
use std::net::TcpListener;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use base64::Engine;
use common::*;
use lwolf_auth::{Client, Config, ConfigBuilder, Error};
use lwolf_auth_ffi::*;
use lwolf_sandbox::Sandbox;

// ---------------------------------------------------------------------------------------------
// Capturing every log line

struct Capture;

/// (level, target, message) of every record.
static LOG_LINES: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());
static CAPTURE: Capture = Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        LOG_LINES.lock().unwrap().push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }

    fn flush(&self) {}
}

/// (level, message) of every record the C log callback received.
static C_RECORDS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn capture_c_record(
    _userdata: *mut std::ffi::c_void,
    level: u32,
    message: *const c_char,
) {
    // SAFETY: the library passes a NUL-terminated string valid during the call.
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    C_RECORDS.lock().unwrap().push((level, message));
}

/// Both: a `log::Log` at Trace (every crate's records) and the C log callback at
/// `LWOLF_LOG_TRACE` (the library's own only).
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        let status = unsafe {
            lwolf_set_log_callback(Some(capture_c_record), ptr::null_mut(), LWOLF_LOG_TRACE)
        };
        assert_eq!(status, lwolf_status::LWOLF_OK);
    });
}

// ---------------------------------------------------------------------------------------------
// What was said, and what must never be in it

#[derive(Default)]
struct Said {
    /// (where it came from, the text).
    texts: Vec<(String, String)>,
    /// Strings that must appear in none of them.
    forbidden: Vec<String>,
    errors: usize,
    c_messages: usize,
}

impl Said {
    fn new() -> Said {
        let mut said = Said::default();
        said.forbid(SECRET);
        said.forbid(SUBSCRIPTION_KEY);
        // Every token the tests/common servers issue carries the mark.
        said.forbid(TOKEN_MARK);
        // The secret as HTTP Basic sends it (base64 of "id:secret").
        said.forbid(
            &base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}")),
        );
        said
    }

    fn forbid(&mut self, s: &str) {
        assert!(s.len() >= 4, "too short to search for: {s:?}");
        self.forbidden.push(s.to_owned());
    }

    fn text(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.texts.push((what.into(), text.into()));
    }

    fn debug(&mut self, what: &str, value: &impl std::fmt::Debug) {
        self.text(format!("Debug of {what}"), format!("{value:?}"));
    }

    fn error(&mut self, what: &str, e: &Error) {
        self.errors += 1;
        self.text(format!("{what}: Display"), e.to_string());
        self.text(format!("{what}: Debug"), format!("{e:?}"));
        if let Some(f) = e.http_failure() {
            self.text(format!("{what}: HttpFailure"), format!("{f:?} / {f}"));
        }
        if let Error::Transport(t) = e {
            self.text(format!("{what}: TransportFailure"), format!("{t:?}"));
        }
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            self.text(format!("{what}: source"), format!("{s} / {s:?}"));
            source = s.source();
        }
    }

    /// Records `r`'s error or response (never its body: that is the caller's data).
    fn outcome<T: std::fmt::Debug>(&mut self, what: &str, r: &Result<T, Error>) {
        match r {
            Ok(v) => self.debug(what, v),
            Err(e) => self.error(what, e),
        }
    }

    fn c_message(&mut self, what: &str) {
        self.c_messages += 1;
        let ptr = unsafe { lwolf_last_error_message() };
        assert!(!ptr.is_null());
        // SAFETY: NUL-terminated, valid until this thread's next lwolf_ call.
        let msg = unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned();
        assert!(
            !msg.is_empty(),
            "{what}: no last-error message after a failure"
        );
        self.text(format!("C last error after {what}"), msg);
    }

    /// Every text and every log line so far (but ureq-proto's TRACE wire dump, see
    /// [`wire_dump`]), against every forbidden string.
    fn check(&self) -> usize {
        let log: Vec<String> = LOG_LINES
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, target, _)| !is_wire_dump(*level, target))
            .map(|(level, target, msg)| format!("{level} {target}: {msg}"))
            .collect();
        let all = self
            .texts
            .iter()
            .map(|(w, t)| (w.clone(), t.clone()))
            .chain(log.into_iter().map(|l| ("log line".to_owned(), l)));
        let mut leaks = Vec::new();
        let mut n = 0;
        for (what, text) in all {
            n += 1;
            for f in &self.forbidden {
                if text.contains(f.as_str()) {
                    leaks.push(format!("{what}: {text}"));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
        n
    }
}

/// ureq-proto (ureq's HTTP/1.1 engine) logs every byte it writes and reads at TRACE level,
/// as hex-dump rows of 16 bytes under the target `ureq_proto::util`: the token request
/// with the secret, `Authorization: Bearer` headers, token responses. Not our logging, and
/// not something a library can filter (the logger is the application's): documented in
/// RELIABILITY.md, and pinned here so the advice stays true (DEBUG and above are clean).
fn is_wire_dump(level: log::Level, target: &str) -> bool {
    level == log::Level::Trace && target.starts_with("ureq_proto")
}

/// The text column of ureq-proto's TRACE rows, joined: the raw traffic as it logged it.
fn wire_dump() -> String {
    LOG_LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, target, _)| is_wire_dump(*level, target))
        // "2254 4b4e 2d74 2d31 222c 2265 7870 6972  \"TKN-t-1\",\"expir": the last 16 chars.
        .filter_map(|(_, _, msg)| msg.get(msg.len().saturating_sub(16)..))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Servers

/// Every client of the capture also carries a subscription key: a secret like the client's.
const SUBSCRIPTION_KEY: &str = "lw-subscription-K3Y-never-shown";

fn cfg(tokens: &Server, api: &Server) -> ConfigBuilder {
    builder_for(tokens, api)
        .timeout(ms(400))
        .subscription_key(SUBSCRIPTION_KEY)
}

fn api_ok() -> Server {
    Server::new(Action::json(200, r#"{"ok":true}"#))
}

/// A raw TCP listener that keeps every byte it receives and answers nothing.
struct Recorder {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bytes, connections, stop) = (bytes.clone(), connections.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(ms(300))).unwrap();
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = s.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(_) => thread::sleep(ms(5)),
                    }
                }
            })
        };
        Recorder {
            port,
            bytes,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `pem` in a file of a directory of its own, removed when the `TempDir` is dropped.
fn write_ca(pem: &str) -> (TempDir, std::path::PathBuf) {
    let tmp = TempDir::new("leaks-ca");
    let path = tmp.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    (tmp, path)
}

// ---------------------------------------------------------------------------------------------
// C ABI helpers

/// `GET path` through the C ABI; on failure the last-error message is left in place (the
/// response, if any, is freed first: any `lwolf_` call resets the message).
fn c_get(client: *mut lwolf_client, path: &str) -> lwolf_status {
    let (method, path) = (CString::new("GET").unwrap(), CString::new(path).unwrap());
    let mut resp = ptr::null_mut();
    let status = unsafe {
        lwolf_client_request(
            client,
            method.as_ptr(),
            path.as_ptr(),
            ptr::null(),
            0,
            &mut resp,
        )
    };
    if status == lwolf_status::LWOLF_OK {
        unsafe { lwolf_response_free(resp) };
    }
    status
}

// ---------------------------------------------------------------------------------------------
// 1. Everything said

#[test]
fn everything_said_is_free_of_secrets() {
    let tmp = TempDir::new("everything-said-is-free-of-secrets");
    capture_logs();
    let mut said = Said::new();
    let started = Instant::now();

    // Successes: tokens, requests of every kind, a tenant, a renewal, the disk cache.
    {
        let tokens = Server::tokens();
        let api = api_ok();
        api.push(Action::json(401, r#"{"message":"expired"}"#));
        let builder = cfg(&tokens, &api);
        said.debug("ConfigBuilder", &builder);
        let config = builder.build().unwrap();
        said.debug("Config", &config);
        let client = Client::new(config);
        said.debug("Client before a token", &client);
        let token = ok(client.token());
        said.debug("AccessToken", &token);
        said.text("Display of AccessToken", token.to_string());
        said.debug("Client with a token", &client);
        for r in [
            client.get("/v1/x").send(),
            client
                .post("/v1/items")
                .body(br#"{"a":1}"#.to_vec(), "application/json")
                .send(),
            client
                .put("/v1/items/1")
                .body(b"{}".to_vec(), "application/json")
                .send(),
            client.delete("/v1/items/1").send(),
            client
                .request("PATCH", "/v1/items/1")
                .body(b"{}".to_vec(), "application/json")
                .send(),
        ] {
            let resp = ok(r);
            said.debug("Response", &resp);
        }
        let tenant = client.for_tenant("tenant-7").unwrap();
        said.outcome("tenant token", &tenant.token());
        said.debug("tenant Client", &tenant);
        client.invalidate();
        said.outcome("token after invalidate", &client.token());
        let parsed = lwolf_auth::unversioned::parse_token_response(
            token_body(&issued("parsed", 1), 60).as_bytes(),
            std::time::SystemTime::now(),
        );
        said.outcome("TokenResponse", &parsed);

        let dir = tmp.join("leaks-cache-dir");
        let cached = Client::new(cfg(&tokens, &api).cache_dir(&dir).build().unwrap());
        said.debug("Config with cache_dir", cached.config());
        said.outcome("token via the disk cache", &cached.token());
        let again = Client::new(cfg(&tokens, &api).cache_dir(&dir).build().unwrap());
        said.outcome("token read from the disk cache", &again.token());
        again.invalidate();
        said.debug("Client with cache_dir", &again);
    }

    // A failed refresh while the token is still in service (the warning is logged).
    {
        let tokens = Server::new(issue_tokens("short", 1));
        let api = api_ok();
        let client = Client::new(cfg(&tokens, &api).build().unwrap());
        ok(client.token());
        tokens.set_default(Action::json(503, r#"{"error":"temporarily_unavailable"}"#));
        thread::sleep(ms(910));
        said.outcome("token during a failed refresh", &client.token());
        // The refresh runs on a thread of its own: wait for its warning.
        wait_until("the failed refresh's warning", secs(20), || {
            LOG_LINES
                .lock()
                .unwrap()
                .iter()
                .any(|(_, _, msg)| msg.contains("refresh failed"))
        });
    }

    // A slice of the fault matrix at the token endpoint.
    let echo_basic = Action::dynamic(|req| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        Action::json(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": format!("you sent {auth}")})
                .to_string(),
        )
    });
    let echo_body = Action::dynamic(|req| {
        Action::json(
            401,
            serde_json::json!({"error": "invalid_client", "error_description": format!("body was {}", req.text())})
                .to_string(),
        )
    });
    type Settings = &'static [(&'static str, &'static str)];
    let token_faults: Vec<(&str, Action, Settings)> = vec![
        (
            "401 Auth0",
            Action::json(
                401,
                r#"{"error":"access_denied","error_description":"Unauthorized"}"#,
            ),
            &[],
        ),
        ("401 echoing the request body", echo_body.clone(), &[]),
        (
            "401 echoing the form body",
            echo_body,
            &[("token_format", "form")],
        ),
        (
            "400 echoing the Basic header",
            echo_basic,
            &[("client_auth", "basic")],
        ),
        (
            "400 RFC",
            Action::json(400, r#"{"error":"invalid_client"}"#),
            &[],
        ),
        (
            "403",
            Action::json(403, r#"{"error":"access_denied"}"#),
            &[],
        ),
        (
            "429 exhausted",
            Action::status(429).header("Retry-After", "0"),
            &[],
        ),
        (
            "503 exhausted",
            Action::json(503, r#"{"message":"down"}"#),
            &[],
        ),
        ("reset", Action::Reset, &[]),
        (
            "RST after headers",
            Action::ResetAfterHeaders {
                status: 200,
                declared: 100,
            },
            &[],
        ),
        (
            "truncated",
            Action::Truncated {
                status: 200,
                declared: 100,
                sent: 10,
            },
            &[],
        ),
        ("hang", Action::Hang, &[]),
        (
            "slow drip",
            Action::Drip {
                status: 200,
                declared: 10_000,
                every: ms(50),
            },
            &[],
        ),
        (
            "garbage",
            Action::Raw(b"\x00\xffnot http\r\n\r\n".to_vec()),
            &[],
        ),
        (
            "oversized",
            Action::Oversized {
                status: 200,
                len: 70 * 1024,
            },
            &[],
        ),
        (
            "200 with error",
            Action::json(200, r#"{"error":"access_denied"}"#),
            &[],
        ),
        (
            "302",
            Action::redirect(302, "http://127.0.0.1:9/oauth/token"),
            &[],
        ),
        (
            "200 with a token not fit for a header",
            Action::json(200, token_body("TKN-bad token\r\nx: y", 60)),
            &[],
        ),
        (
            "200 with a token and a bad expires_in",
            Action::json(200, r#"{"access_token":"TKN-bad-exp","expires_in":-5}"#),
            &[],
        ),
        (
            "200 with a token and a bad token_type",
            Action::json(200, r#"{"access_token":"TKN-bad-type","token_type":"mac"}"#),
            &[],
        ),
    ];
    for (name, action, settings) in token_faults {
        let tokens = Server::new(action);
        let api = api_ok();
        let mut b = cfg(&tokens, &api).max_retries(1);
        for (k, v) in settings {
            b.set(k, v).unwrap();
        }
        let client = Client::new(b.build().unwrap());
        said.outcome(&format!("token endpoint: {name}: token()"), &client.token());
        said.outcome(
            &format!("token endpoint: {name}: get()"),
            &client.get("/v1/x").send(),
        );
        said.debug("Client after a failure", &client);
    }
    // TLS and connection failures.
    for (name, pki) in [
        (
            "wrong name",
            TestPki::with_server_cert(&["wrong.example"], None),
        ),
        (
            "expired",
            TestPki::with_server_cert(&["127.0.0.1"], Some(((2020, 1, 1), (2021, 1, 1)))),
        ),
    ] {
        let tokens = Server::new_tls(issue_tokens("t", 3600), pki.server_config.clone());
        let api = api_ok();
        let (_ca_dir, ca) = write_ca(&pki.ca_pem);
        let client = Client::new(cfg(&tokens, &api).ca_file(&ca).build().unwrap());
        said.outcome(&format!("TLS {name}"), &client.token());
    }
    {
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(
            Config::builder()
                .client_id(CLIENT_ID)
                .client_secret(SECRET)
                .token_url(format!("http://127.0.0.1:{dead}/oauth/token"))
                .max_retries(1)
                .retry_base(ms(5))
                .build()
                .unwrap(),
        );
        said.outcome("connection refused", &client.token());
    }

    // A slice at the API.
    let api_faults: Vec<(&str, Action)> = vec![
        ("401 always", Action::json(401, r#"{"message":"no"}"#)),
        ("403 always", Action::status(403)),
        ("500 always", Action::json(500, r#"{"message":"boom"}"#)),
        (
            "429 with Retry-After",
            Action::status(429).header("Retry-After", "0"),
        ),
        ("reset", Action::Reset),
        ("hang", Action::Hang),
        ("garbage", Action::Raw(b"garbage\r\n\r\n".to_vec())),
        (
            "oversized",
            Action::Oversized {
                status: 200,
                len: 96 * 1024,
            },
        ),
        (
            "redirect to another origin",
            Action::redirect(307, "http://127.0.0.1:9/steal"),
        ),
        (
            "echoing the Authorization header",
            Action::dynamic(|req| {
                let auth = req.header("authorization").unwrap_or_default().to_owned();
                Action::json(
                    400,
                    serde_json::json!({"message": format!("bad {auth}")}).to_string(),
                )
                .header("X-Echo", &auth)
            }),
        ),
    ];
    for (name, action) in api_faults {
        let tokens = Server::tokens();
        let api = Server::new(action);
        let client = Client::new(
            cfg(&tokens, &api)
                .max_retries(1)
                .max_response_bytes(64 * 1024)
                .build()
                .unwrap(),
        );
        said.outcome(&format!("api: {name}"), &client.get("/v1/x").send());
        said.outcome(
            &format!("api: {name}: PUT"),
            &client
                .put("/v1/x")
                .body(b"{}".to_vec(), "application/json")
                .send(),
        );
        said.debug("Client after an API fault", &client);
    }
    // Bad arguments.
    {
        let tokens = Server::tokens();
        let api = api_ok();
        let client = Client::new(cfg(&tokens, &api).build().unwrap());
        said.outcome("bad method", &client.request("GE T", "/v1/x").send());
        said.outcome("foreign origin", &client.get("http://127.0.0.1:9/x").send());
        said.outcome("bad path", &client.get("/v1/\r\nx").send());
        let mut b = Config::builder();
        said.outcome("secret as a number", &b.set("timeout_ms", SECRET));
        said.outcome("secret as a key", &b.set(SECRET, "x"));
        said.outcome(
            "secret as a URL",
            &b.set("token_url", SECRET).and_then(|_| b.build()),
        );
        said.outcome(
            "secret file missing",
            &Config::builder()
                .client_id(CLIENT_ID)
                .client_secret_file(tmp.join("no-such-secret"))
                .build(),
        );
    }

    // The sandbox, with the right and a wrong secret.
    let sandbox = Sandbox::builder().client_secret(SECRET).start().unwrap();
    said.debug("Sandbox", &sandbox);
    let good = Client::new(sandbox.config_builder().build().unwrap());
    let sandbox_token = ok(good.token());
    said.forbid(sandbox_token.secret());
    said.outcome("sandbox request", &good.get("/v1/transactions").send());
    let wrong_secret = "wrong-s3cr3t-for-the-sandbox";
    said.forbid(wrong_secret);
    let bad = Client::new(
        sandbox
            .config_builder()
            .client_secret(wrong_secret)
            .build()
            .unwrap(),
    );
    said.outcome("sandbox, wrong secret", &bad.token());
    sandbox.expire_tokens();
    said.outcome(
        "sandbox, token revoked",
        &good.get("/v1/transactions").send(),
    );
    said.debug("Sandbox after use", &sandbox);

    // The C ABI: every failure's last-error message.
    {
        let tokens = Server::tokens();
        let api = api_ok();
        let base = [
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("subscription_key", SUBSCRIPTION_KEY),
            ("max_retries", "1"),
            ("retry_base_ms", "5"),
            ("timeout_ms", "600"),
        ];
        let with = |extra: &[(&str, String)]| {
            let mut s: Vec<(String, String)> = base
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            s
        };
        let client_from = |s: &[(String, String)]| {
            let refs: Vec<(&str, &str)> = s.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c_calls::client(&refs)
        };
        let urls = |t: &Server, a: &Server| {
            vec![
                ("token_url", t.token_url()),
                ("api_base_url", format!("{}/backoffice", a.url())),
            ]
        };

        // Config errors with the secret as the value.
        let cfg_ptr = c_calls::config(&[]);
        for (key, value) in [
            ("timeout_ms", SECRET),
            ("token_format", SECRET),
            (SECRET, SECRET),
        ] {
            let (k, v) = (CString::new(key).unwrap(), CString::new(value).unwrap());
            assert_ne!(
                unsafe { lwolf_config_set(cfg_ptr, k.as_ptr(), v.as_ptr()) },
                lwolf_status::LWOLF_OK
            );
            said.c_message(&format!("lwolf_config_set({key:?}, secret)"));
        }
        let non_utf8 = b"s3cr3t-\xff-DO-NOT-LEAK\0";
        let k = CString::new("client_secret").unwrap();
        assert_ne!(
            unsafe { lwolf_config_set(cfg_ptr, k.as_ptr(), non_utf8.as_ptr().cast()) },
            lwolf_status::LWOLF_OK
        );
        said.c_message("lwolf_config_set(client_secret, non-UTF-8)");
        let mut out = ptr::null_mut();
        assert_ne!(
            unsafe { lwolf_client_new(cfg_ptr, &mut out) },
            lwolf_status::LWOLF_OK
        );
        said.c_message("lwolf_client_new without client_id");
        unsafe { lwolf_config_free(cfg_ptr) };

        // A good client: a short buffer, then success.
        let client = client_from(&with(&urls(&tokens, &api)));
        let mut small = [0 as c_char; 4];
        let mut len = 0usize;
        assert_eq!(
            unsafe { lwolf_client_token(client, small.as_mut_ptr(), small.len(), &mut len) },
            lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL
        );
        said.c_message("lwolf_client_token with a short buffer");
        let t = c_calls::token(client)
            .map_err(|(status, _)| status)
            .unwrap();
        assert!(t.starts_with(TOKEN_MARK));
        let foreign = format!("http://127.0.0.1:{}/x", tokens.port());
        assert_eq!(
            c_get(client, &foreign),
            lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
        );
        said.c_message("lwolf_client_request to another origin");
        unsafe { lwolf_client_free(client) };

        // Failures at the token endpoint and the API.
        let c_faults: Vec<(&str, Action, Action)> = vec![
            (
                "token 401",
                Action::json(401, r#"{"error":"invalid_client"}"#),
                Action::status(200),
            ),
            (
                "token 500",
                Action::json(500, r#"{"message":"down"}"#),
                Action::status(200),
            ),
            ("token reset", Action::Reset, Action::status(200)),
            ("token hang", Action::Hang, Action::status(200)),
            (
                "token oversized",
                Action::Oversized {
                    status: 200,
                    len: 70_000,
                },
                Action::status(200),
            ),
            ("api reset", issue_tokens("t", 3600), Action::Reset),
            (
                "api garbage",
                issue_tokens("t", 3600),
                Action::Raw(b"nope\r\n\r\n".to_vec()),
            ),
        ];
        for (name, token_action, api_action) in c_faults {
            let tokens = Server::new(token_action);
            let api = Server::new(api_action);
            let client = client_from(&with(&urls(&tokens, &api)));
            if c_calls::token(client)
                .map_err(|(status, _)| status)
                .is_err()
            {
                said.c_message(&format!("lwolf_client_token: {name}"));
            }
            if c_get(client, "/v1/x") != lwolf_status::LWOLF_OK {
                said.c_message(&format!("lwolf_client_request: {name}"));
            }
            unsafe { lwolf_client_free(client) };
        }
        // The sandbox with a wrong secret.
        let client = c_calls::client(&[
            ("client_id", sandbox.client_id()),
            ("client_secret", wrong_secret),
            ("token_url", &sandbox.token_url()),
            ("api_base_url", &sandbox.api_base_url()),
        ]);
        assert_eq!(
            c_calls::token(client).map_err(|(status, _)| status),
            Err(lwolf_status::LWOLF_ERR_INVALID_CREDENTIALS)
        );
        said.c_message("lwolf_client_token: sandbox, wrong secret");
        unsafe { lwolf_client_free(client) };
    }

    let c_records = C_RECORDS.lock().unwrap().clone();
    for (level, message) in &c_records {
        said.text(format!("C log callback, level {level}"), message.clone());
    }
    let checked = said.check();
    let log_lines = LOG_LINES.lock().unwrap().len();
    // The callback saw every level the library uses, and only the library's records: as
    // many as the facade saw under lwolf_auth's targets, none of ureq-proto's wire dump.
    for level in [
        LWOLF_LOG_WARN,
        LWOLF_LOG_INFO,
        LWOLF_LOG_DEBUG,
        LWOLF_LOG_TRACE,
    ] {
        assert!(
            c_records.iter().any(|(l, _)| *l == level),
            "no record at level {level} reached the C callback"
        );
    }
    // Every record is one the facade saw under lwolf_auth's targets (it gets each record
    // before the callback does; other tests of this binary log meanwhile, so no count).
    let ours: std::collections::HashSet<String> = LOG_LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, target, _)| target.starts_with("lwolf_auth"))
        .map(|(_, _, msg)| msg.clone())
        .collect();
    for (_, message) in &c_records {
        assert!(
            ours.contains(message),
            "the C callback got a record that is not the library's: {message}"
        );
    }
    assert!(c_records
        .iter()
        .any(|(l, m)| *l == LWOLF_LOG_WARN && m.contains("refresh failed")));
    let dump = wire_dump();
    let dump_rows = LOG_LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, target, _)| is_wire_dump(*level, target))
        .count();
    eprintln!(
        "ureq-proto TRACE wire dump: {dump_rows} rows; holds the secret: {}, a token: {} \
         (the dependency's hazard, documented in RELIABILITY.md)",
        dump.contains(SECRET),
        dump.contains(TOKEN_MARK)
    );
    let mut by_target: std::collections::BTreeMap<String, usize> = Default::default();
    for (level, target, _) in LOG_LINES.lock().unwrap().iter() {
        let crate_name = target.split("::").next().unwrap_or_default();
        *by_target
            .entry(format!("{crate_name} {level}"))
            .or_default() += 1;
    }
    eprintln!("log lines by crate and level: {by_target:?}");
    eprintln!(
        "leaks: {checked} strings checked ({} texts: {} errors, {} C last-error messages; \
         {log_lines} log lines), {} forbidden strings, 0 leaks, in {:.1?}",
        said.texts.len(),
        said.errors,
        said.c_messages,
        said.forbidden.len(),
        started.elapsed()
    );
    assert!(log_lines > 0, "the capturing logger saw nothing");
    assert!(
        LOG_LINES
            .lock()
            .unwrap()
            .iter()
            .any(|(_, target, msg)| target == "lwolf_auth::cache" && msg.contains("refresh failed")),
        "the failed refresh was not logged"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. HTTPS rules

#[test]
fn https_sends_nothing_readable_to_a_plain_server() {
    // An https:// URL pointing at a plain TCP listener: whatever the client sends there
    // must be a TLS handshake, never the request.
    for key in ["token_url", "api_base_url"] {
        let rec = Recorder::start();
        let tokens = Server::tokens();
        let url = format!("https://127.0.0.1:{}", rec.port);
        let mut b = builder(&tokens).timeout(ms(800)).max_retries(0);
        match key {
            "token_url" => b = b.token_url(format!("{url}/oauth/token")),
            _ => b = b.api_base_url(format!("{url}/backoffice")),
        }
        let e = err(Client::new(b.build().unwrap()).get("/v1/x").send());
        assert!(matches!(e, Error::Transport(_)), "{key}: {e:?}");
        thread::sleep(ms(350));
        let got = rec.received();
        assert!(
            rec.connections() >= 1,
            "{key}: the client did not even connect"
        );
        assert_eq!(
            got.first(),
            Some(&0x16),
            "{key}: not a TLS handshake record"
        );
        for needle in [
            SECRET,
            CLIENT_ID,
            TOKEN_MARK,
            "client_secret",
            "authorization",
            "POST",
            "GET",
        ] {
            assert!(
                !contains(&got, needle),
                "{key}: {needle:?} went out in the clear"
            );
        }
    }
}

#[test]
fn failed_tls_handshakes_send_nothing() {
    // The TLS server decrypts and records any request: none may arrive, neither the token
    // request (the secret) nor an API request (the token).
    let troubles = [
        ("untrusted CA", TestPki::new(), false),
        (
            "wrong name",
            TestPki::with_server_cert(&["wrong.example"], None),
            true,
        ),
        (
            "expired",
            TestPki::with_server_cert(&["127.0.0.1"], Some(((2020, 1, 1), (2021, 1, 1)))),
            true,
        ),
    ];
    for (name, pki, trust) in troubles {
        let ca_dir = trust.then(|| write_ca(&pki.ca_pem));
        let ca = ca_dir.as_ref().map(|(_, path)| path);
        // At the token endpoint.
        let tls = Server::new_tls(issue_tokens("t", 3600), pki.server_config.clone());
        let api = api_ok();
        let mut b = builder_for(&tls, &api).max_retries(2);
        if let Some(ca) = &ca {
            b = b.ca_file(ca);
        }
        let e = err(Client::new(b.build().unwrap()).get("/v1/x").send());
        assert!(matches!(e, Error::Transport(_)), "{name}: {e:?}");
        assert!(tls.connections() >= 1, "{name}");
        assert_eq!(
            tls.request_count(),
            0,
            "{name}: the token request went through"
        );
        assert_eq!(api.connections(), 0, "{name}");
        // At the API.
        let tokens = Server::tokens();
        let tls = Server::new_tls(Action::json(200, "{}"), pki.server_config.clone());
        let mut b = builder_for(&tokens, &tls).max_retries(2);
        if let Some(ca) = &ca {
            b = b.ca_file(ca);
        }
        let e = err(Client::new(b.build().unwrap()).get("/v1/x").send());
        assert!(matches!(e, Error::Transport(_)), "{name}: {e:?}");
        assert_eq!(
            tls.request_count(),
            0,
            "{name}: the API request went through"
        );
    }
}

#[test]
fn http_to_a_host_not_named_loopback_is_refused_even_if_it_reaches_loopback() {
    // Each of these hosts connects to 127.0.0.1 on Linux, but only `localhost`,
    // 127.0.0.0/8 and [::1] written plainly count as loopback: the rest must be refused
    // before anything is sent (the recording server listens on 127.0.0.1).
    let rec = Server::tokens();
    let port = rec.port();
    for host in [
        "0.0.0.0",
        "2130706433",
        "127.1",
        "0x7f.0.0.1",
        "017700000001",
    ] {
        let url = format!("http://{host}:{port}/oauth/token");
        for key in ["token_url", "api_base_url"] {
            let mut b = builder(&rec);
            b.set(key, &url).unwrap();
            let e = err(b.build());
            assert!(matches!(e, Error::Config(_)), "{key} {url}: {e:?}");
            // And through the C ABI.
            let cfg = c_calls::config(&[
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("subscription_key", SUBSCRIPTION_KEY),
                (key, &url),
            ]);
            let mut client = ptr::null_mut();
            assert_eq!(
                unsafe { lwolf_client_new(cfg, &mut client) },
                lwolf_status::LWOLF_ERR_CONFIG,
                "{url}"
            );
            unsafe { lwolf_config_free(cfg) };
        }
    }
    thread::sleep(ms(50));
    assert_eq!(rec.connections(), 0, "something was sent to a refused URL");
}

// ---------------------------------------------------------------------------------------------
// 3. Redirect rules

#[test]
fn token_endpoint_redirects_send_the_secret_nowhere() {
    let rec = Server::tokens();
    let targets = [
        rec.token_url(),
        format!("//127.0.0.1:{}/oauth/token", rec.port()),
        format!("http://localhost:{}/oauth/token", rec.port()),
    ];
    for status in [301u16, 302, 303, 307, 308] {
        for target in &targets {
            for settings in [
                &[][..],
                &[("token_format", "form")],
                &[("client_auth", "basic")],
            ] {
                let tokens = Server::new(Action::redirect(status, target));
                let mut b = builder(&tokens);
                for (k, v) in settings {
                    b.set(k, v).unwrap();
                }
                let e = err(Client::new(b.build().unwrap()).token());
                assert!(
                    matches!(e, Error::InvalidResponse(_)),
                    "{status} {target}: {e:?}"
                );
                assert_eq!(tokens.request_count(), 1);
            }
        }
    }
    assert_eq!(
        rec.connections(),
        0,
        "a redirect target received the token request"
    );
}

#[test]
fn api_redirects_to_other_origins_send_the_token_nowhere() {
    let rec = Server::new(Action::json(200, r#"{"stolen":true}"#));
    let tokens = Server::tokens();
    let api = api_ok();
    let r = rec.port();
    let a = api.port();
    let locations = [
        format!("http://127.0.0.1:{r}/steal"),
        format!("HTTP://127.0.0.1:{r}/steal"),
        format!("//127.0.0.1:{r}/steal"),
        format!("http://localhost:{r}/steal"),
        format!("http://127.0.0.1:{a}@127.0.0.1:{r}/steal"),
        format!("http://user@127.0.0.1:{r}/steal"),
        format!("/\\127.0.0.1:{r}/steal"),
        format!("\\\\127.0.0.1:{r}/steal"),
        format!("http:\\\\127.0.0.1:{r}/steal"),
        format!(" \thttp://127.0.0.1:{r}/steal"),
        format!("https://127.0.0.1:{a}/steal"),
        format!("http://localhost:{a}/steal"),
    ];
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    for status in [301u16, 302, 303, 307, 308] {
        for location in &locations {
            // A first hop within the origin, then the hop out.
            api.push(Action::redirect(302, "/backoffice/v1/hop"));
            api.push(Action::redirect(status, location));
            let before = api.request_count();
            let r = client.get("/v1/x").send();
            match &r {
                Ok(resp) => assert!(
                    resp.status() == status || resp.status() == 200,
                    "{status} {location:?}: {}",
                    resp.status()
                ),
                Err(e) => check_error(e),
            }
            // Whatever happened, it happened at the API's own origin.
            for req in &api.requests()[before..] {
                assert!(req.path.starts_with('/'), "{req:?}");
            }
        }
    }
    assert_eq!(rec.connections(), 0, "a redirect target received a request");
}

// ---------------------------------------------------------------------------------------------
// 4. Foreign-origin rules

#[test]
fn absolute_urls_to_other_origins_send_the_token_nowhere() {
    let rec = Server::new(Action::json(200, r#"{"stolen":true}"#));
    let tokens = Server::tokens();
    let api = api_ok();
    let (r, a) = (rec.port(), api.port());
    let urls = [
        format!("http://127.0.0.1:{r}/x"),
        format!("HTTP://127.0.0.1:{r}/x"),
        format!("http://localhost:{r}/x"),
        format!("http://127.0.0.1:{a}@127.0.0.1:{r}/x"),
        format!("http://127.0.0.1:{r}#@127.0.0.1:{a}/x"),
        format!("http://127.0.0.1:{r}?@127.0.0.1:{a}/x"),
        format!("https://127.0.0.1:{a}/x"),
        format!("http://localhost:{a}/x"),
        format!("http://[::1]:{a}/x"),
        format!("http:\\\\127.0.0.1:{r}/x"),
        format!(" http://127.0.0.1:{r}/x"),
    ];
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    let c = c_calls::client(&[
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("subscription_key", SUBSCRIPTION_KEY),
        ("token_url", &tokens.token_url()),
        ("api_base_url", &format!("{}/backoffice", api.url())),
    ]);
    for url in &urls {
        match client.get(url).send() {
            Err(e) => {
                assert!(matches!(e, Error::InvalidArgument(_)), "{url:?}: {e:?}");
                assert_eq!(
                    c_get(c, url),
                    lwolf_status::LWOLF_ERR_INVALID_ARGUMENT,
                    "{url:?}"
                );
            }
            // Taken as a path on the API's own origin: then it went there.
            Ok(resp) => assert!(
                resp.url().starts_with(&api.url()),
                "{url:?}: {}",
                resp.url()
            ),
        }
    }
    unsafe { lwolf_client_free(c) };
    assert_eq!(rec.connections(), 0, "another origin received a request");
    for req in api.requests() {
        // Nothing odd reached the API either: every request carried our token to our path.
        assert!(
            req.path.starts_with("/backoffice/") || req.path.starts_with("/x"),
            "{req:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Regression tests for the leaks found here

/// A server echoing the request back gives the secret away in other forms than itself: as
/// the form body encodes it, and as HTTP Basic's base64 credentials. Both are redacted
/// (found by `everything_said_is_free_of_secrets`; fixed in src/fetch.rs).
#[test]
fn a_server_echoing_encoded_credentials_cannot_leak_them() {
    let secret = "p@ss w0rd/+=&%-DO-NOT-LEAK";
    let form_encoded = "p%40ss+w0rd%2F%2B%3D%26%25-DO-NOT-LEAK";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{CLIENT_ID}:{}",
        // HTTP Basic url-encodes both parts first (RFC 6749 §2.3.1).
        form_encoded
    ));
    let echo = Action::dynamic(|req| {
        let said = format!(
            "body {} auth {}",
            req.text(),
            req.header("authorization").unwrap_or_default()
        );
        Action::json(
            400,
            serde_json::json!({"error": said.clone(), "error_description": said}).to_string(),
        )
    });
    for settings in [
        &[("token_format", "form")][..],
        &[("token_format", "form"), ("client_auth", "basic")],
        &[("client_auth", "basic")],
    ] {
        let server = Server::new(echo.clone());
        let mut b = builder(&server).client_secret(secret);
        for (k, v) in settings {
            b.set(k, v).unwrap();
        }
        let e = Client::new(b.build().unwrap()).token().unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("[redacted]"),
            "{settings:?}: nothing echoed? {text}"
        );
        for leaked in [secret, form_encoded, basic.as_str()] {
            assert!(!text.contains(leaked), "{settings:?}: {leaked:?} in {text}");
        }
    }
}

/// With the key and the value swapped, the "key" is the secret: an unknown key is named in
/// the message only when it looks like a key name (found by
/// `everything_said_is_free_of_secrets`; fixed in src/config.rs).
#[test]
fn an_unknown_key_is_named_only_when_it_looks_like_one() {
    let mut b = Config::builder();
    let e = b.set("client_secrte", "x").unwrap_err();
    assert!(e.to_string().contains("\"client_secrte\""), "{e}");
    let e = b.set("CLIENT_SECRET", "x").unwrap_err();
    assert!(
        e.to_string().contains("did you mean \"client_secret\""),
        "{e}"
    );
    for secret in [SECRET, "abcDEF123", "a-b", "x".repeat(40).as_str(), ""] {
        let e = b.set(secret, "client_secret").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        if !secret.is_empty() {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
    // And through the C ABI.
    let cfg = c_calls::config(&[]);
    let (k, v) = (
        CString::new(SECRET).unwrap(),
        CString::new("client_secret").unwrap(),
    );
    assert_eq!(
        unsafe { lwolf_config_set(cfg, k.as_ptr(), v.as_ptr()) },
        lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
    );
    // SAFETY: NUL-terminated, valid until this thread's next lwolf_ call.
    let msg = unsafe { CStr::from_ptr(lwolf_last_error_message()) }
        .to_string_lossy()
        .into_owned();
    assert!(!msg.contains(SECRET) && msg.contains("swapped"), "{msg}");
    unsafe { lwolf_config_free(cfg) };
}
