//! `HTTPS_PROXY` / `NO_PROXY`, and loopback hosts never going through a proxy. One test
//! only: it sets process-global environment variables.

use lwolf_test_support::common;

use common::*;
use lwolf_auth::{Client, Config, Error};

const PROXY_VARS: &[&str] = &[
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn remote_client() -> Client {
    // `.test` is reserved (RFC 2606): it never resolves, so nothing can leave the machine.
    Client::new(
        Config::builder()
            .client_id(CLIENT_ID)
            .client_secret(SECRET)
            .token_url("https://gateway.example.test/oauth/token")
            .api_base_url("https://api.example.test/backoffice")
            .max_retries(0)
            .timeout(secs(5))
            .build()
            .unwrap(),
    )
}

#[test]
fn proxies_from_the_environment() {
    for v in PROXY_VARS {
        std::env::remove_var(v);
    }
    // The fake proxy records the CONNECT and closes the connection.
    let proxy = Server::new(Action::Reset);
    let local = Server::new(route(issue_tokens("t", 3600), Action::status(200)));
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port()));

    // A remote host goes through the proxy, as a CONNECT tunnel.
    let e = err(remote_client().token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    proxy.wait_for_requests(1, secs(10));
    let connect = proxy.request(0);
    assert_eq!(connect.method, "CONNECT");
    assert_eq!(connect.path, "gateway.example.test:443");
    assert!(connect.body.is_empty());
    for (name, value) in &connect.headers {
        assert!(
            !value.contains(SECRET),
            "the proxy saw the secret in {name}"
        );
    }
    assert_eq!(proxy.request_count(), 1);

    // A loopback host never does.
    let client = Client::new(builder(&local).build().unwrap());
    let token = ok(client.token());
    assert_eq!(token.secret(), issued("t", 1));
    assert_eq!(ok(client.get("/v1/x").send()).status(), 200);
    assert_eq!(local.request_count(), 2);
    assert_eq!(
        proxy.request_count(),
        1,
        "loopback traffic went through the proxy"
    );

    // NO_PROXY exempts a host: the proxy sees nothing, and the direct attempt fails on the
    // unresolvable name.
    std::env::set_var("NO_PROXY", "gateway.example.test");
    let e = err(remote_client().token());
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(proxy.request_count(), 1, "NO_PROXY was not honoured");
    assert_eq!(proxy.connections(), 1);

    for v in PROXY_VARS {
        std::env::remove_var(v);
    }
}
