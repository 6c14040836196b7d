//! The sandbox gateway behaves as the vendor's token guide and the API describe: checked
//! with raw HTTP (to see exactly what goes over the wire) and through `lwolf_auth::Client`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use lwolf_auth::{Client, ClientAuth, Config, Error, TokenFormat};
use lwolf_auth_ffi::lwolf_status;
use lwolf_sandbox::Sandbox;
use serde_json::{json, Value};

const AUDIENCE: &str = "https://api.lwolf.com";

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client, so tests can send what the library never would.

struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn host_port(sandbox: &Sandbox) -> String {
    sandbox.url().trim_start_matches("http://").to_owned()
}

/// Sends `request` as it is and reads the answer up to the server's close.
fn exchange(sandbox: &Sandbox, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(host_port(sandbox)).expect("connect to the sandbox");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    parse_response(&answer)
}

fn parse_response(answer: &[u8]) -> Raw {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(answer)));
    let head = std::str::from_utf8(&answer[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut body = answer[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn request(
    sandbox: &Sandbox,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    exchange(sandbox, &bytes)
}

fn post_json(sandbox: &Sandbox, body: &Value) -> Raw {
    request(
        sandbox,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

fn post_form(sandbox: &Sandbox, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    request(sandbox, "POST", "/oauth/token", &all, body.as_bytes())
}

fn good_body(sandbox: &Sandbox) -> Value {
    json!({
        "grant_type": "client_credentials",
        "client_id": sandbox.client_id(),
        "client_secret": sandbox.client_secret(),
        "audience": AUDIENCE,
    })
}

fn get_api(sandbox: &Sandbox, path: &str, token: Option<&str>) -> Raw {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(sandbox, "GET", path, &headers, b"")
}

fn client(sandbox: &Sandbox) -> Client {
    Client::new(sandbox.config_builder().build().expect("sandbox config"))
}

fn b64url(part: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url")
}

/// Checks a successful token response and returns the token.
fn assert_token_response(raw: &Raw, ttl_secs: u64) -> String {
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.header("content-type"), Some("application/json"));
    assert_eq!(raw.header("cache-control"), Some("no-store"));
    let json = raw.json();
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], ttl_secs);
    let token = json["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert!(token.bytes().all(|b| b.is_ascii_graphic()));
    token
}

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let header: Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(b64url(parts[2]).len(), 32, "the signature is 32 bytes");
    serde_json::from_slice(&b64url(parts[1])).unwrap()
}

fn assert_oauth_error(raw: &Raw, status: u16, error: &str, description: &str) {
    assert_eq!(raw.status, status, "{}", raw.text());
    assert_eq!(raw.header("content-type"), Some("application/json"));
    assert_eq!(
        raw.json(),
        json!({"error": error, "error_description": description})
    );
}

fn assert_api_error(raw: &Raw, status: u16, code: &str) {
    assert_eq!(raw.status, status, "{}", raw.text());
    let json = raw.json();
    assert_eq!(json["code"], code);
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(json["details"], json!([]));
    let id = json["id"].as_str().expect("error id");
    assert_eq!(id.len(), 36, "uuid-like id: {id}");
    assert_eq!(id.matches('-').count(), 4);
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
}

// ---------------------------------------------------------------------------------------
// Starting and stopping.

#[test]
fn starts_fast_on_loopback_and_stops_when_dropped() {
    let started = Instant::now();
    let sandbox = Sandbox::start().unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let url = sandbox.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_ne!(sandbox.port(), 0);
    assert_eq!(sandbox.token_url(), format!("{url}/oauth/token"));
    assert_eq!(sandbox.api_base_url(), format!("{url}/backoffice"));
    assert_eq!(sandbox.client_id(), "sandbox-client");
    assert_eq!(sandbox.client_secret(), "sandbox-secret");
    let addr = host_port(&sandbox);
    assert!(TcpStream::connect(&addr).is_ok());

    let dropping = Instant::now();
    drop(sandbox);
    assert!(dropping.elapsed() < Duration::from_secs(2));
    // The listener is closed by the time the drop returns.
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the sandbox still accepts connections after being dropped"
    );
}

#[test]
fn listens_on_a_chosen_port_and_reports_a_taken_one() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Sandbox::builder().port(port).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(taken);

    let sandbox = Sandbox::builder().port(port).start().unwrap();
    assert_eq!(sandbox.url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(sandbox.port(), port);
}

#[test]
fn config_builder_points_at_the_sandbox() {
    let sandbox = Sandbox::builder()
        .client_id("my-id")
        .client_secret("my-secret")
        .start()
        .unwrap();
    let config = sandbox.config_builder().build().unwrap();
    assert_eq!(config.client_id(), "my-id");
    assert_eq!(config.token_url(), sandbox.token_url());
    assert_eq!(config.api_base_url(), sandbox.api_base_url());
    assert_eq!(config.audience(), AUDIENCE);
    // The secret is right too: the client gets a token with it.
    assert!(Client::new(config).token().is_ok());
    assert_eq!(sandbox.tokens_issued(), 1);
}

#[test]
fn debug_never_shows_the_secret() {
    let secret = "s3cret-that-must-not-leak";
    let builder = Sandbox::builder().client_secret(secret);
    let builder_debug = format!("{builder:?}");
    assert!(!builder_debug.contains(secret), "{builder_debug}");
    let sandbox = builder.start().unwrap();
    // Issue a token, so any token-holding state would show up too.
    let token = assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 86_400);
    let debug = format!("{sandbox:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(!debug.contains(&token), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(debug.contains(&sandbox.url()), "{debug}");
}

// ---------------------------------------------------------------------------------------
// The token endpoint: successes.

#[test]
fn json_body_gets_a_jwt_shaped_token() {
    let sandbox = Sandbox::start().unwrap();
    let raw = post_json(&sandbox, &good_body(&sandbox));
    assert_eq!(raw.header("pragma"), Some("no-cache"));
    let token = assert_token_response(&raw, 86_400);
    let claims = claims(&token);
    assert_eq!(claims["iss"], "lwolf-sandbox");
    assert_eq!(claims["sub"], "sandbox-client");
    assert_eq!(claims["aud"], AUDIENCE);
    let iat = claims["iat"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat.abs_diff(now) <= 5);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 86_400);
    assert!(claims.get("lwt_client_id").is_none());
    assert_eq!(sandbox.tokens_issued(), 1);
    // The token opens the API.
    assert_eq!(
        get_api(&sandbox, "/backoffice/v1/transactions", Some(&token)).status,
        200
    );
}

