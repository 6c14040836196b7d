//! Configuration through the builder and its string keys.

use lwolf_test_support::common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use lwolf_auth::{Client, ClientAuth, Config, ConfigBuilder, Error, TokenFormat, CONFIG_KEYS};
use lwolf_auth_ffi::lwolf_status;

#[test]
fn defaults() {
    let config = ok(Config::builder()
        .client_id("id")
        .client_secret("pw")
        .build());
    assert_eq!(config.client_id(), "id");
    assert_eq!(config.audience(), "https://api.lwolf.com");
    assert_eq!(config.token_url(), "https://gateway.lwolf.com/oauth/token");
    assert_eq!(config.api_base_url(), "https://api.lwolf.com/backoffice");
    assert_eq!(config.lwt_client_id(), None);
    assert_eq!(config.refresh_ratio(), 0.9);
    assert_eq!(config.timeout(), Duration::from_millis(30_000));
    assert_eq!(config.deadline(), Duration::from_millis(60_000));
    assert_eq!(config.max_retries(), 4);
    assert_eq!(config.retry_base(), Duration::from_millis(500));
    assert_eq!(config.retry_max(), Duration::from_millis(30_000));
    assert_eq!(config.token_format(), TokenFormat::Json);
    assert_eq!(config.client_auth(), ClientAuth::Body);
    assert_eq!(
        config.user_agent(),
        format!("lwolf-auth/{}", lwolf_auth::VERSION)
    );
    assert_eq!(
        config.max_response_bytes(),
        lwolf_auth::defaults::DEFAULT_MAX_RESPONSE_BYTES
    );
}

/// Every key of `CONFIG_KEYS`, and only those, set through `ConfigBuilder::set` and each
/// seen to take effect: by a getter, or in the token request, or on disk, or (`ca_file`) by
/// a TLS server that only its CA lets the client trust.
#[test]
fn every_key_can_be_set_from_a_string() {
    let tmp = TempDir::new("every-key");
    let pki = TestPki::new();
    let server = Server::new_tls(issue_tokens("every-key", 3600), pki.server_config.clone());
    let ca = tmp.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let secret_file = tmp.join("secret");
    std::fs::write(&secret_file, "from-the-file-s3cr3t\n").unwrap();
    let cache = tmp.join("cache");
    let key_file = tmp.join("subscription-key");
    std::fs::write(&key_file, "sub-key-from-the-file\n").unwrap();
    let values: Vec<(&str, String)> = vec![
        ("client_id", "cid-from-set".into()),
        // Set first, then replaced by the file (the last of the two wins).
        ("client_secret", SECRET.into()),
        ("client_secret_file", secret_file.to_str().unwrap().into()),
        ("audience", "https://aud.example".into()),
        ("token_url", server.token_url()),
        ("api_base_url", format!("{}/bo", server.url())),
        ("transact_base_url", format!("{}/tw/", server.url())),
        ("lwt_client_id", "tenant-9".into()),
        ("refresh_ratio", "0.75".into()),
        ("timeout_ms", "7000".into()),
        ("deadline_ms", "45000".into()),
        ("max_retries", "7".into()),
        ("retry_base_ms", "20".into()),
        ("retry_max_ms", "400".into()),
        ("token_format", "form".into()),
        ("client_auth", "basic".into()),
        // Used with client_auth=private_key_jwt only: accepted here, and seen to take effect
        // through `set` in tests/private_key_jwt.rs (`keys_set_from_strings_take_effect`).
        (
            "private_key_file",
            "/nonexistent/unused-with-basic.pem".into(),
        ),
        ("private_key_id", "kid-1".into()),
        ("assertion_alg", "PS256".into()),
        ("assertion_audience", "https://issuer.example/".into()),
        // DPoP: seen to take effect in tests/dpop.rs (`set("dpop", ...)` there).
        ("dpop", "off".into()),
        ("dpop_key_file", "".into()),
        ("ca_file", ca.to_str().unwrap().into()),
        ("user_agent", "agent/9".into()),
        ("max_response_bytes", "12345".into()),
        ("cache_dir", cache.to_str().unwrap().into()),
        // Nothing listens there: the fleet cache is tried once and left alone (logged).
        ("cache_url", "redis://127.0.0.1:1/3".into()),
        // Set, then replaced by the file.
        ("subscription_key", "sub-key-given".into()),
        ("subscription_key_file", key_file.to_str().unwrap().into()),
        ("ca_system", "on".into()),
        ("max_in_flight", "6".into()),
        ("max_requests_per_second", "25".into()),
        ("request_id_header", "Correlation-Id".into()),
    ];
    let mut set: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    let mut known: Vec<&str> = CONFIG_KEYS.to_vec();
    set.sort_unstable();
    known.sort_unstable();
    assert_eq!(set, known, "this test and CONFIG_KEYS disagree");

    let mut b = Config::builder();
    for (key, value) in &values {
        b.set(key, value)
            .unwrap_or_else(|e| panic!("{key}={value}: {e:?}"));
    }
    let config = ok(b.build());
    assert_eq!(config.client_id(), "cid-from-set");
    assert_eq!(config.audience(), "https://aud.example");
    assert_eq!(config.token_url(), server.token_url());
    assert_eq!(config.api_base_url(), format!("{}/bo", server.url()));
    assert_eq!(config.transact_base_url(), format!("{}/tw", server.url()));
    assert_eq!(config.lwt_client_id(), Some("tenant-9"));
    assert_eq!(config.refresh_ratio(), 0.75);
    assert_eq!(config.timeout(), Duration::from_millis(7000));
    assert_eq!(config.deadline(), Duration::from_millis(45_000));
    assert_eq!(config.max_retries(), 7);
    assert_eq!(config.retry_base(), Duration::from_millis(20));
    assert_eq!(config.retry_max(), Duration::from_millis(400));
    assert_eq!(config.token_format(), TokenFormat::Form);
    assert_eq!(config.client_auth(), ClientAuth::Basic);
    assert_eq!(config.user_agent(), "agent/9");
    assert_eq!(config.max_response_bytes(), 12345);
    assert_eq!(config.cache_dir(), Some(cache.as_path()));
    assert_eq!(config.cache_url(), Some("redis://127.0.0.1:1/3"));
    assert_eq!(config.max_in_flight(), 6);
    assert_eq!(config.max_requests_per_second(), 25);
    assert_eq!(config.request_id_header(), Some("Correlation-Id"));

    // The rest show in the exchange: the secret (from the file, as HTTP Basic), the form
    // body, the tenant; the server's certificate is trusted through `ca_file` alone.
    let client = Client::new(config);
    let token = ok(client.token());
    let req = server.request(0);
    assert_eq!(req.header("user-agent"), Some("agent/9"));
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode("cid-from-set:from-the-file-s3cr3t");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let mut form = req.form();
    form.sort();
    assert_eq!(
        form,
        [
            ("audience".to_owned(), "https://aud.example".to_owned()),
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("lwt_client_id".to_owned(), "tenant-9".to_owned()),
        ]
    );
    // The subscription key goes to the API, from the file, and never to the token endpoint.
    assert_eq!(req.header("lw-subscription-key"), None);
    ok(client.get("/v1/anything").send());
    let api = server.requests().pop().unwrap();
    assert_eq!(api.path, "/bo/v1/anything");
    assert_eq!(
        api.header("lw-subscription-key"),
        Some("sub-key-from-the-file")
    );
    // The shared cache file holds this token (sealed), under cache_dir: another client
    // reads it from there.
    let file = client.cache_file().expect("a cache file with cache_dir");
    assert!(file.starts_with(&cache), "{}", file.display());
    let saved = std::fs::read(file).unwrap();
    assert!(!String::from_utf8_lossy(&saved).contains(token.secret()));
    let again = ok(Client::new(ok(b.build())).token());
    assert_eq!(again.secret(), token.secret());
    assert_eq!(again.source(), lwolf_auth::TokenSource::CacheDir);
}

