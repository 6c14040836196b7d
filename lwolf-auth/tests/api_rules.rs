//! Each API's own rules (the Transact handle), the pace of API calls (`max_in_flight`,
//! `max_requests_per_second`), the request id, and the stats: through the Rust API, against
//! the sandbox and scripted servers.

use lwolf_test_support::common;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lwolf_auth::{Client, Error};
use lwolf_sandbox::Sandbox;

const SUBSCRIPTION_KEY: &str = "sub-key-7f3a9c";

/// The WARN and ERROR records logged while `f` runs that mention `about` (the handler is
/// the process's: other tests' records are filtered out by `about`).
fn warnings_about(about: &str, f: impl FnOnce()) -> Vec<String> {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    SEEN.lock().unwrap().clear();
    lwolf_auth::unversioned::log::set_handler(
        lwolf_auth::unversioned::log::LevelFilter::Warn,
        |level, message| SEEN.lock().unwrap().push(format!("{level} {message}")),
    );
    f();
    lwolf_auth::unversioned::log::clear_handler();
    let seen = SEEN.lock().unwrap();
    seen.iter().filter(|l| l.contains(about)).cloned().collect()
}

fn transact_client(tokens: &Server, api: &Server) -> Client {
    Client::new(
        builder_for(tokens, api)
            .transact_base_url(format!("{}/transact-workflow", api.url()))
            .subscription_key(SUBSCRIPTION_KEY)
            .build()
            .unwrap(),
    )
}

#[test]
fn a_transact_403_never_renews_the_token() {
    // The sandbox's Transact stand-in answers 403 to a wrong subscription key.
    let sandbox = Sandbox::start().unwrap();
    let client = Client::new(
        sandbox
            .config_builder()
            .subscription_key("not-the-sandbox-key")
            .transact_base_url(sandbox.transact_base_url())
            .build()
            .unwrap(),
    );
    let transact = client.transact();
    let warnings = warnings_about("subscription", || {
        for _ in 0..200 {
            let resp = ok(transact.get("/v1/transactions").send());
            assert_eq!(resp.status(), 403);
        }
    });
    // One token for the first call; none for the 200 refusals.
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(sandbox.api_requests(), 200);
    let stats = client.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.forced_renewals, 0);
    assert_eq!(stats.renewals_declined, 200);
    assert_eq!(stats.api_requests, 200);
    // One WARN (at most one a minute), naming the key's header, never the key.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("WARN "), "{warnings:?}");
    assert!(warnings[0].contains("lw-subscription-key"), "{warnings:?}");
    assert!(!warnings[0].contains("not-the-sandbox-key"), "{warnings:?}");
    // The right key is accepted by the same handle's rules.
    let right = Client::new(
        sandbox
            .config_builder()
            .transact_base_url(sandbox.transact_base_url())
            .build()
            .unwrap(),
    );
    let resp = ok(right.transact().get("/v1/transactions").send());
    assert_eq!(resp.status(), 200, "{}", resp.text());
}

#[test]
fn a_transact_401_renews_at_most_once_per_30_s() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(401, r#"{"code":"invalid_token"}"#));
    let client = transact_client(&tokens, &api).transact();
    for _ in 0..200 {
        assert_eq!(ok(client.get("/v1/transactions").send()).status(), 401);
    }
    assert!(tokens.token_requests() <= 2, "{}", tokens.token_requests());
    assert_eq!(tokens.token_requests(), 2, "the first 401 renews once");
    let stats = client.stats();
    assert_eq!(stats.forced_renewals, 1);
    assert_eq!(stats.renewals_declined, 199);
    // Every request carried the key; the token endpoint never saw it.
    assert!(api
        .requests()
        .iter()
        .all(|r| r.header("lw-subscription-key") == Some(SUBSCRIPTION_KEY)));
    assert!(tokens
        .requests()
        .iter()
        .all(|r| r.header("lw-subscription-key").is_none()));
}