#[test]
fn form_body_with_lwt_client_id_is_accepted_and_remembered() {
    let sandbox = Sandbox::start().unwrap();
    let raw = post_form(
        &sandbox,
        &[],
        "grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret\
         &audience=https%3A%2F%2Fapi.lwolf.com&lwt_client_id=office+42",
    );
    let token = assert_token_response(&raw, 86_400);
    assert_eq!(claims(&token)["lwt_client_id"], "office 42");
    let api = get_api(&sandbox, "/backoffice/v1/offices", Some(&token));
    assert_eq!(api.status, 200);
    assert_eq!(api.header("x-sandbox-lwt-client-id"), Some("office 42"));
}

#[test]
fn http_basic_client_authentication_is_accepted() {
    // Characters that must be form-encoded inside the Basic pair (RFC 6749 §2.3.1).
    let sandbox = Sandbox::builder()
        .client_id("id:with colon")
        .client_secret("s&cr=t/é%")
        .start()
        .unwrap();
    let pair = "id%3Awith+colon:s%26cr%3Dt%2F%C3%A9%25";
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    let raw = post_form(
        &sandbox,
        &[("Authorization", &basic)],
        "grant_type=client_credentials&audience=https%3A%2F%2Fapi.lwolf.com",
    );
    let token = assert_token_response(&raw, 86_400);
    assert_eq!(claims(&token)["sub"], "id:with colon");

    // The same with a JSON body and the scheme in lower case.
    let lower = basic.replacen("Basic", "basic", 1);
    let raw = request(
        &sandbox,
        "POST",
        "/oauth/token",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &lower),
        ],
        json!({"grant_type": "client_credentials", "audience": AUDIENCE})
            .to_string()
            .as_bytes(),
    );
    assert_token_response(&raw, 86_400);

    // A wrong secret in Basic is a 401 with a Basic challenge.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("id%3Awith+colon:nope")
    );
    let raw = post_form(
        &sandbox,
        &[("Authorization", &wrong)],
        "grant_type=client_credentials&audience=https%3A%2F%2Fapi.lwolf.com",
    );
    assert_oauth_error(&raw, 401, "access_denied", "Unauthorized");
    assert!(raw.header("www-authenticate").unwrap().starts_with("Basic"));
    assert_eq!(sandbox.tokens_issued(), 2);
}

