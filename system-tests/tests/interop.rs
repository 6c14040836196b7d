//! Interop with OAuth 2.0 servers no one here wrote, installed from the npm registry into
//! `tests/interop/node_modules` (`npm ci` there; `.ci/run` does it) and started on
//! 127.0.0.1, port 0, by each test:
//!
//! - panva's `oidc-provider` 8 (an OpenID Certified server), client credentials grant, with
//!   `client_secret_post` and `client_secret_basic` clients and RFC 9068 JWT access tokens
//!   (`system-tests/interop/oidc-provider.mjs`);
//! - `oauth2-mock-server` 7 (`system-tests/interop/oauth2-mock-server.cjs`), which takes JSON bodies.
//!
//! Each script prints `{"port":…}` on its first stdout line, then one JSON line per token
//! endpoint outcome (from the server's own event hooks): that is how the tests count the
//! requests that really reached the server. The process is killed when the test ends (and
//! exits by itself when its stdin closes).
//!
//! Missing `node` or missing packages FAIL the tests with what to run; they never pass
//! silently.

use lwolf_test_support::c_calls;
use lwolf_test_support::common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::*;
use lwolf_auth_ffi::lwolf_status;

use lwolf_auth::{AccessToken, Client, ConfigBuilder, Error};
use serde_json::Value;

const OIDC_SCRIPT: &str = "oidc-provider.mjs";
const MOCK_SCRIPT: &str = "oauth2-mock-server.cjs";
/// The clients `oidc-provider.mjs` registers.
const POST_CLIENT: &str = "interop-post";
const POST_SECRET: &str = "interop-post-s3cr3t-DO-NOT-LEAK";
const BASIC_CLIENT: &str = "interop-basic";
/// Every character HTTP Basic must url-encode (RFC 6749 §2.3.1) is in here.
const BASIC_SECRET: &str = "interop basic:s3cr3t/+&=%-DO-NOT-LEAK";
const RESOURCE: &str = "https://api.lwolf.com";
/// oidc-provider.mjs's DPoP client: its tokens are bound to the proof's key.
const DPOP_CLIENT: &str = "interop-dpop";
const DPOP_SECRET: &str = "interop-dpop-s3cr3t-DO-NOT-LEAK";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Fails the test, with what to do, unless `node` and the npm packages are there. When the
/// packages are missing they are installed once (`npm ci`, pinned by package-lock.json), so
/// the README's test command works on a fresh machine; if that fails, so does the test.
fn require_packages() {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "`node` is not installed, and the interop tests need it (Node.js 18 or later; \
             on Debian/Ubuntu: apt-get install nodejs npm)"
        ),
    }
    let missing = || {
        ["oidc-provider", "oauth2-mock-server"]
            .into_iter()
            .find(|package| {
                !interop_dir()
                    .join("node_modules")
                    .join(package)
                    .join("package.json")
                    .is_file()
            })
    };
    let _one_installer = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if missing().is_some() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(interop_dir())
            .output();
        let detail = match out {
            Ok(out) if out.status.success() => String::new(),
            Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        if let Some(package) = missing() {
            panic!(
                "the npm package `{package}` is missing and `npm ci` in {} did not install it \
                 (is the npm registry reachable?): {detail}",
                interop_dir().display()
            );
        }
    }
}

