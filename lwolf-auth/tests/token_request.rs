//! The token request's shape, and how each kind of answer is read.

use lwolf_test_support::common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use common::*;
use lwolf_auth::{Client, ClientAuth, Error, TokenFormat};
use lwolf_auth_ffi::lwolf_status;
use serde_json::json;

fn only_request(server: &Server) -> Request {
    assert_eq!(server.request_count(), 1, "exactly one request expected");
    server.request(0)
}

#[test]
fn json_body_has_exactly_the_vendor_fields() {
    let server = Server::tokens();
    let token = ok(client(&server).token());
    assert_eq!(token.secret(), issued("t", 1));

    let req = only_request(&server);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, TOKEN_PATH);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "audience": "https://api.lwolf.com",
        }),
        "no lwt_client_id unless one is configured"
    );
    assert!(req.header("authorization").is_none());
}

#[test]
fn lwt_client_id_is_sent_when_set() {
    let server = Server::tokens();
    let client = Client::new(builder(&server).lwt_client_id("tenant-42").build().unwrap());
    assert_eq!(client.lwt_client_id(), Some("tenant-42"));
    ok(client.token());
    let body = only_request(&server).json();
    assert_eq!(
        body,
        json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "audience": "https://api.lwolf.com",
            "lwt_client_id": "tenant-42",
        })
    );
}

#[test]
fn custom_audience_is_sent() {
    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .audience("https://sandbox.example/aud")
            .build()
            .unwrap(),
    );
    ok(client.token());
    assert_eq!(
        only_request(&server).json()["audience"],
        json!("https://sandbox.example/aud")
    );
}

#[test]
fn form_format_sends_the_same_fields_form_encoded() {
    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .token_format(TokenFormat::Form)
            .lwt_client_id("tenant & co")
            .build()
            .unwrap(),
    );
    ok(client.token());
    let req = only_request(&server);
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        !req.text().trim_start().starts_with('{'),
        "a form body, not JSON: {}",
        req.text()
    );
    let mut fields = req.form();
    fields.sort();
    let mut expected = vec![
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("client_id".to_owned(), CLIENT_ID.to_owned()),
        ("client_secret".to_owned(), SECRET.to_owned()),
        ("audience".to_owned(), "https://api.lwolf.com".to_owned()),
        ("lwt_client_id".to_owned(), "tenant & co".to_owned()),
    ];
    expected.sort();
    assert_eq!(fields, expected);
    // Reserved characters are escaped, so the ampersand did not split a field.
    assert!(req.text().contains("tenant+%26+co") || req.text().contains("tenant%20%26%20co"));
}

#[test]
fn basic_auth_puts_urlencoded_credentials_in_the_header_only() {
    let server = Server::tokens();
    let secret = format!("{SECRET}/+&:");
    let client = Client::new(
        builder(&server)
            .client_id("my client:1")
            .client_secret(secret.as_str())
            .client_auth(ClientAuth::Basic)
            .build()
            .unwrap(),
    );
    ok(client.token());
    let req = only_request(&server);
    let auth = req
        .header("authorization")
        .expect("an Authorization header");
    let encoded = auth.strip_prefix("Basic ").expect("Basic scheme");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let decoded = String::from_utf8(decoded).unwrap();
    // RFC 6749 §2.3.1: each of id and secret form-urlencoded, then joined by a colon.
    let (id, pw) = decoded.split_once(':').expect("id:secret");
    assert_eq!(form_decode(id), "my client:1");
    assert_eq!(form_decode(pw), secret);
    assert!(
        !id.contains(':') && !id.contains(' '),
        "id is encoded: {id}"
    );
    assert!(
        !pw.contains('/') && !pw.contains('&') && !pw.contains(':'),
        "secret is encoded: {pw}"
    );

    let body = req.json();
    assert_eq!(
        body,
        json!({"grant_type": "client_credentials", "audience": "https://api.lwolf.com"}),
        "neither client_id nor client_secret in the body"
    );
    assert!(!req.text().contains(SECRET));
}