#[test]
fn the_client_gets_tokens_in_every_format_and_auth_mode() {
    let sandbox = Sandbox::builder()
        .client_id("tenant app")
        .client_secret("p@ss:w&rd")
        .start()
        .unwrap();
    for format in [TokenFormat::Json, TokenFormat::Form] {
        for auth in [ClientAuth::Body, ClientAuth::Basic] {
            let config = sandbox
                .config_builder()
                .token_format(format)
                .client_auth(auth)
                .lwt_client_id("inst-7")
                .build()
                .unwrap();
            let token = Client::new(config)
                .token()
                .unwrap_or_else(|e| panic!("{format:?} / {auth:?}: {e}"));
            let claims = claims(token.secret());
            assert_eq!(claims["sub"], "tenant app");
            assert_eq!(claims["lwt_client_id"], "inst-7");
            assert_eq!(token.lifetime(), Duration::from_secs(86_400));
        }
    }
    assert_eq!(sandbox.tokens_issued(), 4);
    assert_eq!(sandbox.token_requests(), 4);
}

#[test]
fn token_ttl_is_reported_in_whole_seconds_and_enforced() {
    let sandbox = Sandbox::builder()
        .token_ttl(Duration::from_millis(800))
        .start()
        .unwrap();
    // Under a second is reported as 1, never 0.
    let token = assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 1);
    assert_eq!(
        get_api(&sandbox, "/backoffice/v1/offices", Some(&token)).status,
        200
    );
    std::thread::sleep(Duration::from_millis(900));
    let raw = get_api(&sandbox, "/backoffice/v1/offices", Some(&token));
    assert_api_error(&raw, 401, "invalid_token");
    assert!(raw.json()["message"].as_str().unwrap().contains("expired"));

    let sandbox = Sandbox::builder()
        .token_ttl(Duration::from_millis(7_900))
        .start()
        .unwrap();
    assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 7);
}

#[test]
fn every_token_is_distinct() {
    let sandbox = Sandbox::start().unwrap();
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..25)
                        .map(|_| {
                            assert_token_response(
                                &post_json(&sandbox, &good_body(&sandbox)),
                                86_400,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(tokens.len(), 200);
    assert_eq!(distinct.len(), 200);
    // The random parts differ too, not only the timestamps.
    let signatures: std::collections::HashSet<&str> = tokens
        .iter()
        .map(|t| t.rsplit('.').next().unwrap())
        .collect();
    assert_eq!(signatures.len(), 200);
    assert_eq!(sandbox.tokens_issued(), 200);
    assert_eq!(sandbox.token_requests(), 200);
}

// ---------------------------------------------------------------------------------------
// The token endpoint: errors.

#[test]
fn wrong_secret_or_id_is_401_with_auth0_body() {
    let sandbox = Sandbox::start().unwrap();
    let mut body = good_body(&sandbox);
    body["client_secret"] = json!("wrong-secret");
    let raw = post_json(&sandbox, &body);
    assert_oauth_error(&raw, 401, "access_denied", "Unauthorized");
    assert!(raw.header("www-authenticate").is_none());

    let mut body = good_body(&sandbox);
    body["client_id"] = json!("someone-else");
    assert_oauth_error(
        &post_json(&sandbox, &body),
        401,
        "access_denied",
        "Unauthorized",
    );

    // Through the client: InvalidCredentials (status 3), with no secret in the message.
    let config = sandbox
        .config_builder()
        .client_secret("wrong-secret-value")
        .build()
        .unwrap();
    let err = Client::new(config).token().unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials(_)), "{err:?}");
    assert_eq!(lwolf_status::from(&err) as u32, 3);
    let message = err.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wrong-secret-value"), "{message}");
    assert_eq!(sandbox.tokens_issued(), 0);
    assert_eq!(sandbox.token_requests(), 3, "401 is not retried");
}

#[test]
fn missing_parameters_are_400_invalid_request() {
    let sandbox = Sandbox::start().unwrap();
    for name in ["grant_type", "client_id", "client_secret", "audience"] {
        let mut body = good_body(&sandbox);
        body.as_object_mut().unwrap().remove(name);
        assert_oauth_error(
            &post_json(&sandbox, &body),
            400,
            "invalid_request",
            &format!("missing parameter: {name}"),
        );
    }
    // The same in a form body.
    let raw = post_form(
        &sandbox,
        &[],
        "grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret",
    );
    assert_oauth_error(&raw, 400, "invalid_request", "missing parameter: audience");
    // An empty body.
    let raw = request(
        &sandbox,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"",
    );
    assert_oauth_error(
        &raw,
        400,
        "invalid_request",
        "missing parameter: grant_type",
    );
    assert_eq!(sandbox.tokens_issued(), 0);
}