/// A node OAuth server, killed on drop.
struct NodeServer {
    child: Child,
    /// Held open: the script exits when it closes.
    _stdin: Option<ChildStdin>,
    info: Value,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl NodeServer {
    fn start(script: &str, args: &[&str]) -> NodeServer {
        require_packages();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr_pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = mpsc::channel();
        {
            let events = events.clone();
            thread::spawn(move || {
                let mut first = Some(first_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let Ok(value) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    match first.take() {
                        Some(tx) => {
                            let _ = tx.send(value);
                        }
                        None => events.lock().unwrap().push(value),
                    }
                }
            });
        }
        let info = match first_rx.recv_timeout(secs(60)) {
            Ok(info) => info,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(ms(100));
                panic!(
                    "node {script} did not print its port within 60 s; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        assert!(info["port"].as_u64().is_some(), "no port in {info}");
        NodeServer {
            child,
            _stdin: stdin,
            info,
            events,
            stderr,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.info["port"])
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    fn version(&self) -> String {
        self.info["version"].as_str().unwrap_or("?").to_owned()
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// Waits (up to 5 s) until `event` was reported at least `n` times, then a little longer
    /// for stragglers; returns the count.
    fn settle(&self, event: &str, n: usize) -> usize {
        let start = Instant::now();
        while self.count(event) < n && start.elapsed() < secs(5) {
            thread::sleep(ms(10));
        }
        thread::sleep(ms(150));
        self.count(event)
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("server stderr:\n{}", self.stderr.lock().unwrap());
        }
    }
}

/// The claims of a JWT, decoded without verifying it.
fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {} parts", parts.len());
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("JWT payload is base64url");
    serde_json::from_slice(&payload).expect("JWT payload is JSON")
}

/// Asserts the JWT's `exp - iat` is the `expires_in` the client read (its lifetime).
#[track_caller]
fn assert_lifetime_matches_jwt(token: &AccessToken, expires_in: u64) -> Value {
    let c = claims(token.secret());
    let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, expires_in, "exp - iat in {c}");
    assert_eq!(
        token.lifetime(),
        secs(expires_in),
        "the client's lifetime is expires_in"
    );
    c
}

fn builder(token_url: &str, client_id: &str, secret: &str) -> ConfigBuilder {
    lwolf_auth::Config::builder()
        .client_id(client_id)
        .client_secret(secret)
        .token_url(token_url)
        .max_retries(1)
        .retry_base(ms(10))
        .retry_max(ms(100))
        .timeout(secs(10))
}

fn with(mut b: ConfigBuilder, settings: &[(&str, &str)]) -> ConfigBuilder {
    for (k, v) in settings {
        b.set(k, v).unwrap();
    }
    b
}

/// Calls `token()` every 20 ms for `ttl` + 1.5 s from a first token of lifetime `ttl`:
/// the token is served unchanged until it is due (85-90% of the lifetime), then exactly
/// one new one is fetched, and no call ever gets an expired token. Returns the first and
/// the second token.
fn watch_refresh(client: &Client, ttl: u64) -> (AccessToken, AccessToken) {
    let started = Instant::now();
    let first = ok(client.token());
    let mut current = first.clone();
    let mut switches = Vec::new();
    while started.elapsed() < secs(ttl) + ms(1500) {
        let t = ok(client.token());
        let now = SystemTime::now();
        assert!(
            t.expires_at() > now,
            "an expired token was handed out at {:?}",
            started.elapsed()
        );
        // The server's own view of expiry: its `exp` has whole-second resolution and its
        // `iat` is rounded down, so it may end up to 1 s before the client's count (which
        // starts when the request was sent). Within that second, nothing else is allowed.
        let exp = claims(t.secret())["exp"].as_f64().unwrap();
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(
            now_secs < exp + 1.0,
            "a token the server has expired for over a second was handed out"
        );
        if t.secret() != current.secret() {
            switches.push(started.elapsed());
            current = t;
        }
        thread::sleep(ms(20));
    }
    assert_eq!(
        switches.len(),
        1,
        "exactly one refresh in {ttl} s + 1.5 s: {switches:?}"
    );
    let at = switches[0].as_secs_f64() / ttl as f64;
    assert!(
        (0.84..=1.0).contains(&at),
        "refreshed at {:.0}% of the lifetime ({:?}); due at 85-90%",
        at * 100.0,
        switches[0]
    );
    eprintln!(
        "refreshed at {:?} ({:.1}% of {ttl} s)",
        switches[0],
        at * 100.0
    );
    (first, current)
}

// ---------------------------------------------------------------------------------------------
// oidc-provider

#[test]
fn oidc_provider_client_secret_post_form_jwt_and_caching() {
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    eprintln!("oidc-provider {} at {}", server.version(), server.url());
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    let client = Client::new(
        with(
            builder(&server.token_url(), POST_CLIENT, POST_SECRET),
            &[("token_format", "form"), ("client_auth", "body")],
        )
        .api_base_url(format!("{}/backoffice", api.url()))
        .build()
        .unwrap(),
    );
    let token = ok(client.token());
    let c = assert_lifetime_matches_jwt(&token, 3600);
    assert_eq!(c["client_id"], POST_CLIENT, "{c}");
    assert_eq!(c["aud"], RESOURCE, "{c}");
    assert_eq!(c["iss"], server.info["issuer"], "{c}");

    // 1000 calls and a few API requests: one token request reached the server.
    for _ in 0..1000 {
        assert_eq!(ok(client.token()).secret(), token.secret());
    }
    for _ in 0..5 {
        assert_eq!(ok(client.get("/v1/x").send()).status(), 200);
    }
    assert_eq!(server.settle("grant.success", 1), 1);
    assert_eq!(server.count("grant.error"), 0);
    let bearer = format!("Bearer {}", token.secret());
    for r in api.requests() {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()));
    }
    assert_eq!(api.request_count(), 5);