#[test]
fn client_secret_file_via_set() {
    let tmp = TempDir::new("client-secret-file-via-set");
    let server = Server::tokens();
    let path = tmp.join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let mut b = builder(&server);
    b.set("client_secret_file", path.to_str().unwrap()).unwrap();
    let client = Client::new(ok(b.build()));
    ok(client.token());
    assert_eq!(server.request(0).json()["client_secret"], SECRET);
}

#[test]
fn secret_file_drops_one_trailing_newline_only() {
    let tmp = TempDir::new("secret-file-drops-one-trailing-newline-o");
    let server = Server::tokens();
    let cases = [
        (format!("{SECRET}\n"), SECRET.to_owned()),
        (format!("{SECRET}\r\n"), SECRET.to_owned()),
        (SECRET.to_owned(), SECRET.to_owned()),
        (format!("{SECRET}\n\n"), format!("{SECRET}\n")),
        (format!(" {SECRET} \n"), format!(" {SECRET} ")),
        // As Windows' Notepad may save it: a byte order mark, then CRLF.
        (format!("\u{feff}{SECRET}\r\n"), SECRET.to_owned()),
    ];
    for (i, (content, expected)) in cases.into_iter().enumerate() {
        let path = tmp.join("secret");
        std::fs::write(&path, &content).unwrap();
        let client = Client::new(ok(builder(&server).client_secret_file(&path).build()));
        ok(client.token());
        assert_eq!(
            server.request(i).json()["client_secret"].as_str().unwrap(),
            expected,
            "file content {content:?}"
        );
    }
}

#[test]
fn the_last_of_secret_and_secret_file_wins() {
    let tmp = TempDir::new("the-last-of-secret-and-secret-file-wins");
    let server = Server::tokens();
    let path = tmp.join("secret");
    std::fs::write(&path, "from-file-s3cr3t-DO-NOT-LEAK\n").unwrap();
    let client = Client::new(ok(builder(&server)
        .client_secret_file(&path)
        .client_secret(SECRET)
        .build()));
    ok(client.token());
    assert_eq!(server.request(0).json()["client_secret"], SECRET);
    let client = Client::new(ok(builder(&server)
        .client_secret(SECRET)
        .client_secret_file(&path)
        .build()));
    ok(client.token());
    assert_eq!(
        server.request(1).json()["client_secret"],
        "from-file-s3cr3t-DO-NOT-LEAK"
    );
}