#[test]
fn other_grant_types_are_400_unsupported_grant_type() {
    let sandbox = Sandbox::start().unwrap();
    let mut body = good_body(&sandbox);
    body["grant_type"] = json!("password");
    let raw = post_json(&sandbox, &body);
    assert_eq!(raw.status, 400);
    let json = raw.json();
    assert_eq!(json["error"], "unsupported_grant_type");
    assert!(json["error_description"]
        .as_str()
        .unwrap()
        .contains("password"));
    assert_eq!(sandbox.tokens_issued(), 0);
}

#[test]
fn another_audience_is_403_as_auth0_answers() {
    let sandbox = Sandbox::start().unwrap();
    let mut body = good_body(&sandbox);
    body["audience"] = json!("https://evil.example");
    assert_oauth_error(
        &post_json(&sandbox, &body),
        403,
        "access_denied",
        "Service not enabled within domain: https://evil.example",
    );

    let config = sandbox
        .config_builder()
        .audience("https://other.example")
        .build()
        .unwrap();
    let err = Client::new(config).token().unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert_eq!(lwolf_status::from(&err) as u32, 5);
    assert!(err.to_string().contains("Service not enabled"), "{err}");
    assert_eq!(sandbox.tokens_issued(), 0);
}

#[test]
fn malformed_bodies_are_400_not_a_crash() {
    let sandbox = Sandbox::start().unwrap();
    let json_post = |body: &[u8]| {
        request(
            &sandbox,
            "POST",
            "/oauth/token",
            &[("Content-Type", "application/json; charset=utf-8")],
            body,
        )
    };
    let cases: Vec<(&str, Raw)> = vec![
        ("truncated JSON", json_post(b"{\"grant_type\":")),
        ("JSON array", json_post(b"[1,2,3]")),
        (
            "bad UTF-8 in JSON",
            json_post(b"{\"grant_type\":\"\xff\xfe\"}"),
        ),
        ("number parameter", json_post(b"{\"grant_type\":42}")),
        (
            "bad UTF-8 in form",
            post_form(&sandbox, &[], "grant_type=%FF%FE&client_id=x"),
        ),
        (
            "bad escape in form",
            post_form(&sandbox, &[], "grant_type=%G1"),
        ),
        (
            "repeated form parameter",
            post_form(
                &sandbox,
                &[],
                "grant_type=client_credentials&grant_type=client_credentials",
            ),
        ),
        (
            "no content type",
            request(
                &sandbox,
                "POST",
                "/oauth/token",
                &[],
                good_body(&sandbox).to_string().as_bytes(),
            ),
        ),
        (
            "text/plain",
            request(
                &sandbox,
                "POST",
                "/oauth/token",
                &[("Content-Type", "text/plain")],
                b"hello",
            ),
        ),
        (
            "malformed Basic",
            post_form(
                &sandbox,
                &[("Authorization", "Basic !!!not-base64")],
                "grant_type=client_credentials&audience=x",
            ),
        ),
        (
            "Basic and a body secret",
            request(
                &sandbox,
                "POST",
                "/oauth/token",
                &[
                    ("Content-Type", "application/json"),
                    (
                        "Authorization",
                        &format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode("sandbox-client:sandbox-secret")
                        ),
                    ),
                ],
                good_body(&sandbox).to_string().as_bytes(),
            ),
        ),
        (
            "body over 64 KiB",
            json_post(format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).as_bytes()),
        ),
    ];
    for (what, raw) in cases {
        assert_eq!(raw.status, 400, "{what}: {}", raw.text());
        assert_eq!(raw.json()["error"], "invalid_request", "{what}");
    }
    // A body just under the cap is read and judged on its parameters.
    let mut big = good_body(&sandbox);
    big["padding"] = json!("y".repeat(60_000));
    assert_token_response(&post_json(&sandbox, &big), 86_400);
    assert_eq!(sandbox.tokens_issued(), 1);
}

#[test]
fn garbage_on_the_wire_does_not_stop_the_sandbox() {
    let sandbox = Sandbox::start().unwrap();
    for garbage in [
        &b"\xff\xfe\xfd\r\n\r\n"[..],
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(host_port(&sandbox)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(garbage);
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    // A body cut short: the client closes before sending what it declared.
    let mut stream = TcpStream::connect(host_port(&sandbox)).unwrap();
    stream
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nContent-Type: application/json\r\n\
              Content-Length: 5000\r\n\r\n{\"grant",
        )
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);

    assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 86_400);
}

