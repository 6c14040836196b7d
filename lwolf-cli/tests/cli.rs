//! The `lwolf` command (feature `cli`), run as a separate process against the in-process
//! sandbox on loopback. Every run is checked for the secret in its output.

#![cfg(unix)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use lwolf_sandbox::Sandbox;

use ffi_support::clean_command;
use lwolf_test_support::ffi_support;
use lwolf_test_support::temp_dir;
use temp_dir::TempDir;

/// A secret that is easy to spot in any output.
const SECRET: &str = "cli-s3cr3t-MUST-NOT-SHOW";
const LWOLF: &str = env!("CARGO_BIN_EXE_lwolf");

/// A sandbox with a distinctive secret, and a private home for the command's cache.
struct Setup {
    sandbox: Sandbox,
    home: TempDir,
}

fn setup(tag: &str) -> Setup {
    Setup {
        sandbox: Sandbox::builder().client_secret(SECRET).start().unwrap(),
        home: TempDir::new(tag),
    }
}

impl Setup {
    /// `lwolf` with a clean environment: the sandbox's settings, HOME in the temp dir,
    /// and the shared cache in `<home>/cache`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bare_command(args, &self.home);
        cmd.env("LWOLF_CLIENT_ID", self.sandbox.client_id())
            .env("LWOLF_CLIENT_SECRET", SECRET)
            .env("LWOLF_TOKEN_URL", self.sandbox.token_url())
            .env("LWOLF_API_BASE_URL", self.sandbox.api_base_url())
            .env("LWOLF_CACHE_DIR", self.cache_dir());
        cmd
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.join("cache")
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }
}

/// `lwolf` with no `LWOLF_*`, no XDG_CACHE_HOME, and HOME in `home`.
fn bare_command(args: &[&str], home: &TempDir) -> Command {
    let mut cmd = clean_command(LWOLF);
    cmd.args(args)
        .env("HOME", home.path())
        .env_remove("XDG_CACHE_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a run printed, checked for the secret.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(mut cmd: Command) -> Run {
    finish(cmd.output().unwrap())
}

fn finish(out: Output) -> Run {
    let run = Run {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "the secret was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{}",
        run.stderr
    );
    run
}

/// The JWT payload of a sandbox token.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Seconds since 1970 of a `YYYY-MM-DDTHH:MM:SSZ` time (days from the civil date, by
/// Howard Hinnant's `days_from_civil`, written independently of the command's own code).
fn parse_rfc3339(s: &str) -> u64 {
    assert_eq!(s.len(), 20, "{s}");
    assert!(s.ends_with('Z') && &s[10..11] == "T", "{s}");
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

// ---------------------------------------------------------------------------------------------
// Many processes

fn twenty_at_once(setup: &Setup, args: &[&str]) -> Vec<Run> {
    let children: Vec<Child> = (0..20)
        .map(|_| setup.command(args).spawn().unwrap())
        .collect();
    children
        .into_iter()
        .map(|c| finish(c.wait_with_output().unwrap()))
        .collect()
}

#[test]
fn twenty_cold_processes_make_one_token_request() {
    let setup = setup("twenty");
    let runs = twenty_at_once(&setup, &["token"]);
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, runs[0].stdout);
    }
    let token = runs[0].stdout.trim_end();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
    assert_eq!(setup.sandbox.token_requests(), 1);
    assert_eq!(setup.sandbox.tokens_issued(), 1);
}

#[test]
fn without_the_shared_cache_twenty_processes_make_twenty_token_requests() {
    let setup = setup("twenty-nocache");
    let runs = twenty_at_once(&setup, &["--no-cache", "token"]);
    assert!(runs.iter().all(|r| r.code == 0));
    assert_eq!(setup.sandbox.token_requests(), 20);
    assert!(!setup.cache_dir().exists());
}

// ---------------------------------------------------------------------------------------------
// token