#[test]
fn the_back_office_handle_renews_on_403() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, r#"{"ok":true}"#));
    api.push(Action::json(403, r#"{"code":"forbidden"}"#));
    let client = transact_client(&tokens, &api);
    assert_eq!(ok(client.get("/v1/offices").send()).status(), 200);
    assert_eq!(tokens.token_requests(), 2);
    assert_eq!(client.stats().forced_renewals, 1);
}

#[test]
fn for_api_with_the_transact_base_gets_transacts_rules() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(403, r#"{"code":"forbidden"}"#));
    let client = transact_client(&tokens, &api);
    let by_url = client
        .for_api(&format!("{}/transact-workflow", api.url()))
        .unwrap();
    for _ in 0..20 {
        assert_eq!(ok(by_url.get("/v1/transactions").send()).status(), 403);
    }
    assert_eq!(tokens.token_requests(), 1);
    assert_eq!(client.stats().renewals_declined, 20);
}

#[test]
fn a_403_of_the_transact_api_never_renews_whatever_handle_sent_it() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(403, r#"{"code":"forbidden"}"#));
    let client = transact_client(&tokens, &api);
    // The Back Office handle, reaching the Transact API by an absolute URL on the same origin.
    let url = format!("{}/transact-workflow/v1/transactions", api.url());
    for _ in 0..20 {
        assert_eq!(ok(client.get(&url).send()).status(), 403);
    }
    // A handle made for the Transact base with a trailing slash is the Transact API too.
    let spelled = client
        .for_api(&format!("{}/transact-workflow/", api.url()))
        .unwrap();
    assert_eq!(ok(spelled.get("/v1/transactions").send()).status(), 403);
    assert_eq!(tokens.token_requests(), 1);
    assert_eq!(client.stats().forced_renewals, 0);
}

#[test]
fn request_id_header_may_not_name_a_header_that_carries_a_secret() {
    let tokens = Server::tokens();
    for name in ["Authorization", "lw-subscription-key", "DPoP", "Cookie"] {
        let e = err(builder(&tokens).request_id_header(name).build());
        assert!(matches!(e, Error::Config(_)), "{name}: {e:?}");
        assert!(e.to_string().contains("request_id_header"), "{e}");
    }
}

#[test]
fn transact_without_a_subscription_key_sends_nothing() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    let client = Client::new(
        builder_for(&tokens, &api)
            .transact_base_url(format!("{}/transact-workflow", api.url()))
            .build()
            .unwrap(),
    );
    let e = err(client.transact().get("/v1/transactions").send());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("subscription_key"), "{e}");
    assert_eq!(api.request_count(), 0);
    assert_eq!(tokens.token_requests(), 0);
}

/// 64 threads, released at once, each sending one request through `handles` in turn; every
/// answer must be a 200.
fn sixty_four_at_once(handles: &[Client]) {
    let start = std::sync::Barrier::new(64);
    let statuses: Vec<u16> = thread::scope(|s| {
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let client = handles[i % handles.len()].clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    ok(client.get("/v1/offices").send()).status()
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.len(), 64);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn max_in_flight_holds_under_64_threads() {
    let client_of = |sandbox: &Sandbox, max_in_flight: u32| {
        let client = Client::new(
            sandbox
                .config_builder()
                .max_in_flight(max_in_flight)
                .deadline(secs(120))
                .build()
                .unwrap(),
        );
        ok(client.token());
        client
    };
    // Without a limit the sandbox sees more than 4 at once: the measure can see a breach.
    let sandbox = Sandbox::builder().api_latency(ms(100)).start().unwrap();
    let unlimited = client_of(&sandbox, 0);
    sixty_four_at_once(std::slice::from_ref(&unlimited));
    assert!(sandbox.api_in_flight_peak() > 4, "{sandbox:?}");
    assert_eq!(unlimited.stats().throttled, 0);

    // With one, never more than 4; tenants share the limit (half the threads use another
    // customer instance's handle).
    let sandbox = Sandbox::builder().api_latency(ms(100)).start().unwrap();
    let client = client_of(&sandbox, 4);
    let tenant = client.for_tenant("tenant-b").unwrap();
    ok(tenant.token());
    sixty_four_at_once(&[client.clone(), tenant]);
    assert!(sandbox.api_in_flight_peak() <= 4, "{sandbox:?}");
    assert_eq!(sandbox.api_requests(), 64);
    let stats = client.stats();
    assert_eq!(stats.api_requests, 64);
    assert!(stats.throttled > 0, "{stats:?}");
}

#[test]
fn max_requests_per_second_paces_starts() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    let client = Client::new(
        builder_for(&tokens, &api)
            .max_requests_per_second(20)
            .build()
            .unwrap(),
    );
    ok(client.token());
    let stop = Instant::now() + Duration::from_millis(3600);
    thread::scope(|s| {
        for _ in 0..8 {
            let client = client.clone();
            s.spawn(move || {
                while Instant::now() < stop {
                    ok(client.get("/v1/x").send());
                }
            });
        }
    });
    let arrivals: Vec<Instant> = api.requests().iter().map(|r| r.at).collect();
    let first = arrivals[0];
    let in_window = arrivals
        .iter()
        .filter(|&&t| t.duration_since(first) < secs(3))
        .count();
    assert!(
        (58..=62).contains(&in_window),
        "{in_window} requests in 3 s"
    );
    // No one second ever holds more than 21 starts (20 a second, plus the window's edge);
    // arrivals are seen after the server reads them, so one more for a scheduler's delay. An
    // unpaced client would send hundreds.
    for (i, &start) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|&&t| t.duration_since(start) < secs(1))
            .count();
        assert!(within <= 22, "{within} requests within a second");
    }
}