#[test]
fn other_methods_on_the_token_endpoint_are_405() {
    let sandbox = Sandbox::start().unwrap();
    for method in ["GET", "PUT", "DELETE"] {
        let raw = request(&sandbox, method, "/oauth/token", &[], b"");
        assert_eq!(raw.status, 405, "{method}");
        assert_eq!(raw.header("allow"), Some("POST"));
        assert_eq!(raw.json()["error"], "invalid_request");
    }
    assert_eq!(sandbox.token_requests(), 3);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let sandbox = Sandbox::builder().rate_limit(2).start().unwrap();
    let body = good_body(&sandbox);
    assert_token_response(&post_json(&sandbox, &body), 86_400);
    assert_token_response(&post_json(&sandbox, &body), 86_400);
    let raw = post_json(&sandbox, &body);
    assert_oauth_error(&raw, 429, "too_many_requests", "Rate limit exceeded");
    assert_eq!(raw.header("retry-after"), Some("1"));
    assert_eq!(sandbox.token_requests(), 3);
    assert_eq!(sandbox.tokens_issued(), 2);
    // A second later there is room again.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_token_response(&post_json(&sandbox, &body), 86_400);
    assert_eq!(sandbox.tokens_issued(), 3);
}

#[test]
fn the_client_waits_out_the_rate_limit_or_reports_it() {
    let sandbox = Sandbox::builder().rate_limit(1).start().unwrap();
    // Use up this second's allowance.
    assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 86_400);

    // No retries: the 429 is reported as RateLimited.
    let config = sandbox.config_builder().max_retries(0).build().unwrap();
    let err = Client::new(config).token().unwrap_err();
    assert!(matches!(err, Error::RateLimited(_)), "{err:?}");
    assert_eq!(lwolf_status::from(&err) as u32, 6);

    // With retries, the client honours Retry-After: 1 and gets through.
    let config = sandbox
        .config_builder()
        .max_retries(3)
        .retry_base(Duration::from_millis(10))
        .retry_max(Duration::from_secs(2))
        .build()
        .unwrap();
    let before = sandbox.token_requests();
    let started = Instant::now();
    let token = Client::new(config).token().expect("token after waiting");
    assert!(!token.secret().is_empty());
    assert_eq!(sandbox.tokens_issued(), 2);
    // Unless the machine was so slow that the second had passed already, the client was
    // refused once and waited the second it was told to.
    if sandbox.token_requests() - before >= 2 {
        assert!(started.elapsed() >= Duration::from_millis(900), "waited");
    }
}

// ---------------------------------------------------------------------------------------
// The API.

#[test]
fn api_without_a_valid_token_is_401_with_a_bearer_challenge() {
    let sandbox = Sandbox::start().unwrap();
    let cases = [
        (
            "no token",
            get_api(&sandbox, "/backoffice/v1/transactions", None),
        ),
        (
            "unknown token",
            get_api(&sandbox, "/backoffice/v1/transactions", Some("not.a.token")),
        ),
        (
            "basic instead of bearer",
            request(
                &sandbox,
                "GET",
                "/backoffice/v1/transactions",
                &[(
                    "Authorization",
                    "Basic c2FuZGJveC1jbGllbnQ6c2FuZGJveC1zZWNyZXQ=",
                )],
                b"",
            ),
        ),
        (
            "unknown path, no token",
            get_api(&sandbox, "/backoffice/v1/nothing-here", None),
        ),
    ];
    for (what, raw) in &cases {
        assert_api_error(raw, 401, "invalid_token");
        assert_eq!(
            raw.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{what}"
        );
    }
    // Every error gets its own id.
    let ids: std::collections::HashSet<String> = cases
        .iter()
        .map(|(_, r)| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), cases.len());
    assert_eq!(sandbox.api_requests(), 4);
}