#[test]
fn token_prints_the_bare_token_then_reuses_it() {
    let setup = setup("token");
    let first = setup.run(&["token"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stderr, "");
    assert!(first.stdout.ends_with('\n'));
    assert_eq!(first.stdout.lines().count(), 1);
    let token = first.stdout.trim_end();
    assert_eq!(claims(token)["sub"], "sandbox-client");
    assert_eq!(setup.run(&["token"]).stdout, first.stdout);
    assert_eq!(setup.sandbox.token_requests(), 1);
    // The cache file is private and holds the token sealed, never in plain text.
    let files: Vec<_> = fs::read_dir(setup.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "token"))
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(fs::metadata(&files[0]).unwrap().mode() & 0o777, 0o600);
    let sealed = fs::read(&files[0]).unwrap();
    assert_eq!(sealed[0], 1, "the format version");
    assert!(!String::from_utf8_lossy(&sealed).contains(token));
}

#[test]
fn token_json() {
    let setup = setup("json");
    let r = setup.run(&["token", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "expires_at",
            "fingerprint",
            "refresh_at",
            "source",
            "token",
            "token_type"
        ]
    );
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["source"], "token endpoint");
    let token = json["token"].as_str().unwrap();
    assert_eq!(setup.run(&["token"]).stdout.trim_end(), token);
    let fingerprint = json["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 12);
    assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    // The sandbox grants a day; the refresh comes at 85-90% of it.
    let now = unix_now();
    let expires = parse_rfc3339(json["expires_at"].as_str().unwrap());
    let refresh = parse_rfc3339(json["refresh_at"].as_str().unwrap());
    assert!(expires.abs_diff(now + 86_400) <= 5, "{expires} vs {now}");
    assert!(refresh >= now + 86_400 * 85 / 100 - 5 && refresh <= now + 86_400 * 90 / 100 + 5);
    assert_eq!(claims(token)["exp"].as_u64().unwrap().abs_diff(expires), 0);
}

#[test]
fn token_for_a_tenant() {
    let setup = setup("tenant");
    let plain = setup.run(&["token"]);
    let tenant = setup.run(&["token", "--tenant", "customer-42"]);
    assert_eq!(tenant.code, 0, "{}", tenant.stderr);
    assert_ne!(plain.stdout, tenant.stdout);
    assert_eq!(
        claims(tenant.stdout.trim_end())["lwt_client_id"],
        "customer-42"
    );
    assert!(claims(plain.stdout.trim_end())
        .get("lwt_client_id")
        .is_none());
    // Each has its own cache file, reused.
    assert_eq!(
        setup.run(&["--tenant=customer-42", "token"]).stdout,
        tenant.stdout
    );
    assert_eq!(setup.sandbox.token_requests(), 2);
}

#[test]
fn the_default_cache_is_under_xdg_cache_home_or_home() {
    let setup = setup("xdg");
    let xdg = setup.home.join("xdg");
    let mut cmd = setup.command(&["token"]);
    cmd.env_remove("LWOLF_CACHE_DIR")
        .env("XDG_CACHE_HOME", &xdg);
    assert_eq!(run(cmd).code, 0);
    assert!(xdg.join("lwolf-auth").is_dir());

    let mut cmd = setup.command(&["info"]);
    cmd.env_remove("LWOLF_CACHE_DIR");
    let r = run(cmd);
    let home_cache = setup.home.join(".cache").join("lwolf-auth");
    assert!(
        r.stdout.contains(&home_cache.display().to_string()),
        "{}",
        r.stdout
    );
    assert!(home_cache.is_dir());
    assert_eq!(fs::metadata(&home_cache).unwrap().mode() & 0o777, 0o700);

    // An empty LWOLF_CACHE_DIR, or --no-cache, keeps the token in memory.
    let mut cmd = setup.command(&["info"]);
    cmd.env("LWOLF_CACHE_DIR", "");
    let r = run(cmd);
    assert!(r.stdout.contains("cache_file   - (off)"), "{}", r.stdout);
    let r = setup.run(&["--no-cache", "info"]);
    assert!(r.stdout.contains("cache_file   - (off)"), "{}", r.stdout);
    assert!(!setup.cache_dir().exists());
}

