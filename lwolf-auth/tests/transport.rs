//! Transport security: which URLs may carry credentials, and TLS verification with `ca_file`.

use lwolf_test_support::common;

use common::*;
use lwolf_auth::{Client, Config, Error};
use lwolf_auth_ffi::lwolf_status;

fn base() -> lwolf_auth::ConfigBuilder {
    Config::builder().client_id(CLIENT_ID).client_secret(SECRET)
}

#[test]
fn http_is_only_allowed_to_loopback_hosts() {
    let refused = [
        "http://gateway.lwolf.com/oauth/token",
        "http://10.0.0.1/oauth/token",
        "http://192.168.1.10:8080/oauth/token",
        "http://128.0.0.1/oauth/token",
        "http://[::2]/oauth/token",
        "http://localhost.evil.example/oauth/token",
        "http://127.0.0.1.nip.example/oauth/token",
        "ftp://127.0.0.1/oauth/token",
        "ftp://gateway.lwolf.com/oauth/token",
        "file:///etc/passwd",
        "gateway.lwolf.com/oauth/token",
        "/oauth/token",
        "",
        "https://user:pw@gateway.lwolf.com/oauth/token",
    ];
    for url in refused {
        let e = err(base().token_url(url).build());
        assert!(matches!(e, Error::Config(_)), "token_url {url:?}: {e:?}");
        assert_eq!(lwolf_status::from(&e) as u32, 2);
        let e = err(base().api_base_url(url).build());
        assert!(matches!(e, Error::Config(_)), "api_base_url {url:?}: {e:?}");
    }
    let allowed = [
        "http://localhost/oauth/token",
        "http://localhost:8080/oauth/token",
        "http://LOCALHOST:8080/oauth/token",
        "http://127.0.0.1:8080/oauth/token",
        "http://127.0.0.2/oauth/token",
        "http://127.255.255.254:1/oauth/token",
        "http://[::1]/oauth/token",
        "http://[::1]:8443/oauth/token",
        "https://gateway.lwolf.com/oauth/token",
        "https://gateway.lwolf.com:8443/oauth/token",
        "https://10.0.0.1/oauth/token",
    ];
    for url in allowed {
        let config = base().token_url(url).api_base_url(url).build();
        let config = ok(config);
        assert_eq!(config.token_url(), url);
    }
}

#[test]
fn defaults_are_the_vendors_https_urls() {
    let config = ok(base().build());
    assert_eq!(config.token_url(), "https://gateway.lwolf.com/oauth/token");
    assert_eq!(config.api_base_url(), "https://api.lwolf.com/backoffice");
    assert_eq!(config.audience(), "https://api.lwolf.com");
    assert_eq!(lwolf_auth::defaults::DEFAULT_TOKEN_URL, config.token_url());
    assert_eq!(
        lwolf_auth::defaults::DEFAULT_API_BASE_URL,
        config.api_base_url()
    );
    assert_eq!(lwolf_auth::defaults::DEFAULT_AUDIENCE, config.audience());
}

/// The CA in a file of a directory of its own, removed when the `TempDir` is dropped.
fn write_ca(pki: &TestPki) -> (TempDir, std::path::PathBuf) {
    let tmp = TempDir::new("transport-ca");
    let path = tmp.join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    (tmp, path)
}

#[test]
fn tls_with_ca_file_succeeds() {
    let pki = TestPki::new();
    let server = Server::new_tls(
        route(issue_tokens("tls", 3600), Action::json(200, "{}")),
        pki.server_config.clone(),
    );
    let (_ca_dir, ca) = write_ca(&pki);
    let client = Client::new(ok(builder(&server).ca_file(&ca).build()));
    assert!(server.token_url().starts_with("https://127.0.0.1:"));
    let token = ok(client.token());
    assert_eq!(token.secret(), issued("tls", 1));
    let req = server.request(0);
    assert_eq!(req.path, TOKEN_PATH);
    assert_eq!(req.json()["client_secret"], SECRET);

    // API requests over TLS too.
    let resp = ok(client.get("/v1/x").send());
    assert_eq!(resp.status(), 200);
    let api = server.request(1);
    assert_eq!(api.path, "/backoffice/v1/x");
    assert_eq!(
        api.header("authorization"),
        Some(format!("Bearer {}", token.secret()).as_str())
    );

    // The certificate names localhost as well.
    let client = Client::new(ok(builder(&server)
        .token_url(format!("https://localhost:{}/oauth/token", server.port()))
        .ca_file(&ca)
        .build()));
    assert_eq!(ok(client.token()).secret(), issued("tls", 2));
}

#[test]
fn tls_without_the_ca_is_a_transport_error_not_retried() {
    let pki = TestPki::new();
    let server = Server::new_tls(issue_tokens("tls", 3600), pki.server_config.clone());
    let client = Client::new(ok(builder(&server).max_retries(3).build()));
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(lwolf_status::from(&e) as u32, 8);
    assert_eq!(e.attempts(), 1, "a certificate error is not retried");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("tls"), "{e}");
    assert_eq!(server.connections(), 1);
    assert_eq!(
        server.request_count(),
        0,
        "nothing was sent over the untrusted connection"
    );

    // Another CA does not help either.
    let other = TestPki::new();
    let (_ca_dir, ca) = write_ca(&other);
    let client = Client::new(ok(builder(&server).ca_file(&ca).build()));
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_bad_ca_file_is_a_config_error_at_build() {
    let tmp = TempDir::new("a-bad-ca-file-is-a-config-error-at-build");
    let server = Server::tokens();
    let missing = tmp.join("no-such-ca.pem");
    let e = err(builder(&server).ca_file(&missing).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    let dir = std::env::temp_dir();
    let e = err(builder(&server).ca_file(&dir).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    let garbage = tmp.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let e = err(builder(&server).ca_file(&garbage).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    let broken = tmp.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = err(builder(&server).ca_file(&broken).build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // Through the string key as well.
    let mut b = builder(&server);
    b.set("ca_file", missing.to_str().unwrap()).unwrap();
    let e = err(b.build());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    assert_eq!(server.connections(), 0, "building does no network I/O");
}

#[test]
fn plain_http_against_a_tls_server_is_a_transport_error() {
    let pki = TestPki::new();
    let server = Server::new_tls(issue_tokens("tls", 3600), pki.server_config.clone());
    let client = Client::new(ok(builder(&server)
        .token_url(format!("http://127.0.0.1:{}/oauth/token", server.port()))
        .max_retries(0)
        .timeout(secs(3))
        .build()));
    let e = err(client.token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
}