#[test]
fn the_client_reads_the_api() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(&sandbox);

    let list = client.get("/v1/transactions").send().unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let json: Value = list.json().unwrap();
    let data = json["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(json["total"], 5);
    assert_eq!(json["skip"], 0);
    for t in data {
        for field in [
            "id",
            "number",
            "status",
            "address",
            "price",
            "close_date",
            "agents",
        ] {
            assert!(t.get(field).is_some(), "transaction without {field}: {t}");
        }
    }

    let one = client.get("/v1/transactions/txn-1002").send().unwrap();
    assert_eq!(one.status(), 200);
    let one: Value = one.json().unwrap();
    assert_eq!(one["id"], "txn-1002");
    assert_eq!(one["address"]["city"], "San Diego");

    let missing = client.get("/v1/transactions/txn-9999").send().unwrap();
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().unwrap();
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["details"], json!([]));

    for path in ["/v1/offices", "/v1/employees"] {
        let r = client.get(path).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let json: Value = r.json().unwrap();
        let n = json["data"].as_array().unwrap().len();
        assert!(n >= 2, "{path}");
        assert_eq!(json["total"], n);
    }

    let unknown = client.get("/v2/whatever").send().unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().unwrap()["code"], "not_found");

    let not_allowed = client.delete("/v1/transactions").send().unwrap();
    assert_eq!(not_allowed.status(), 405);

    assert_eq!(sandbox.tokens_issued(), 1, "one token serves every request");
    assert_eq!(sandbox.api_requests(), 7);
}

#[test]
fn posting_a_transaction_echoes_it_with_a_new_id() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(&sandbox);
    let new = json!({
        "number": "2024-0200",
        "status": "active",
        "address": {"street": "9 Elm Street", "city": "Austin", "state": "TX"},
        "price": 510000
    });
    let created = client.post("/v1/transactions").send_json(&new).unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(!["txn-1001", "txn-1002", "txn-1003", "txn-1004", "txn-1005"].contains(&id.as_str()));
    assert_eq!(body["number"], "2024-0200");
    assert_eq!(body["address"], new["address"]);
    assert_eq!(
        created.header("location"),
        Some(format!("/backoffice/v1/transactions/{id}").as_str())
    );

    let second: Value = client
        .post("/v1/transactions")
        .send_json(&json!({"number": "2024-0201"}))
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(second["id"], body["id"]);

    let fetched = client
        .get(&format!("/v1/transactions/{id}"))
        .send()
        .unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.json::<Value>().unwrap()["price"], 510000);
    let list: Value = client
        .get("/v1/transactions")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["total"], 7);

    let bad = client
        .post("/v1/transactions")
        .body(b"{not json".to_vec(), "application/json")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().unwrap();
    assert_eq!(bad["code"], "invalid_request");
    let array = client
        .post("/v1/transactions")
        .body(b"[]".to_vec(), "application/json")
        .send()
        .unwrap();
    assert_eq!(array.status(), 400);
}

#[test]
fn expired_tokens_are_renewed_transparently() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(&sandbox);
    assert_eq!(client.get("/v1/transactions").send().unwrap().status(), 200);
    let first = client.token().unwrap();
    assert_eq!(sandbox.tokens_issued(), 1);

    sandbox.expire_tokens();
    // The old token is refused now...
    let raw = get_api(
        &sandbox,
        "/backoffice/v1/transactions",
        Some(first.secret()),
    );
    assert_api_error(&raw, 401, "invalid_token");
    // ...and the client renews it on the 401 without the caller seeing it.
    let again = client.get("/v1/transactions").send().unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(sandbox.tokens_issued(), 2);
    let second = client.token().unwrap();
    assert_ne!(first.fingerprint(), second.fingerprint());
    // 1 (first get) + 1 (raw) + 2 (401, then the retry with the new token).
    assert_eq!(sandbox.api_requests(), 4);
    // The new token works directly as well.
    assert_eq!(
        get_api(&sandbox, "/backoffice/v1/employees", Some(second.secret())).status,
        200
    );
}

#[test]
fn tenant_clients_get_tokens_for_their_instance() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(&sandbox);
    let tenant = client.for_tenant("instance-42").unwrap();
    let r = tenant.get("/v1/offices").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-sandbox-lwt-client-id"), Some("instance-42"));
    let r = client.get("/v1/offices").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-sandbox-lwt-client-id"), None);
    assert_eq!(sandbox.tokens_issued(), 2);
}