    // invalidate() really asks again, and the server issues a different JWT.
    client.invalidate();
    let again = ok(client.token());
    assert_ne!(again.secret(), token.secret());
    assert_eq!(server.settle("grant.success", 2), 2);
}

#[test]
fn oidc_provider_client_secret_basic_url_encodes_the_credentials() {
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    let client = Client::new(
        with(
            builder(&server.token_url(), BASIC_CLIENT, BASIC_SECRET),
            &[("token_format", "form"), ("client_auth", "basic")],
        )
        .build()
        .unwrap(),
    );
    let token = ok(client.token());
    let c = assert_lifetime_matches_jwt(&token, 3600);
    assert_eq!(c["client_id"], BASIC_CLIENT, "{c}");
    assert_eq!(c["aud"], RESOURCE, "{c}");
    for _ in 0..500 {
        ok(client.token());
    }
    assert_eq!(server.settle("grant.success", 1), 1);
}

#[test]
fn oidc_provider_wrong_secret_is_invalid_client() {
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    let wrong = "wrong-s3cr3t-DO-NOT-LEAK";
    let cases = [
        (POST_CLIENT, "body", "client_secret_post, wrong secret"),
        (BASIC_CLIENT, "basic", "client_secret_basic, wrong secret"),
    ];
    for (client_id, auth, what) in cases {
        let client = Client::new(
            with(
                builder(&server.token_url(), client_id, wrong),
                &[("token_format", "form"), ("client_auth", auth)],
            )
            .build()
            .unwrap(),
        );
        let e = err(client.token());
        assert!(matches!(e, Error::InvalidCredentials(_)), "{what}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 3);
        let failure = e.http_failure().unwrap();
        assert_eq!(failure.status, 401, "{what}");
        assert_eq!(failure.error.as_deref(), Some("invalid_client"), "{what}");
        assert_eq!(e.attempts(), 1, "{what}: a 401 is not retried");
        assert!(e.to_string().contains("invalid_client"), "{e}");
        assert!(!format!("{e} {e:?}").contains(wrong), "{e:?}");
    }
    // The right secret sent the other way (the basic client's in the body) is taken:
    // oidc-provider 8 treats client_secret_basic and client_secret_post as one family
    // (lib/shared/token_auth.js), so this is no error, and the encoding round-trips.
    let client = Client::new(
        with(
            builder(&server.token_url(), BASIC_CLIENT, BASIC_SECRET),
            &[("token_format", "form"), ("client_auth", "body")],
        )
        .build()
        .unwrap(),
    );
    assert_eq!(
        claims(ok(client.token()).secret())["client_id"],
        BASIC_CLIENT
    );
    assert_eq!(server.settle("grant.error", 2), 2);
    assert_eq!(server.count("grant.success"), 1);
}

#[test]
fn oidc_provider_private_key_jwt_rs256_and_ps256_through_rust_and_c() {
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    let issuer = server.info["issuer"].as_str().unwrap().to_owned();
    for (client_id, alg, key) in [
        ("interop-jwt-rs256", "RS256", "rsa-pkcs8.pem"),
        ("interop-jwt-ps256", "PS256", "rsa-pkcs1.pem"),
    ] {
        let key = test_key(key);
        // oidc-provider's issuer has no trailing slash (Auth0's has one, the default).
        let settings = [
            ("client_id", client_id),
            ("token_url", &*server.token_url()),
            ("token_format", "form"),
            ("client_auth", "private_key_jwt"),
            ("private_key_file", key.to_str().unwrap()),
            ("assertion_alg", alg),
            ("assertion_audience", &*issuer),
            ("audience", RESOURCE),
        ];
        let mut b = lwolf_auth::Config::builder();
        for (k, v) in settings {
            b.set(k, v).unwrap();
        }
        let client = Client::new(b.build().unwrap());
        let token = ok(client.token());
        assert_eq!(claims(token.secret())["client_id"], client_id, "{alg}");
        // And through the C ABI, with the same settings.
        let c_client = c_calls::client(&settings);
        let c_token = c_calls::token(c_client).unwrap_or_else(|e| panic!("{alg} through C: {e:?}"));
        assert_eq!(claims(&c_token)["client_id"], client_id, "{alg}");
        // SAFETY: made above, freed once.
        unsafe { lwolf_auth_ffi::lwolf_client_free(c_client) };
    }
    assert_eq!(server.settle("grant.success", 4), 4);
    assert_eq!(server.count("grant.error"), 0);

    // Signed with another key: invalid_client.
    let mut b = lwolf_auth::Config::builder();
    for (k, v) in [
        ("client_id", "interop-jwt-rs256"),
        ("token_url", &*server.token_url()),
        ("token_format", "form"),
        ("client_auth", "private_key_jwt"),
        (
            "private_key_file",
            test_key("rsa3072-pkcs8.pem").to_str().unwrap(),
        ),
        ("assertion_audience", &*issuer),
    ] {
        b.set(k, v).unwrap();
    }
    let e = err(Client::new(b.build().unwrap()).token());
    assert!(matches!(e, Error::InvalidCredentials(_)), "{e:?}");
}

/// `examples-c/signer.c`: the assertion signed by OpenSSL's libcrypto, whose key the library
/// never sees, accepted by oidc-provider (RS256 and PS256; the key's `kid` as registered).
#[test]
fn oidc_provider_accepts_a_c_signer_on_openssl() {
    assert!(
        std::path::Path::new("/usr/include/openssl/evp.h").exists(),
        "OpenSSL's headers are not installed, and this test needs them \
         (on Debian/Ubuntu: apt-get install libssl-dev; cargo xtask test does this)"
    );
    let build = lwolf_test_support::ffi_support::make_examples(&["signer"], "interop-signer");
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    let issuer = server.info["issuer"].as_str().unwrap().to_owned();
    for (client_id, alg, key) in [
        ("interop-jwt-rs256", "RS256", "rsa-pkcs8.pem"),
        ("interop-jwt-ps256", "PS256", "rsa-pkcs1.pem"),
    ] {
        let mut cmd = lwolf_test_support::ffi_support::clean_command(build.join("dynamic/signer"));
        cmd.arg(test_key(key))
            .env("LWOLF_CLIENT_ID", client_id)
            .env("LWOLF_TOKEN_URL", server.token_url())
            .env("LWOLF_TOKEN_FORMAT", "form")
            .env("LWOLF_ASSERTION_ALG", alg)
            .env("LWOLF_ASSERTION_AUDIENCE", &issuer)
            .env("LWOLF_AUDIENCE", RESOURCE)
            .env("LWOLF_PRIVATE_KEY_ID", "vault-key-1")
            .env("LWOLF_CACHE_DIR", "");
        let out = lwolf_test_support::ffi_support::run(&mut cmd, Duration::from_secs(120));
        let stdout =
            lwolf_test_support::ffi_support::expect_success(&out, &format!("signer {alg}"));
        assert!(stdout.contains("token_requests: 1\n"), "{alg}: {stdout}");
    }
    assert_eq!(server.settle("grant.success", 2), 2);
    assert_eq!(server.count("grant.error"), 0);
}

#[test]
fn oidc_provider_dpop_bound_tokens_with_and_without_nonces() {
    for args in [&[][..], &["--dpop-nonce"][..]] {
        let server = NodeServer::start(OIDC_SCRIPT, args);
        let settings = [
            ("client_id", DPOP_CLIENT),
            ("client_secret", DPOP_SECRET),
            ("token_url", &*server.token_url()),
            ("token_format", "form"),
            ("dpop", "on"),
            (
                "dpop_key_file",
                &*test_key("ec-p256-pkcs8.pem").to_string_lossy().into_owned(),
            ),
        ];
        let mut b = lwolf_auth::Config::builder();
        for (k, v) in settings {
            b.set(k, v).unwrap();
        }
        let client = Client::new(b.build().unwrap());
        let token = ok(client.token());
        assert_eq!(token.token_type(), lwolf_auth::TokenType::Dpop, "{args:?}");
        // The JWT names the key it is bound to.
        let c = claims(token.secret());
        assert!(
            c["cnf"]["jkt"].as_str().is_some_and(|j| j.len() == 43),
            "{args:?}: {c}"
        );
        // Through the C ABI: lwolf_token_info says DPoP.
        let c_client = c_calls::client(&settings);
        let mut info = std::mem::MaybeUninit::<lwolf_auth_ffi::lwolf_token_info>::uninit();
        // SAFETY: a live client and a writable out-parameter; freed once below.
        let status =
            unsafe { lwolf_auth_ffi::lwolf_client_token_info(c_client, info.as_mut_ptr()) };
        assert_eq!(status, lwolf_status::LWOLF_OK, "{}", c_calls::last_error());
        // SAFETY: written on success; NUL-terminated by the library.
        let token_type =
            unsafe { std::ffi::CStr::from_ptr(info.assume_init().token_type.as_ptr()).to_owned() };
        assert_eq!(token_type.to_str().unwrap(), "DPoP");
        unsafe { lwolf_auth_ffi::lwolf_client_free(c_client) };
        assert_eq!(server.settle("grant.success", 2), 2, "{args:?}");
        // With nonces required, each client's first proof (without one) was refused, and
        // the request sent once more with the nonce given: one use_dpop_nonce per client.
        let refused = server
            .events()
            .iter()
            .filter(|e| e["event"] == "grant.error" && e["error"] == "use_dpop_nonce")
            .count();
        assert_eq!(
            refused,
            if args.is_empty() { 0 } else { 2 },
            "{args:?}: {:?}",
            server.events()
        );
    }
}

#[test]
fn oidc_provider_refuses_json_bodies_with_invalid_request() {
    let server = NodeServer::start(OIDC_SCRIPT, &[]);
    // The vendor's JSON body (the default token_format): oidc-provider, like RFC 6749 §4.4.2,
    // takes only form bodies and says so with a 400 invalid_request.
    let client = Client::new(
        with(
            builder(&server.token_url(), POST_CLIENT, POST_SECRET),
            &[("token_format", "json")],
        )
        .build()
        .unwrap(),
    );
    let e = err(client.token());
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 4);
    let failure = e.http_failure().unwrap();
    assert_eq!(failure.status, 400);
    assert_eq!(failure.error.as_deref(), Some("invalid_request"));
    let description = failure.description.as_deref().unwrap_or_default();
    assert!(
        description.contains("only application/x-www-form-urlencoded content-type bodies"),
        "{description}"
    );
    assert_eq!(e.attempts(), 1, "a 400 is not retried");
    assert!(!format!("{e} {e:?}").contains(POST_SECRET));
    assert_eq!(server.settle("grant.error", 1), 1);
}