#[test]
fn basic_auth_with_form_format() {
    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .client_auth(ClientAuth::Basic)
            .token_format(TokenFormat::Form)
            .build()
            .unwrap(),
    );
    ok(client.token());
    let req = only_request(&server);
    assert!(req.header("authorization").unwrap().starts_with("Basic "));
    let mut names: Vec<String> = req.form().into_iter().map(|(k, _)| k).collect();
    names.sort();
    assert_eq!(names, ["audience", "grant_type"]);
}

#[test]
fn user_agent_default_and_custom() {
    let server = Server::tokens();
    ok(client(&server).token());
    assert_eq!(
        only_request(&server).header("user-agent"),
        Some(format!("lwolf-auth/{}", lwolf_auth::VERSION).as_str())
    );
    assert_eq!(lwolf_auth::VERSION, env!("CARGO_PKG_VERSION"));

    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .user_agent("acme-sync/2.0")
            .build()
            .unwrap(),
    );
    ok(client.token());
    assert_eq!(
        only_request(&server).header("user-agent"),
        Some("acme-sync/2.0")
    );
}

// -------------------------------------------------------------------------------------------
// Final answers: not retried.

#[test]
fn client_errors_are_not_retried_and_carry_the_description() {
    let cases: [(u16, u32, &str); 3] = [
        (400, 4, "BadRequest"),
        (401, 3, "InvalidCredentials"),
        (403, 5, "Forbidden"),
    ];
    for (status, code, name) in cases {
        let server = Server::new(Action::json(
            status,
            json!({"error": "invalid_client", "error_description": "the-client-is-unknown-here"})
                .to_string(),
        ));
        let client = Client::new(builder(&server).max_retries(4).build().unwrap());
        let e = err(client.token());
        assert_eq!(lwolf_status::from(&e) as u32, code, "{status}: {e:?}");
        assert_eq!(format!("{e:?}").split('(').next(), Some(name));
        match (status, &e) {
            (400, Error::BadRequest(f))
            | (401, Error::InvalidCredentials(f))
            | (403, Error::Forbidden(f)) => {
                assert_eq!(f.status, status);
                assert_eq!(f.error.as_deref(), Some("invalid_client"));
                assert_eq!(f.description.as_deref(), Some("the-client-is-unknown-here"));
            }
            _ => panic!("{status} gave {e:?}"),
        }
        assert_eq!(e.http_status(), Some(status));
        assert_eq!(e.attempts(), 1);
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(text.contains("the-client-is-unknown-here"), "{text}");
        assert!(text.contains(&status.to_string()), "{text}");
        assert_eq!(server.request_count(), 1, "{status} must not be retried");
    }
}