#[test]
fn info_prints_the_clients_counters() {
    let setup = setup("info-stats");
    let first = setup.run(&["info"]);
    assert!(
        first
            .stdout
            .contains("stats        token_requests=1 tokens_shared=0 token_failures=0 retries=0"),
        "{}",
        first.stdout
    );
    // The second process takes the first one's token from the shared cache.
    let second = setup.run(&["info"]);
    assert!(
        second
            .stdout
            .contains("stats        token_requests=0 tokens_shared=1 token_failures=0"),
        "{}",
        second.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// get and request

#[test]
fn api_transact_calls_the_transact_api_with_its_rules() {
    let setup = setup("transact");
    let transact = |key: Option<&str>, args: &[&str]| {
        let mut cmd = setup.command(args);
        cmd.env("LWOLF_TRANSACT_BASE_URL", setup.sandbox.transact_base_url());
        match key {
            Some(key) => cmd.env("LWOLF_SUBSCRIPTION_KEY", key),
            None => cmd.env_remove("LWOLF_SUBSCRIPTION_KEY"),
        };
        run(cmd)
    };
    let key = setup.sandbox.subscription_key().to_owned();
    let ok = transact(
        Some(&key),
        &["--api", "transact", "get", "/v1/transactions"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("\"data\""), "{}", ok.stdout);

    let refused = transact(
        Some("not-the-key"),
        &["--api", "transact", "get", "/v1/transactions"],
    );
    assert_eq!(refused.code, 22);
    assert!(refused.stderr.contains("HTTP 403"), "{}", refused.stderr);
    assert!(refused
        .stderr
        .contains("lwolf: warn: the Transact API answered 403"));
    assert!(
        !refused.stderr.contains("not-the-key"),
        "{}",
        refused.stderr
    );
    assert_eq!(setup.sandbox.token_requests(), 1, "a 403 never renews");

    let keyless = transact(None, &["--api", "transact", "get", "/v1/transactions"]);
    assert_eq!(keyless.code, 2);
    assert!(
        keyless.stderr.contains("subscription_key"),
        "{}",
        keyless.stderr
    );

    let bad = transact(Some(&key), &["--api", "elsewhere", "get", "/v1/x"]);
    assert_eq!(bad.code, 64);
    let misplaced = transact(Some(&key), &["--api", "transact", "token"]);
    assert_eq!(misplaced.code, 64);
}

#[test]
fn get_prints_the_body_and_the_status() {
    let setup = setup("get");
    let r = setup.run(&["get", "/v1/transactions"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "HTTP 200 OK\n");
    let body: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(body["data"].as_array().is_some_and(|d| !d.is_empty()));
    // Not a terminal: the body as the server sent it, not pretty-printed.
    assert!(!r.stdout.contains("\n  "));
}

#[test]
fn get_of_a_missing_resource_exits_22() {
    let setup = setup("404");
    let r = setup.run(&["get", "/v1/transactions/nope"]);
    assert_eq!(r.code, 22);
    assert_eq!(r.stderr, "HTTP 404 Not Found\n");
    let body: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(body["code"], "not_found");
}

#[test]
fn a_token_on_disk_that_the_api_rejects_is_replaced() {
    let setup = setup("rejected");
    let old = setup.run(&["token"]).stdout;
    setup.sandbox.expire_tokens();
    let r = setup.run(&["get", "/v1/offices"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(setup.sandbox.token_requests(), 2);
    assert_eq!(setup.sandbox.api_requests(), 2);
    let new = setup.run(&["token"]).stdout;
    assert_ne!(new, old);
    assert_eq!(setup.sandbox.token_requests(), 2);
}

#[test]
fn request_sends_inline_file_and_stdin_bodies() {
    let setup = setup("request");
    let r = setup.run(&[
        "request",
        "POST",
        "/v1/transactions",
        "--data",
        r#"{"a":1}"#,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "HTTP 201 Created\n");
    let body: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(body["a"], 1);
    assert!(body["id"].as_str().unwrap().starts_with("txn-"));

    let file = setup.home.join("body.json");
    fs::write(&file, r#"{"from":"file"}"#).unwrap();
    let arg = format!("--data=@{}", file.display());
    let r = setup.run(&["request", "post", "/v1/transactions", &arg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["from"],
        "file"
    );

    let mut cmd = setup.command(&["request", "POST", "/v1/transactions", "-d", "@-"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"from":"stdin"}"#)
        .unwrap();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["from"],
        "stdin"
    );

    // A body the API refuses: 400, exit 22.
    let r = setup.run(&["request", "POST", "/v1/transactions", "--data", "[1]"]);
    assert_eq!(r.code, 22);
    assert_eq!(r.stderr, "HTTP 400 Bad Request\n");
    // A method the API does not allow: 405, exit 22.
    let r = setup.run(&["request", "DELETE", "/v1/offices"]);
    assert_eq!(r.code, 22);
    // An unreadable body file: exit 74, and nothing sent.
    let before = setup.sandbox.api_requests();
    let r = setup.run(&[
        "request",
        "POST",
        "/v1/transactions",
        "--data",
        "@/nonexistent/x",
    ]);
    assert_eq!(r.code, 74);
    assert!(r
        .stderr
        .starts_with("lwolf: cannot read the body from /nonexistent/x"));
    assert_eq!(setup.sandbox.api_requests(), before);
    // A bad method and a foreign origin are invalid arguments.
    let r = setup.run(&["request", "G E T", "/v1/offices"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("lwolf: LWOLF_ERR_INVALID_ARGUMENT: "));
    let r = setup.run(&["get", "https://elsewhere.example/v1/offices"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1);
    // Only one token for all of that.
    assert_eq!(setup.sandbox.token_requests(), 1);
}

#[test]
fn get_for_a_tenant() {
    let setup = setup("get-tenant");
    let r = setup.run(&["get", "/v1/offices", "--tenant", "customer-7"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let token = setup.run(&["token", "--tenant", "customer-7"]).stdout;
    assert_eq!(claims(token.trim_end())["lwt_client_id"], "customer-7");
    assert_eq!(setup.sandbox.token_requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// info

#[test]
fn info_shows_the_identity_and_times_but_not_the_token() {
    let setup = setup("info");
    let token = setup.run(&["token"]).stdout.trim_end().to_owned();
    let r = setup.run(&["info", "--tenant", "customer-3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r2 = setup.run(&["info"]);
    assert!(!r.stdout.contains(&token) && !r2.stdout.contains(&token));
    let field = |out: &str, key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {key} in\n{out}"))
    };
    assert_eq!(field(&r2.stdout, "client_id"), "sandbox-client");
    assert_eq!(field(&r2.stdout, "audience"), "https://api.lwolf.com");
    assert_eq!(field(&r2.stdout, "token_url"), setup.sandbox.token_url());
    assert_eq!(
        field(&r2.stdout, "api_base_url"),
        setup.sandbox.api_base_url()
    );
    assert_eq!(field(&r2.stdout, "tenant"), "-");
    assert_eq!(field(&r.stdout, "tenant"), "customer-3");
    let cache = field(&r2.stdout, "cache_file");
    assert!(Path::new(&cache).starts_with(setup.cache_dir()), "{cache}");
    assert!(Path::new(&cache).is_file(), "{cache}");
    assert!(!String::from_utf8_lossy(&fs::read(&cache).unwrap()).contains(&token));
    assert_ne!(field(&r.stdout, "cache_file"), cache);
    let fingerprint = field(&r2.stdout, "fingerprint");
    assert_eq!(fingerprint.len(), 12);
    let json: serde_json::Value =
        serde_json::from_str(&setup.run(&["token", "--json"]).stdout).unwrap();
    assert_eq!(json["fingerprint"], fingerprint.as_str());
    assert_eq!(field(&r2.stdout, "lifetime"), "24h00m");
    assert!(field(&r2.stdout, "expires_at").contains(" (in 23h"));
    assert!(field(&r2.stdout, "refresh_at").contains(" (in "));
    // The plain identity reused the token; the tenant got its own.
    assert_eq!(setup.sandbox.token_requests(), 2);
}

#[test]
fn info_still_shows_the_identity_when_no_token_can_be_had() {
    let setup = setup("info-fail");
    let mut cmd = setup.command(&["info"]);
    cmd.env("LWOLF_CLIENT_SECRET", "wrong-secret-but-also-private");
    let r = run(cmd);
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("client_id    sandbox-client"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("fingerprint"));
    assert!(!r.stderr.contains("wrong-secret-but-also-private"));
    assert!(r
        .stderr
        .starts_with("lwolf: LWOLF_ERR_INVALID_CREDENTIALS: invalid credentials: http status 401"));
}

// ---------------------------------------------------------------------------------------------
// sandbox

#[test]
fn sandbox_prints_the_exports_and_serves_until_killed() {
    let home = TempDir::new("sandbox");
    let mut child = bare_command(&["sandbox", "--port", "0", "--token-ttl", "120"], &home)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut exports = Vec::new();
    while exports.len() < 4 {
        let line = lines.next().expect("the sandbox stopped").unwrap();
        let (name, value) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("not an export: {line}"));
        exports.push((name.to_owned(), value.to_owned()));
    }
    let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "LWOLF_TOKEN_URL",
            "LWOLF_API_BASE_URL",
            "LWOLF_CLIENT_ID",
            "LWOLF_CLIENT_SECRET"
        ]
    );
    assert!(
        exports[0].1.starts_with("http://127.0.0.1:") && exports[0].1.ends_with("/oauth/token")
    );

    // The exports work, with the lifetime asked for.
    let mut cmd = bare_command(&["token", "--json"], &home);
    cmd.envs(exports.iter().map(|(n, v)| (n, v)));
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let expires = parse_rfc3339(json["expires_at"].as_str().unwrap());
    assert!(expires.abs_diff(unix_now() + 120) <= 5);
    let mut cmd = bare_command(&["get", "/v1/employees"], &home);
    cmd.envs(exports.iter().map(|(n, v)| (n, v)));
    assert_eq!(run(cmd).code, 0);

    assert!(
        child.try_wait().unwrap().is_none(),
        "the sandbox stopped serving"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sandbox_on_a_taken_port_is_an_io_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let home = TempDir::new("sandbox-taken");
    let r = run(bare_command(&["sandbox", "--port", &port], &home));
    assert_eq!(r.code, 74);
    assert!(r.stderr.starts_with("lwolf: cannot start the sandbox"));
}

// ---------------------------------------------------------------------------------------------
// Errors, help and logging

#[test]
fn wrong_credentials_are_one_line_with_the_status_name() {
    let setup = setup("401");
    let mut cmd = setup.command(&["token"]);
    cmd.env("LWOLF_CLIENT_SECRET", "not-the-secret-EITHER");
    let r = run(cmd);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "lwolf: LWOLF_ERR_INVALID_CREDENTIALS: invalid credentials: http status 401: \
         access_denied: Unauthorized\n"
    );
    assert!(!r.stderr.contains("not-the-secret-EITHER"));
}

#[test]
fn the_secret_file_is_read_and_never_printed() {
    let setup = setup("secret-file");
    let file = setup.home.join("secret");
    fs::write(&file, format!("{SECRET}\n")).unwrap();
    let mut cmd = setup.command(&["-v", "token"]);
    cmd.env_remove("LWOLF_CLIENT_SECRET")
        .env("LWOLF_CLIENT_SECRET_FILE", &file);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn configuration_and_transport_errors() {
    let home = TempDir::new("config");
    // No client id.
    let r = run(bare_command(&["token"], &home));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "lwolf: LWOLF_ERR_CONFIG: configuration error: client_id is required\n"
    );
    // A plain-http gateway off loopback.
    let mut cmd = bare_command(&["token"], &home);
    cmd.env("LWOLF_CLIENT_ID", "x")
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_TOKEN_URL", "http://gateway.example/oauth/token");
    let r = run(cmd);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("lwolf: LWOLF_ERR_CONFIG: "));
    // An unparsable setting.
    let mut cmd = bare_command(&["token"], &home);
    cmd.env("LWOLF_TIMEOUT_MS", "soon");
    let r = run(cmd);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("lwolf: LWOLF_ERR_INVALID_ARGUMENT: "));
    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = bare_command(&["--no-cache", "token"], &home);
    cmd.env("LWOLF_CLIENT_ID", "x")
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_MAX_RETRIES", "0")
        .env(
            "LWOLF_TOKEN_URL",
            format!("http://127.0.0.1:{closed}/oauth/token"),
        );
    let r = run(cmd);
    assert_eq!(r.code, 8);
    assert!(r
        .stderr
        .starts_with("lwolf: LWOLF_ERR_TRANSPORT: transport error: "));
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn usage_errors_exit_64_and_never_echo_a_secret() {
    let setup = setup("usage");
    for args in [
        &["frobnicate"][..],
        &["get"],
        &["get", "/a", "/b"],
        &["request", "GET"],
        &["token", "--bogus"],
        &["token", "--port", "80"],
        &["get", "/v1/offices", "--data", "{}"],
        &["sandbox", "--port", "none"],
        &["sandbox", "--token-ttl", "0"],
        &["--tenant"],
    ] {
        let r = setup.run(args);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("lwolf: "), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.ends_with("(see lwolf --help)\n"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    for args in [
        &["token", "--client-secret", SECRET][..],
        &["token", &format!("--client-secret={SECRET}")],
        &[&format!("--client_secret={SECRET}"), "get", "/v1/offices"],
    ] {
        let r = setup.run(args);
        assert_eq!(r.code, 64);
        assert!(
            r.stderr.contains("LWOLF_CLIENT_SECRET_FILE"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(setup.sandbox.token_requests(), 0);
}

#[test]
fn help_and_version() {
    let home = TempDir::new("help");
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &[],
        &["token", "--help"],
    ] {
        let r = run(bare_command(args, &home));
        assert_eq!(r.code, 0);
        for needle in [
            "lwolf token",
            "lwolf get PATH",
            "lwolf request METHOD PATH",
            "lwolf info",
            "lwolf sandbox",
            "--tenant",
            "--no-cache",
            "LWOLF_CLIENT_SECRET_FILE",
            "Exit codes:",
            "22 ",
            "64 ",
            "LWOLF_ERR_INVALID_CREDENTIALS",
        ] {
            assert!(r.stdout.contains(needle), "{needle} missing from --help");
        }
    }
    let r = run(bare_command(&["--version"], &home));
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, format!("lwolf {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn verbose_logs_fetches_and_cache_reads_with_fingerprints_only() {
    let setup = setup("verbose");
    let first = setup.run(&["-v", "token", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let json: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let (token, fingerprint) = (
        json["token"].as_str().unwrap(),
        json["fingerprint"].as_str().unwrap(),
    );
    assert!(
        first
            .stderr
            .contains(&format!("lwolf: info: token {fingerprint} fetched")),
        "{}",
        first.stderr
    );
    let second = setup.run(&["token", "--verbose"]);
    assert!(second
        .stderr
        .contains(&format!("token {fingerprint} read from the shared cache")));
    for r in [&first, &second] {
        assert!(!r.stderr.contains(token));
        assert!(r.stderr.lines().all(|l| l.starts_with("lwolf: ")));
    }
    // Quiet without -v.
    assert_eq!(setup.run(&["token"]).stderr, "");
}

#[test]
fn retries_are_logged_with_verbose() {
    let setup = setup("retries");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = setup.command(&["-v", "--no-cache", "token"]);
    cmd.env("LWOLF_MAX_RETRIES", "1")
        .env("LWOLF_RETRY_BASE_MS", "1")
        .env("LWOLF_RETRY_MAX_MS", "5")
        .env(
            "LWOLF_TOKEN_URL",
            format!("http://127.0.0.1:{closed}/oauth/token"),
        );
    let r = run(cmd);
    assert_eq!(r.code, 8);
    assert!(
        r.stderr.contains("lwolf: warn: token request failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("retry 1 of 1"), "{}", r.stderr);
}

#[test]
fn an_unusable_cache_dir_is_reported_but_not_fatal() {
    let setup = setup("badcache");
    let cache = setup.cache_dir();
    fs::DirBuilder::new().mode(0o755).create(&cache).unwrap();
    fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = setup.run(&["token"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr
            .starts_with("lwolf: warn: refusing the token cache directory"),
        "{}",
        r.stderr
    );
    assert!(fs::read_dir(&cache).unwrap().next().is_none());
}

/// `-H`, `--query`, `--data` with `--content-type`, any method, the subscription key from the
/// environment, `--timeout`; what arrived, as the sandbox's echo route saw it.
#[test]
fn request_headers_query_body_and_the_subscription_key() {
    let setup = setup("request-options");
    let echo = format!("{}/_sandbox/echo", setup.sandbox.url());
    let body = setup.home.join("body.csv");
    std::fs::write(&body, "a,b\n1,2\n").unwrap();
    let mut cmd = setup.command(&[
        "request",
        "PATCH",
        &echo,
        "-H",
        "If-Match: \"v7\"",
        "--header=X-Two:  2",
        "--query",
        "$filter=statusCode eq 'A'",
        "--query=q=a+b&c",
        "--data",
        &format!("@{}", body.display()),
        "--content-type",
        "text/csv",
        "--timeout",
        "5",
    ]);
    cmd.env("LWOLF_SUBSCRIPTION_KEY", "cli-subscription-K3Y");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("cli-subscription-K3Y") && !r.stderr.contains("cli-subscription-K3Y")
    );
    let got: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(got["method"], "PATCH");
    assert_eq!(
        got["query"],
        serde_json::json!([["$filter", "statusCode eq 'A'"], ["q", "a+b&c"]])
    );
    let headers: Vec<(String, String)> = serde_json::from_value(got["headers"].clone()).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("if-match"), Some("\"v7\""));
    assert_eq!(header("x-two"), Some("2"));
    assert_eq!(header("content-type"), Some("text/csv"));
    assert_eq!(got["body_len"], 8);
    assert_eq!(got["has_subscription_key"], true);

    // Refused: a subscription key on the command line, options that mean nothing here.
    for args in [
        &["get", "/v1/x", "-H", "lw-subscription-key: abc"][..],
        &["get", "/v1/x", "-H", "no colon"],
        &["token", "--query", "a=b"],
        &["get", "/v1/x", "--timeout", "0"],
        &["get", "/v1/x", "--content-type", "text/plain"],
    ] {
        let r = setup.run(args);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("abc"), "{}", r.stderr);
    }
    // The library's own rules: Authorization is not the caller's.
    let r = setup.run(&["get", "/v1/x", "-H", "Authorization: Bearer mine"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("LWOLF_ERR_INVALID_ARGUMENT"),
        "{}",
        r.stderr
    );
}

/// `-o FILE` streams the body into the file: the same bytes as stdout would get.
#[test]
fn output_streams_the_body_into_a_file() {
    let setup = setup("output");
    let whole = setup.run(&["get", "/v1/transactions"]);
    let file = setup.home.join("out.json");
    let r = setup.run(&["get", "/v1/transactions", "-o", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "HTTP 200 OK\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), whole.stdout);
    // An error answer goes to the file too, and exits 22.
    let r = setup.run(&["get", "/v1/transactions/none", "-o", file.to_str().unwrap()]);
    assert_eq!(r.code, 22);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("not_found"));
    // A file that cannot be made: an I/O error, nothing sent.
    let r = setup.run(&["get", "/v1/x", "-o", "/nonexistent-dir/out"]);
    assert_eq!(r.code, 74, "{}", r.stderr);
}

/// The renewal bound holds across processes through the shared cache: ten cold `lwolf get`
/// processes that the Transact stand-in answers 403 (no subscription key) cost the first
/// token and one renewal, not a token each.
#[test]
fn processes_answered_403_share_one_renewal() {
    let setup = setup("renewal-bound");
    for _ in 0..10 {
        let mut cmd = setup.command(&["get", "/v1/transactions"]);
        cmd.env("LWOLF_API_BASE_URL", setup.sandbox.transact_base_url());
        let r = run(cmd);
        assert_eq!(r.code, 22, "{}", r.stderr);
        assert!(r.stderr.starts_with("HTTP 403"), "{}", r.stderr);
    }
    assert_eq!(setup.sandbox.token_requests(), 2);
    // The record of the renewal is private, like the token file.
    let renewed: Vec<_> = std::fs::read_dir(setup.cache_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "renewed"))
        .collect();
    assert_eq!(renewed.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        renewed[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
}

fn test_key(name: &str) -> PathBuf {
    lwolf_test_support::common::test_key(name)
}

#[test]
fn jwk_prints_the_public_key_to_register_and_private_key_uses_it() {
    let home = TempDir::new("jwk");
    let key = test_key("rsa-pkcs8.pem");
    let r = run(bare_command(&["jwk", key.to_str().unwrap()], &home));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.splitn(2, '\n');
    let jwk: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["use"].as_str(), jwk["e"].as_str()),
        (Some("RSA"), Some("sig"), Some("AQAB"))
    );
    assert!(
        jwk.get("d").is_none() && jwk.get("p").is_none(),
        "private members: {jwk}"
    );
    // The PEM is the one openssl derives from the key (test-support/keys/rsa-public.pem).
    let pem = fs::read_to_string(test_key("rsa-public.pem")).unwrap();
    assert_eq!(lines.next().unwrap(), pem);
    // Nothing of the private key is printed.
    let private = fs::read_to_string(&key).unwrap();
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!r.stdout.contains(line), "private key material printed");
    }

    // A key that is not RSA: a configuration error; no key: a usage error.
    let ec = test_key("ec-p256-pkcs8.pem");
    let r = run(bare_command(&["jwk", ec.to_str().unwrap()], &home));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("not a usable RSA private key"),
        "{}",
        r.stderr
    );
    assert_eq!(run(bare_command(&["jwk"], &home)).code, 64);

    // --private-key: the sandbox, given the public key, issues a token for the assertion.
    let sandbox = Sandbox::builder().client_public_key(pem).start().unwrap();
    let mut cmd = bare_command(
        &[
            "--private-key",
            key.to_str().unwrap(),
            "--no-cache",
            "token",
        ],
        &home,
    );
    cmd.env("LWOLF_CLIENT_ID", sandbox.client_id())
        .env("LWOLF_TOKEN_URL", sandbox.token_url())
        .env("LWOLF_API_BASE_URL", sandbox.api_base_url());
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.trim().len() > 20, "{}", r.stdout);
    assert_eq!(sandbox.tokens_issued(), 1);
}

/// `ca_system`: the system's roots, where a corporate proxy's root is installed (here the
/// distribution's bundle, `SSL_CERT_FILE`, holding a test CA), trusted only when asked for.
#[test]
fn ca_system_trusts_the_systems_roots_when_asked() {
    use lwolf_test_support::common::{issue_tokens, Server, TestPki};
    let pki = TestPki::new();
    let server = Server::new_tls(issue_tokens("sys", 3600), pki.server_config.clone());
    let home = TempDir::new("ca-system");
    let bundle = home.path().join("system-bundle.pem");
    fs::write(&bundle, &pki.ca_pem).unwrap();
    let token = |ca_system: Option<&str>| {
        let mut cmd = bare_command(&["--no-cache", "token"], &home);
        cmd.env("LWOLF_CLIENT_ID", "cid")
            .env("LWOLF_CLIENT_SECRET", SECRET)
            .env("LWOLF_TOKEN_URL", server.token_url())
            .env("SSL_CERT_FILE", &bundle);
        if let Some(v) = ca_system {
            cmd.env("LWOLF_CA_SYSTEM", v);
        }
        run(cmd)
    };
    let refused = token(None);
    assert_eq!(refused.code, 8, "{}", refused.stderr);
    assert_eq!(server.token_requests(), 0);
    let trusted = token(Some("on"));
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert!(trusted.stdout.starts_with("TKN-sys-"), "{}", trusted.stdout);
    let bad = token(Some("sometimes"));
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("ca_system"), "{}", bad.stderr);
}