#[test]
fn counters_and_the_stats_endpoint_agree() {
    let sandbox = Sandbox::start().unwrap();
    let stats = |s: &Sandbox| request(s, "GET", "/_sandbox/stats", &[], b"").json();
    assert_eq!(
        stats(&sandbox),
        json!({"token_requests": 0, "tokens_issued": 0, "api_requests": 0, "api_in_flight_peak": 0})
    );

    let client = client(&sandbox);
    client.get("/v1/transactions").send().unwrap();
    client.get("/v1/offices").send().unwrap();
    let mut bad = good_body(&sandbox);
    bad["client_secret"] = json!("nope");
    post_json(&sandbox, &bad);
    get_api(&sandbox, "/backoffice/v1/offices", None);

    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(sandbox.tokens_issued(), 1);
    assert_eq!(sandbox.api_requests(), 3);
    assert_eq!(
        stats(&sandbox),
        json!({"token_requests": 2, "tokens_issued": 1, "api_requests": 3, "api_in_flight_peak": 1})
    );
    // Reading the stats counts as neither.
    assert_eq!(sandbox.api_requests(), 3);
    // Paths outside the API are 404 in the API's error shape, without a token.
    assert_api_error(
        &request(&sandbox, "GET", "/nothing", &[], b""),
        404,
        "not_found",
    );
}

#[test]
fn concurrent_clients_are_served_in_parallel() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(&sandbox);
    client.token().unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let client = client.clone();
            s.spawn(move || {
                for _ in 0..10 {
                    assert_eq!(client.get("/v1/transactions").send().unwrap().status(), 200);
                }
            });
        }
    });
    assert_eq!(sandbox.api_requests(), 80);
    assert_eq!(sandbox.tokens_issued(), 1);
}

#[test]
fn keep_alive_http_1_0_and_head_are_framed_correctly() {
    let sandbox = Sandbox::start().unwrap();
    // Two requests on one connection: both answered, in order, each with its length.
    let mut stream = TcpStream::connect(host_port(&sandbox)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /_sandbox/stats HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let first = parse_response(&answer);
    assert_eq!(first.status, 200);
    let length: usize = first.header("content-length").unwrap().parse().unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let second = parse_response(&answer[head_end + length..]);
    assert_eq!(second.status, 404);
    assert_eq!(second.header("connection"), Some("close"));
    assert_eq!(second.json()["code"], "not_found");
    let stats: Value = serde_json::from_slice(&first.body[..length]).unwrap();
    assert_eq!(
        stats,
        json!({"token_requests": 0, "tokens_issued": 0, "api_requests": 0, "api_in_flight_peak": 0})
    );

    // HTTP/1.0: the server closes, and says so.
    let raw = exchange(&sandbox, b"GET /_sandbox/stats HTTP/1.0\r\n\r\n");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("connection"), Some("close"));
    assert_eq!(raw.json()["tokens_issued"], 0);

    // HEAD: the length of what GET would send, and no body.
    let raw = request(&sandbox, "HEAD", "/_sandbox/stats", &[], b"");
    assert_eq!(raw.status, 200);
    assert!(raw.body.is_empty());
    assert_eq!(
        raw.header("content-length"),
        Some(length.to_string().as_str())
    );
}

#[test]
fn echoed_values_cannot_inject_headers() {
    let sandbox = Sandbox::start().unwrap();
    let mut body = good_body(&sandbox);
    body["lwt_client_id"] = json!("tenant\r\nX-Injected: yes");
    let token = assert_token_response(&post_json(&sandbox, &body), 86_400);
    assert_eq!(claims(&token)["lwt_client_id"], "tenant\r\nX-Injected: yes");
    let raw = get_api(&sandbox, "/backoffice/v1/offices", Some(&token));
    assert_eq!(raw.status, 200);
    assert!(raw.header("x-injected").is_none());
    assert!(raw.header("x-sandbox-lwt-client-id").is_none());
}

#[test]
fn a_silent_client_does_not_hang_the_drop() {
    let sandbox = Sandbox::start().unwrap();
    let mut stalled = TcpStream::connect(host_port(&sandbox)).unwrap();
    stalled
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nContent-Type: application/json\r\n\
              Content-Length: 5000\r\n\r\n{\"grant",
        )
        .unwrap();
    // Let a worker pick the request up and block on the rest of the body.
    std::thread::sleep(Duration::from_millis(200));
    // The other workers still serve.
    assert_token_response(&post_json(&sandbox, &good_body(&sandbox)), 86_400);
    let started = Instant::now();
    drop(sandbox);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);
}