#[test]
fn other_4xx_is_a_server_error_and_not_retried() {
    let server = Server::new(Action::json(404, r#"{"message":"no such endpoint"}"#));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::Server(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 7);
    assert!(e.to_string().contains("no such endpoint"), "{e}");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn redirect_on_the_token_endpoint_is_not_followed() {
    let elsewhere = Server::tokens();
    for status in [301, 302, 303, 307, 308] {
        let server = Server::new(Action::redirect(status, &elsewhere.token_url()));
        let e = err(client(&server).token());
        assert!(matches!(e, Error::InvalidResponse(_)), "{status}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 9);
        assert_eq!(server.request_count(), 1, "{status} is not retried either");
    }
    assert_eq!(
        elsewhere.connections(),
        0,
        "the redirect target must receive nothing"
    );
}

// -------------------------------------------------------------------------------------------
// Malformed and tolerated responses.

#[test]
fn malformed_token_responses_are_invalid_responses() {
    let cases: Vec<(&str, Action)> = vec![
        (
            "html",
            Action::body(200, "<html><body>Service moved</body></html>")
                .header("Content-Type", "text/html"),
        ),
        ("empty body", Action::status(200)),
        (
            "missing access_token",
            Action::json(200, r#"{"token_type":"Bearer","expires_in":3600}"#),
        ),
        (
            "empty access_token",
            Action::json(200, r#"{"access_token":"","expires_in":3600}"#),
        ),
        (
            "numeric access_token",
            Action::json(200, r#"{"access_token":12345,"expires_in":3600}"#),
        ),
        (
            "mac token type",
            Action::json(
                200,
                r#"{"access_token":"TKN-mac","token_type":"mac","expires_in":3600}"#,
            ),
        ),
        (
            "negative expires_in",
            Action::json(
                200,
                r#"{"access_token":"TKN-neg","token_type":"Bearer","expires_in":-5}"#,
            ),
        ),
        (
            "zero expires_in",
            Action::json(
                200,
                r#"{"access_token":"TKN-zero","token_type":"Bearer","expires_in":0}"#,
            ),
        ),
        // Sub-second lifetimes: 1e-9 was once handed out after it had expired, and 1e-6
        // made 1251 token requests in 5 s. Refused, and not fetched again in a loop.
        (
            "expires_in 1e-9",
            Action::json(200, r#"{"access_token":"TKN-ns","expires_in":1e-9}"#),
        ),
        (
            "expires_in 0.000001",
            Action::json(200, r#"{"access_token":"TKN-us","expires_in":0.000001}"#),
        ),
        (
            "expires_in \"0.999\"",
            Action::json(200, r#"{"access_token":"TKN-ms","expires_in":"0.999"}"#),
        ),
        (
            "JWT exp under 1 s away",
            Action::dynamic(|_| {
                let exp = unix_now() + 0.5;
                let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!(r#"{{"exp":{exp}}}"#));
                Action::json(200, format!(r#"{{"access_token":"e30.{payload}.sig"}}"#))
            }),
        ),
        (
            "word expires_in",
            Action::json(
                200,
                r#"{"access_token":"TKN-abc","token_type":"Bearer","expires_in":"abc"}"#,
            ),
        ),
        (
            "boolean expires_in",
            Action::json(200, r#"{"access_token":"TKN-b","expires_in":true}"#),
        ),
        ("json array", Action::json(200, r#"["TKN-arr"]"#)),
        (
            "error object with 200",
            Action::json(
                200,
                r#"{"error":"server_error","error_description":"try later"}"#,
            ),
        ),
        (
            "token with a newline",
            Action::json(
                200,
                r#"{"access_token":"TKN-a\r\nX-Evil: 1","expires_in":3600}"#,
            ),
        ),
        (
            "8 MiB body",
            Action::Oversized {
                status: 200,
                len: 8 * 1024 * 1024,
            },
        ),
        (
            "65 KiB body",
            Action::Oversized {
                status: 200,
                len: 65 * 1024,
            },
        ),
    ];
    for (what, action) in cases {
        let server = Server::new(action);
        let e = err(client(&server).token());
        assert!(matches!(e, Error::InvalidResponse(_)), "{what}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 9, "{what}");
        assert_eq!(
            server.request_count(),
            1,
            "{what}: a malformed answer is not retried"
        );
    }
}

#[test]
fn a_200_error_object_names_the_error() {
    let server = Server::new(Action::json(200, r#"{"error":"server_error"}"#));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::InvalidResponse(_)));
    assert!(e.to_string().contains("server_error"), "{e}");
}

#[test]
fn tolerated_token_responses() {
    let cases: Vec<(&str, String, u64)> = vec![
        ("lower-case bearer", r#"{"access_token":"TKN-1","token_type":"bearer","expires_in":1800}"#.into(), 1800),
        ("upper-case BEARER", r#"{"access_token":"TKN-2","token_type":"BEARER","expires_in":1800}"#.into(), 1800),
        ("expires_in as a string", r#"{"access_token":"TKN-3","token_type":"Bearer","expires_in":"3600"}"#.into(), 3600),
        (
            "extra fields",
            r#"{"access_token":"TKN-4","token_type":"Bearer","expires_in":900,"scope":"read write","refresh_token":null,"ext":{"a":[1,2]}}"#.into(),
            900,
        ),
        ("missing expires_in", r#"{"access_token":"TKN-5","token_type":"Bearer"}"#.into(), 3600),
        ("missing token_type", r#"{"access_token":"TKN-6","expires_in":86400}"#.into(), 86400),
        ("fractional expires_in", r#"{"access_token":"TKN-7","expires_in":120.5}"#.into(), 120),
    ];
    for (what, body, lifetime) in cases {
        let server = Server::new(Action::json(200, body.clone()));
        let token = ok(client(&server).token());
        let expected: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            token.secret(),
            expected["access_token"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(token.lifetime().as_secs(), lifetime, "{what}");
        assert_no_secret(&format!("{token:?} {token}"));
    }
}

fn jwt(claims: serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(&claims),
        "c2lnbmF0dXJl"
    )
}

#[test]
fn jwt_exp_sets_the_lifetime_when_expires_in_is_missing() {
    let exp = unix_now() as u64 + 7200;
    let token = jwt(json!({"sub": "TKN-jwt", "exp": exp}));
    let server = Server::new(Action::json(
        200,
        json!({"access_token": token, "token_type": "Bearer"}).to_string(),
    ));
    let before = SystemTime::now();
    let got = ok(client(&server).token());
    assert_eq!(got.secret(), token);
    let lifetime = got.lifetime();
    assert!(
        lifetime > Duration::from_secs(7100) && lifetime <= Duration::from_secs(7200),
        "lifetime follows exp: {lifetime:?}"
    );
    let expires = got
        .expires_at()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (expires - exp as f64).abs() < 2.0,
        "expires_at {expires} vs exp {exp}"
    );
    assert!(got.expires_at() > before);

    // expires_in, when present, wins over exp.
    let server = Server::new(Action::json(
        200,
        json!({"access_token": jwt(json!({"exp": exp})), "expires_in": 600}).to_string(),
    ));
    assert_eq!(
        ok(client(&server).token()).lifetime(),
        Duration::from_secs(600)
    );
}

#[test]
fn a_jwt_already_expired_is_refused() {
    let token = jwt(json!({"exp": unix_now() as u64 - 10}));
    let server = Server::new(Action::json(
        200,
        json!({"access_token": token}).to_string(),
    ));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::InvalidResponse(_)), "{e:?}");
}

// -------------------------------------------------------------------------------------------
// Secrets in errors.

#[test]
fn a_server_echoing_the_secret_cannot_leak_it_into_errors() {
    // In error_description of a 401.
    let server = Server::new(Action::json(
        401,
        json!({
            "error": format!("invalid_client {SECRET}"),
            "error_description": format!("client_secret {SECRET} is wrong")
        })
        .to_string(),
    ));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::InvalidCredentials(_)), "{e:?}");
    let text = e.to_string();
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("client_secret") && text.contains("is wrong"),
        "{text}"
    );
    let f = e.http_failure().unwrap();
    assert!(!f.description.as_deref().unwrap().contains(SECRET));
    assert!(!f.error.as_deref().unwrap().contains(SECRET));

    // In a 200 without a token.
    let server = Server::new(Action::json(
        200,
        json!({"error": "x", "error_description": format!("you sent {SECRET}")}).to_string(),
    ));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::InvalidResponse(_)));

    // In the token type.
    let server = Server::new(Action::json(
        200,
        json!({"access_token": "TKN-x", "token_type": SECRET, "expires_in": 60}).to_string(),
    ));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::InvalidResponse(_)));

    // In a 500 after retries.
    let server = Server::new(Action::json(
        500,
        json!({"message": format!("db down, secret={SECRET}")}).to_string(),
    ));
    let e = err(client(&server).token());
    assert!(matches!(e, Error::Server(_)));
    assert!(e.to_string().contains("db down"), "{e}");
}

#[test]
fn error_is_small() {
    assert!(
        std::mem::size_of::<Error>() <= 24,
        "size_of::<Error>() = {}",
        std::mem::size_of::<Error>()
    );
    assert!(std::mem::size_of::<Result<(), Error>>() <= 24);
}