#[test]
fn oidc_provider_refresh_of_a_4_second_token() {
    let server = NodeServer::start(OIDC_SCRIPT, &["--ttl", "4"]);
    let client = Client::new(
        with(
            builder(&server.token_url(), POST_CLIENT, POST_SECRET),
            &[("token_format", "form")],
        )
        .build()
        .unwrap(),
    );
    let (first, second) = watch_refresh(&client, 4);
    let c1 = assert_lifetime_matches_jwt(&first, 4);
    let c2 = assert_lifetime_matches_jwt(&second, 4);
    assert!(c2["iat"].as_u64() > c1["iat"].as_u64(), "{c1} then {c2}");
    assert_eq!(
        server.settle("grant.success", 2),
        2,
        "one fetch, one refresh"
    );
}

// ---------------------------------------------------------------------------------------------
// oauth2-mock-server

#[test]
fn oauth2_mock_server_takes_the_vendors_json_body() {
    let server = NodeServer::start(MOCK_SCRIPT, &[]);
    eprintln!(
        "oauth2-mock-server {} at {}",
        server.version(),
        server.url()
    );
    // The defaults: token_format json, client_auth body (the vendor's request).
    let client = Client::new(
        builder(&server.token_url(), CLIENT_ID, SECRET)
            .build()
            .unwrap(),
    );
    let token = ok(client.token());
    // As shipped, the server issues 3600 s tokens: expires_in and exp - iat agree.
    assert_lifetime_matches_jwt(&token, 3600);
    for _ in 0..1000 {
        assert_eq!(ok(client.token()).secret(), token.secret());
    }
    assert_eq!(server.settle("token", 1), 1);
    let event = &server.events()[0];
    assert_eq!(event["content_type"], "application/json", "{event}");
    assert_eq!(event["grant_type"], "client_credentials", "{event}");
    assert_eq!(event["client_id"], CLIENT_ID, "{event}");
    assert_eq!(event["status"], 200, "{event}");

    // The form body is taken as well.
    let form = Client::new(
        with(
            builder(&server.token_url(), CLIENT_ID, SECRET),
            &[("token_format", "form")],
        )
        .build()
        .unwrap(),
    );
    assert_lifetime_matches_jwt(&ok(form.token()), 3600);
    assert_eq!(server.settle("token", 2), 2);
    let event = &server.events()[1];
    assert_eq!(
        event["content_type"], "application/x-www-form-urlencoded",
        "{event}"
    );
    assert_eq!(event["client_id"], CLIENT_ID, "{event}");
}

#[test]
fn oauth2_mock_server_refresh_of_a_4_second_token() {
    let server = NodeServer::start(MOCK_SCRIPT, &["--ttl", "4"]);
    let client = Client::new(
        builder(&server.token_url(), CLIENT_ID, SECRET)
            .build()
            .unwrap(),
    );
    let (first, second) = watch_refresh(&client, 4);
    let c1 = assert_lifetime_matches_jwt(&first, 4);
    let c2 = assert_lifetime_matches_jwt(&second, 4);
    assert!(c2["iat"].as_u64() > c1["iat"].as_u64(), "{c1} then {c2}");
    assert_eq!(server.settle("token", 2), 2, "one fetch, one refresh");
}