/// The Transact stand-in: the same token as the Back Office API (one token request for both),
/// and `lw-subscription-key` on every call; without it, 403 in the API's error shape, and
/// the bounded renewal keeps that from costing a token per call.
#[test]
fn transact_needs_the_subscription_key_and_shares_the_token() {
    let sandbox = Sandbox::start().unwrap();
    let client = Client::new(sandbox.config_builder().build().unwrap());
    let transact = client.for_api(&sandbox.transact_base_url()).unwrap();
    let list = transact
        .get("/v1/transactions")
        .query("$filter", "status eq 'closed'")
        .send()
        .unwrap();
    assert_eq!(list.status(), 200, "{}", list.text());
    let json: Value = list.json().unwrap();
    assert_eq!(json["total"], 2);
    assert_eq!(client.get("/v1/offices").send().unwrap().status(), 200);
    assert_eq!(sandbox.token_requests(), 1, "one token for both APIs");

    // A client without the key: 403 each time, and at most one renewal for all of them.
    let keyless = Client::new(
        Config::builder()
            .client_id(sandbox.client_id())
            .client_secret(sandbox.client_secret())
            .token_url(sandbox.token_url())
            .api_base_url(sandbox.transact_base_url())
            .build()
            .unwrap(),
    );
    for _ in 0..50 {
        let r = keyless.get("/v1/transactions").send().unwrap();
        assert_eq!(r.status(), 403);
        let e: Value = r.json().unwrap();
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("lw-subscription-key"),
            "{e}"
        );
    }
    assert_eq!(
        sandbox.token_requests(),
        3,
        "the first token and one renewal"
    );
    // A wrong key is no better.
    let bad = Client::new(
        sandbox
            .config_builder()
            .subscription_key("not-the-key")
            .api_base_url(sandbox.transact_base_url())
            .build()
            .unwrap(),
    );
    assert_eq!(bad.get("/v1/transactions").send().unwrap().status(), 403);
}

/// OData on the transactions list: `$filter`, `$orderby`, `$top`, `$skip`; a bad filter is 400.
#[test]
fn the_transaction_list_takes_odata_queries() {
    let sandbox = Sandbox::start().unwrap();
    let client = Client::new(sandbox.config_builder().build().unwrap());
    let ids = |r: lwolf_auth::Response| -> Vec<String> {
        let json: Value = r.json().unwrap();
        json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = client
        .get("/v1/transactions")
        .query("$filter", "price gt 100000 and status ne 'cancelled'")
        .query("$orderby", "price desc")
        .send()
        .unwrap();
    assert_eq!(ids(r), ["txn-1002", "txn-1001"]);
    let r = client
        .get("/v1/transactions")
        .query("$orderby", "id")
        .query("$skip", "1")
        .query("$top", "2")
        .send()
        .unwrap();
    assert_eq!(ids(r), ["txn-1002", "txn-1003"]);
    let r = client
        .get("/v1/transactions")
        .query("$filter", "status startswith 'c'")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// PATCH with If-Match: the current ETag updates and gives a new one; a stale one is 412;
/// none is 428.
#[test]
fn tiers_take_a_patch_with_the_current_etag_only() {
    let sandbox = Sandbox::start().unwrap();
    let client = Client::new(sandbox.config_builder().build().unwrap());
    let first = client.get("/v1/tiers/t1").send().unwrap();
    let etag = first.header("etag").unwrap().to_owned();
    let change = serde_json::json!({"name": "Platinum"});
    let updated = client
        .patch("/v1/tiers/t1")
        .header("If-Match", &etag)
        .send_json(&change)
        .unwrap();
    assert_eq!(updated.status(), 200, "{}", updated.text());
    assert_eq!(updated.json::<Value>().unwrap()["name"], "Platinum");
    assert_ne!(updated.header("etag"), Some(etag.as_str()));
    let stale = client
        .patch("/v1/tiers/t1")
        .header("If-Match", &etag)
        .send_json(&change)
        .unwrap();
    assert_eq!(stale.status(), 412);
    let none = client.patch("/v1/tiers/t1").send_json(&change).unwrap();
    assert_eq!(none.status(), 428);
    assert_eq!(
        sandbox.token_requests(),
        1,
        "a 412 or 428 is not the token's fault"
    );
}

/// A document of the size asked for, streamed to a writer.
#[test]
fn transact_documents_of_any_size_stream() {
    let sandbox = Sandbox::start().unwrap();
    let client = Client::new(sandbox.config_builder().build().unwrap());
    let transact = client.for_api(&sandbox.transact_base_url()).unwrap();
    let mut pdf = Vec::new();
    let r = transact
        .get("/v1/documents/d1")
        .query("size", "3000000")
        .send_to(&mut pdf)
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(pdf.len(), 3_000_000);
    assert!(pdf.starts_with(b"%PDF-"));
}