#[test]
fn an_empty_or_missing_secret_file_is_a_config_error_at_build() {
    let tmp = TempDir::new("an-empty-or-missing-secret-file-is-a-con");
    let server = Server::tokens();
    let missing = tmp.join("no-such-secret");
    // Setting it is fine; building reads it.
    let mut b = builder(&server);
    b.set("client_secret_file", missing.to_str().unwrap())
        .unwrap();
    let e = err(b.build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    for content in ["", "\n", "\r\n"] {
        let path = tmp.join("empty-secret");
        std::fs::write(&path, content).unwrap();
        let e = err(builder(&server).client_secret_file(&path).build());
        assert!(matches!(e, Error::Config(_)), "{content:?}: {e:?}");
    }

    let e = err(builder(&server)
        .client_secret_file(std::env::temp_dir())
        .build());
    assert!(matches!(e, Error::Config(_)), "a directory: {e:?}");

    let path = tmp.join("binary-secret");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let e = err(builder(&server).client_secret_file(&path).build());
    assert!(matches!(e, Error::Config(_)), "not UTF-8: {e:?}");
    assert_eq!(server.connections(), 0);
}

#[test]
fn missing_credentials_are_config_errors() {
    let e = err(Config::builder().client_secret("pw").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 2);
    let e = err(Config::builder().client_id("id").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(Config::builder().client_id("").client_secret("pw").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(Config::builder().client_id("id").client_secret("").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(ConfigBuilder::default().build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[test]
fn unknown_keys_and_bad_values_are_invalid_arguments_and_change_nothing() {
    let bad: &[(&str, &str)] = &[
        ("no_such_key", "1"),
        ("CLIENT_ID", "x"),
        ("client-id", "x"),
        ("", "x"),
        ("refresh_ratio", "abc"),
        ("refresh_ratio", "0"),
        ("refresh_ratio", "1"),
        ("refresh_ratio", "1.5"),
        ("refresh_ratio", "-0.5"),
        ("refresh_ratio", "NaN"),
        ("timeout_ms", "soon"),
        ("timeout_ms", "0"),
        ("timeout_ms", "-5"),
        ("timeout_ms", "1.5"),
        ("max_retries", "-1"),
        ("max_retries", "many"),
        ("max_retries", "99999999999999999999"),
        ("retry_base_ms", "x"),
        ("retry_max_ms", ""),
        ("token_format", "xml"),
        ("token_format", "JSONX"),
        ("client_auth", "digest"),
        ("max_response_bytes", "big"),
    ];
    let mut b = Config::builder().client_id("id").client_secret(SECRET);
    b.set("timeout_ms", "1234").unwrap();
    let before = format!("{b:?}");
    for (key, value) in bad {
        let e = err(b.set(key, value));
        assert!(
            matches!(e, Error::InvalidArgument(_)),
            "{key}={value}: {e:?}"
        );
        assert_eq!(lwolf_status::from(&e) as u32, 1);
        assert_eq!(
            format!("{b:?}"),
            before,
            "{key}={value} changed the builder"
        );
    }
    let config = ok(b.build());
    assert_eq!(config.timeout(), Duration::from_millis(1234));
    assert_eq!(config.refresh_ratio(), 0.9);
    assert_eq!(config.token_format(), TokenFormat::Json);
}

#[test]
fn refresh_ratio_out_of_range_is_refused_at_build() {
    for r in [0.0, 1.0, -0.1, 1.1, f64::NAN, f64::INFINITY] {
        let e = err(Config::builder()
            .client_id("id")
            .client_secret("pw")
            .refresh_ratio(r)
            .build());
        assert!(matches!(e, Error::Config(_)), "{r}: {e:?}");
    }
    for r in [0.01, 0.5, 0.99] {
        let config = ok(Config::builder()
            .client_id("id")
            .client_secret("pw")
            .refresh_ratio(r)
            .build());
        assert_eq!(config.refresh_ratio(), r);
    }
    let mut b = Config::builder();
    b.set("refresh_ratio", "0.5").unwrap();
    b.set("refresh_ratio", " 0.25 ")
        .unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn other_invalid_settings_are_config_errors() {
    let base = || Config::builder().client_id("id").client_secret("pw");
    let e = err(base().timeout(Duration::ZERO).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(base().retry_base(secs(10)).retry_max(secs(1)).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(base().audience("").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(base().user_agent("bad\r\nX-Injected: 1").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(base().lwt_client_id("").build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[test]
fn the_builder_can_be_reused_and_configs_cloned() {
    let server = Server::tokens();
    let b = builder(&server);
    let one = ok(b.build());
    let two = ok(b.clone().lwt_client_id("t-2").build());
    assert_eq!(one.lwt_client_id(), None);
    assert_eq!(two.lwt_client_id(), Some("t-2"));
    let copy = one.clone();
    assert_eq!(copy.token_url(), one.token_url());
    ok(Client::new(copy).token());
    assert_eq!(server.request(0).json()["client_secret"], SECRET);
}