#[test]
fn a_caller_whose_deadline_passes_in_line_gets_deadline_and_sends_nothing() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    let client = Client::new(
        builder_for(&tokens, &api)
            .max_requests_per_second(1)
            .deadline(ms(500))
            .build()
            .unwrap(),
    );
    assert_eq!(ok(client.get("/v1/first").send()).status(), 200);
    // The next start is a second away: past this call's deadline.
    let e = err(client.get("/v1/waits").send());
    assert!(matches!(e, Error::Deadline(_)), "{e:?}");
    assert!(e.to_string().contains("max_requests_per_second"), "{e}");
    assert_eq!(lwolf_auth_ffi::lwolf_status::from(&e) as u32, 13);
    assert_eq!(api.requests_to("/backoffice/v1/waits").len(), 0);
    assert_eq!(client.stats().throttled, 1);
}

fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && parts[2].starts_with('4')
        && matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn every_call_carries_a_request_id_its_retries_reuse() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    api.push(Action::status(503));
    api.push(Action::status(503));
    let client = transact_client(&tokens, &api);
    let warnings = warnings_about("GET request", || {
        let resp = ok(client.get("/v1/x").send());
        assert_eq!(resp.status(), 200);
        let id = resp.request_id().expect("a request id").to_owned();
        assert!(is_uuid_v4(&id), "{id}");
        let sent: Vec<String> = api
            .requests()
            .iter()
            .map(|r| r.header("x-request-id").unwrap().to_owned())
            .collect();
        assert_eq!(sent, [id.clone(), id.clone(), id.clone()]);
        // A new call, a new id.
        let next = ok(client.get("/v1/x").send());
        assert_ne!(next.request_id().unwrap(), id);
    });
    // The retries' log records name the call's id.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let id = api.request(0).header("x-request-id").unwrap().to_owned();
    assert!(warnings.iter().all(|w| w.contains(&id)), "{warnings:?}");
}

#[test]
fn a_callers_own_request_id_is_kept_and_the_header_can_be_renamed_or_off() {
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    let client = transact_client(&tokens, &api);
    let resp = ok(client.get("/v1/x").header("X-Request-ID", "mine-1").send());
    assert_eq!(resp.request_id(), Some("mine-1"));
    assert_eq!(api.request(0).header("x-request-id"), Some("mine-1"));

    let renamed = Client::new(
        builder_for(&tokens, &api)
            .request_id_header("Correlation-Id")
            .build()
            .unwrap(),
    );
    let resp = ok(renamed.get("/v1/x").send());
    let id = resp.request_id().unwrap();
    assert_eq!(api.request(1).header("correlation-id"), Some(id));
    assert_eq!(api.request(1).header("x-request-id"), None);

    let off = Client::new(
        builder_for(&tokens, &api)
            .request_id_header("")
            .build()
            .unwrap(),
    );
    let resp = ok(off.get("/v1/x").send());
    assert_eq!(resp.request_id(), None);
    assert_eq!(api.request(2).header("x-request-id"), None);
}

#[test]
fn stats_count_the_whole_client() {
    let tokens = Server::tokens();
    tokens.push(Action::status(503));
    let api = Server::new(Action::json(200, "{}"));
    let client = transact_client(&tokens, &api);
    assert_eq!(client.stats(), lwolf_auth::Stats::default());
    ok(client.get("/v1/x").send());
    let tenant = client.for_tenant("other").unwrap();
    ok(tenant.get("/v1/x").send());
    let stats = tenant.stats();
    // One retry, then one token for each identity.
    assert_eq!(stats.token_requests, 3, "{stats:?}");
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.token_failures, 0);
    assert_eq!(stats.api_requests, 2);
    assert_eq!(stats, client.stats().with_expiry_of(&stats));
    let expires = tenant.cached_token().unwrap().expires_at();
    let expires_ms = expires
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(stats.token_expires_at_ms, expires_ms);

    // A failed fetch is counted.
    tokens.set_default(Action::json(401, r#"{"error":"access_denied"}"#));
    let third = client.for_tenant("third").unwrap();
    err(third.token());
    assert_eq!(client.stats().token_failures, 1);
    assert_eq!(third.stats().token_expires_at_ms, 0);
}

/// Another handle's stats differ only in the token's expiry.
trait WithExpiry {
    fn with_expiry_of(self, other: &lwolf_auth::Stats) -> lwolf_auth::Stats;
}

impl WithExpiry for lwolf_auth::Stats {
    fn with_expiry_of(mut self, other: &lwolf_auth::Stats) -> lwolf_auth::Stats {
        self.token_expires_at_ms = other.token_expires_at_ms;
        self
    }
}

#[test]
fn stats_count_tokens_taken_from_the_shared_cache() {
    let dir = lwolf_test_support::temp_dir::TempDir::new("stats-shared");
    let tokens = Server::tokens();
    let api = Server::new(Action::json(200, "{}"));
    let config = || {
        builder_for(&tokens, &api)
            .cache_dir(dir.path())
            .build()
            .unwrap()
    };
    ok(Client::new(config()).token());
    let second = Client::new(config());
    ok(second.token());
    assert_eq!(tokens.token_requests(), 1);
    let stats = second.stats();
    assert_eq!(stats.tokens_shared, 1);
    assert_eq!(stats.token_requests, 0);
}
