//! `Config::from_env` and `ConfigBuilder::from_env`. One test only: the environment is
//! process-global, and tests in one binary run in parallel.

use lwolf_test_support::common;

use std::time::Duration;

use common::*;
use lwolf_auth::{Client, ClientAuth, Config, ConfigBuilder, Error, TokenFormat};

fn clear_lwolf_vars() {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LWOLF_") {
            std::env::remove_var(name);
        }
    }
}

#[test]
fn configuration_from_the_environment() {
    let tmp = TempDir::new("configuration-from-the-environment");
    clear_lwolf_vars();
    let server = Server::tokens();

    // Nothing set: the required keys are missing.
    let e = err(Config::from_env());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    let vars = [
        ("LWOLF_CLIENT_ID", "env-client".to_owned()),
        ("LWOLF_CLIENT_SECRET", SECRET.to_owned()),
        ("LWOLF_AUDIENCE", "https://aud.env.example".to_owned()),
        ("LWOLF_TOKEN_URL", server.token_url()),
        ("LWOLF_API_BASE_URL", format!("{}/backoffice", server.url())),
        ("LWOLF_LWT_CLIENT_ID", "env-tenant".to_owned()),
        ("LWOLF_REFRESH_RATIO", "0.8".to_owned()),
        ("LWOLF_TIMEOUT_MS", "4000".to_owned()),
        ("LWOLF_MAX_RETRIES", "1".to_owned()),
        ("LWOLF_RETRY_BASE_MS", "10".to_owned()),
        ("LWOLF_RETRY_MAX_MS", "50".to_owned()),
        ("LWOLF_TOKEN_FORMAT", "json".to_owned()),
        ("LWOLF_CLIENT_AUTH", "body".to_owned()),
        ("LWOLF_USER_AGENT", "env-agent/1".to_owned()),
        ("LWOLF_MAX_RESPONSE_BYTES", "2048".to_owned()),
    ];
    for (k, v) in &vars {
        std::env::set_var(k, v);
    }
    let config = ok(Config::from_env());
    assert_eq!(config.client_id(), "env-client");
    assert_eq!(config.audience(), "https://aud.env.example");
    assert_eq!(config.token_url(), server.token_url());
    assert_eq!(
        config.api_base_url(),
        format!("{}/backoffice", server.url())
    );
    assert_eq!(config.lwt_client_id(), Some("env-tenant"));
    assert_eq!(config.refresh_ratio(), 0.8);
    assert_eq!(config.timeout(), Duration::from_millis(4000));
    assert_eq!(config.max_retries(), 1);
    assert_eq!(config.retry_base(), Duration::from_millis(10));
    assert_eq!(config.retry_max(), Duration::from_millis(50));
    assert_eq!(config.token_format(), TokenFormat::Json);
    assert_eq!(config.client_auth(), ClientAuth::Body);
    assert_eq!(config.user_agent(), "env-agent/1");
    assert_eq!(config.max_response_bytes(), 2048);
    assert_no_secret(&format!("{config:?}"));

    // Client::from_env uses it all on the wire.
    let client = ok(Client::from_env());
    ok(client.token());
    let req = server.request(0);
    assert_eq!(req.header("user-agent"), Some("env-agent/1"));
    assert_eq!(
        req.json(),
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "env-client",
            "client_secret": SECRET,
            "audience": "https://aud.env.example",
            "lwt_client_id": "env-tenant",
        })
    );

    // The builder from the environment can be adjusted before building.
    let mut b = ok(ConfigBuilder::from_env());
    b.set("token_format", "form").unwrap();
    let config = ok(b.client_auth(ClientAuth::Basic).build());
    assert_eq!(config.token_format(), TokenFormat::Form);
    assert_eq!(config.client_auth(), ClientAuth::Basic);
    assert_eq!(config.client_id(), "env-client");

    // Empty variables are skipped.
    std::env::set_var("LWOLF_AUDIENCE", "");
    std::env::set_var("LWOLF_LWT_CLIENT_ID", "");
    let config = ok(Config::from_env());
    assert_eq!(config.audience(), "https://api.lwolf.com");
    assert_eq!(config.lwt_client_id(), None);

    // The secret from a file.
    let path = tmp.join("env-secret");
    std::fs::write(&path, "file-s3cr3t-DO-NOT-LEAK\n").unwrap();
    std::env::remove_var("LWOLF_CLIENT_SECRET");
    std::env::set_var("LWOLF_CLIENT_SECRET_FILE", &path);
    let client = ok(Client::from_env());
    ok(client.token());
    assert_eq!(
        server.request(1).json()["client_secret"],
        "file-s3cr3t-DO-NOT-LEAK"
    );
    std::fs::write(&path, "").unwrap();
    let e = err(Config::from_env());
    assert!(matches!(e, Error::Config(_)), "empty secret file: {e:?}");
    std::env::set_var("LWOLF_CLIENT_SECRET_FILE", tmp.join("absent"));
    let e = err(Config::from_env());
    assert!(matches!(e, Error::Config(_)), "missing secret file: {e:?}");
    std::env::remove_var("LWOLF_CLIENT_SECRET_FILE");
    std::env::set_var("LWOLF_CLIENT_SECRET", SECRET);

    // An unparsable value is an invalid argument, from both entry points.
    std::env::set_var("LWOLF_TIMEOUT_MS", "soon");
    let e = err(ConfigBuilder::from_env());
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("timeout_ms"), "{e}");
    let e = err(Config::from_env());
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    std::env::set_var("LWOLF_TIMEOUT_MS", "4000");
    std::env::set_var("LWOLF_REFRESH_RATIO", "1.5");
    let e = err(Config::from_env());
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    std::env::set_var("LWOLF_REFRESH_RATIO", "0.8");

    // A forbidden URL is a configuration error.
    std::env::set_var("LWOLF_TOKEN_URL", "http://gateway.lwolf.com/oauth/token");
    let e = err(Config::from_env());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    std::env::set_var("LWOLF_TOKEN_URL", server.token_url());

    // Non-UTF-8 is an invalid argument.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::env::set_var(
            "LWOLF_USER_AGENT",
            std::ffi::OsStr::from_bytes(&[0x61, 0xff, 0x62]),
        );
        let e = err(Config::from_env());
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        std::env::set_var("LWOLF_USER_AGENT", "env-agent/1");
    }

    // A missing client id.
    std::env::remove_var("LWOLF_CLIENT_ID");
    let e = err(Config::from_env());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = err(Client::from_env());
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    assert_eq!(
        server.token_requests(),
        2,
        "building configs does no network I/O"
    );
    clear_lwolf_vars();
}
