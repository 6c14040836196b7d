//! The fleet cache (`cache_url`) against a real `redis-server` on loopback: processes of
//! several "hosts" (each its own `cache_dir`) share one token, Redis holds nothing readable,
//! the lock bounds the wait, and keys and credentials keep their tokens apart. The faults are
//! in `tests/fleet_faults.rs`.
//!
//! Needs `redis-server` (Debian's `redis-server`): without it the tests fail, saying so.
//! The process tests run the `lwolf` command-line tool as the fleet's processes.

#![cfg(unix)]

use lwolf_test_support::c_calls;
use lwolf_test_support::common;
use lwolf_test_support::ffi_support;
use lwolf_test_support::fleet_support;
use lwolf_test_support::redis_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{issue_tokens, Action, Server, TempDir, CLIENT_ID, SECRET};
use fleet_support::*;
use lwolf_auth::{Client, TokenSource};
use redis_support::Redis;

// ---------------------------------------------------------------------------------------------
// One token for the fleet

#[test]
fn thirty_cold_processes_on_three_hosts_make_one_token_request() {
    let redis = Redis::start();
    // Slow enough that all thirty are running before the first token arrives.
    let server = slow_tokens(Duration::from_millis(300));
    let tmp = TempDir::new("fleet30");
    let hosts: Vec<_> = (0..3).map(|i| tmp.join(&format!("host{i}"))).collect();
    let hosts: Vec<&Path> = hosts.iter().map(|p| p.as_path()).collect();

    let cold = run_fleet(&server, &redis.url(), &hosts, 10);
    assert_eq!(cold.len(), 30);
    assert_eq!(server.token_requests(), 1, "cold fleet: {cold:?}");
    assert!(cold.iter().all(|(f, _)| *f == cold[0].0), "{cold:?}");
    let from =
        |runs: &[(String, String)], source: &str| runs.iter().filter(|(_, s)| s == source).count();
    assert_eq!(from(&cold, "token endpoint"), 1, "{cold:?}");
    assert!(
        from(&cold, "cache_url") >= 2,
        "the other hosts' processes: {cold:?}"
    );

    // A warm fleet: new hosts read Redis; the old ones their own files. No token request.
    let fresh: Vec<_> = (3..6).map(|i| tmp.join(&format!("host{i}"))).collect();
    let fresh: Vec<&Path> = fresh.iter().map(|p| p.as_path()).collect();
    let warm = run_fleet(&server, &redis.url(), &fresh, 10);
    assert_eq!(server.token_requests(), 1, "warm fleet: {warm:?}");
    assert!(warm.iter().all(|(f, _)| *f == cold[0].0));
    assert_eq!(from(&warm, "token endpoint"), 0);
    assert!(
        from(&warm, "cache_url") >= 3,
        "each new host reads Redis once: {warm:?}"
    );
    let again = run_fleet(&server, &redis.url(), &hosts, 2);
    assert_eq!(from(&again, "cache_dir"), 6, "{again:?}");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn without_cache_url_each_host_fetches_its_own() {
    let server = slow_tokens(Duration::from_millis(300));
    let tmp = TempDir::new("fleet-no-url");
    let hosts: Vec<_> = (0..3).map(|i| tmp.join(&format!("host{i}"))).collect();
    let hosts: Vec<&Path> = hosts.iter().map(|p| p.as_path()).collect();
    let runs = run_fleet(&server, "", &hosts, 5);
    assert_eq!(runs.len(), 15);
    assert_eq!(server.token_requests(), 3, "one per host: {runs:?}");
}

#[test]
fn nothing_readable_is_stored_in_redis() {
    let redis = Redis::start();
    let server = Server::tokens();
    let client = Client::new(builder(&server, &redis.url()).build().unwrap());
    let token = client.token().unwrap();
    assert_eq!(token.source(), TokenSource::TokenEndpoint);

    let dump = redis.dump();
    assert_eq!(
        dump.len(),
        1,
        "only the entry, its lock freed: {:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let (key, value) = &dump[0];
    let entry = entry_of(&server, SECRET);
    assert_eq!(*key, format!("lwolf-auth:{}", entry.name));
    for (what, needle) in [
        ("token", token.secret()),
        ("secret", SECRET),
        ("client id", CLIENT_ID),
    ] {
        assert!(!key.contains(needle), "the key shows the {what}");
        assert!(
            !value.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the value shows the {what}"
        );
    }
    // The format is what the documentation says: it opens, with the credential only.
    let json = entry
        .open(value)
        .expect("the value does not open as documented");
    assert_eq!(json["access_token"], token.secret());
    assert!(entry_of(&server, "another secret").open(value).is_none());
    // And Redis lets it go when it is of no more use.
    let mut conn = redis.conn();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 3600 * 1000, "{ttl_ms}");

    // Another process (here: another client, so another memory) reads it.
    let other = Client::new(builder(&server, &redis.url()).build().unwrap());
    let shared = other.token().unwrap();
    assert_eq!(shared.secret(), token.secret());
    assert_eq!(shared.source(), TokenSource::CacheUrl);
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn a_rotated_secret_gets_its_own_token() {
    let redis = Redis::start();
    let server = Server::tokens();
    let old = Client::new(builder(&server, &redis.url()).build().unwrap());
    let old_token = old.token().unwrap();
    let rotated = Client::new(
        builder(&server, &redis.url())
            .client_secret("the-rotated-secret")
            .build()
            .unwrap(),
    );
    let new_token = rotated.token().unwrap();
    assert_ne!(
        new_token.secret(),
        old_token.secret(),
        "served the old secret's token"
    );
    assert_eq!(new_token.source(), TokenSource::TokenEndpoint);
    assert_eq!(server.token_requests(), 2);
    let names: Vec<_> = redis.dump().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&format!(
        "lwolf-auth:{}",
        entry_of(&server, "the-rotated-secret").name
    )));
}

#[test]
fn tenants_and_tokens_rejected_by_the_api_follow_the_fleet() {
    let redis = Redis::start();
    let server = Server::tokens();
    let a = Client::new(builder(&server, &redis.url()).build().unwrap());
    let first = a.token().unwrap();
    let tenant = a.for_tenant("customer-7").unwrap();
    assert_ne!(tenant.token().unwrap().secret(), first.secret());
    assert_eq!(redis.dump().len(), 2);
    // A token the API turns away is dropped for the whole fleet.
    assert!(a.reject_token(first.secret()));
    let b = Client::new(builder(&server, &redis.url()).build().unwrap());
    let renewed = b.token().unwrap();
    assert_ne!(
        renewed.secret(),
        first.secret(),
        "the fleet kept a rejected token"
    );
    assert_eq!(server.token_requests(), 3);
    // The 30 s bound on forced renewals is the fleet's: another process rejecting the
    // renewed token within it hears that the answer stands, and nothing is fetched.
    let d = Client::new(builder(&server, &redis.url()).build().unwrap());
    assert_eq!(d.token().unwrap().secret(), renewed.secret());
    assert!(
        !d.reject_token(renewed.secret()),
        "a second renewal within 30 s"
    );
    assert_eq!(d.token().unwrap().secret(), renewed.secret());
    assert_eq!(server.token_requests(), 3);
    // And invalidate() empties the entry.
    b.invalidate();
    let c = Client::new(builder(&server, &redis.url()).build().unwrap());
    assert_eq!(c.token().unwrap().source(), TokenSource::TokenEndpoint);
}

// ---------------------------------------------------------------------------------------------
// The lock

#[test]
fn a_killed_lock_holder_costs_the_others_at_most_the_lock_expiry() {
    let redis = Redis::start();
    // The first token request never gets an answer: its process holds the fleet's lock.
    let server = Server::new(issue_tokens("after-kill", 86_400));
    server.push(Action::Hang);
    // No retry: should the kill come late, its timed-out attempt is not followed by another.
    // The lock lasts as long as the holder's fetch may: its deadline_ms.
    let mut holder = fleet_process(&server, &redis.url(), None)
        .env("LWOLF_TIMEOUT_MS", "1000")
        .env("LWOLF_DEADLINE_MS", "1500")
        .env("LWOLF_MAX_RETRIES", "0")
        .spawn()
        .unwrap();
    server.wait_for_requests(1, Duration::from_secs(10));
    let entry = entry_of(&server, SECRET);
    let lock = format!("lwolf-auth:{}:lock", entry.name);
    assert!(
        redis.dump().iter().any(|(k, _)| *k == lock),
        "the holder took no lock"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // The next process waits for the lock's expiry (1.5 s), then fetches and shares.
    let next = fleet_process(&server, &redis.url(), None)
        .env("LWOLF_TIMEOUT_MS", "1000")
        .env("LWOLF_DEADLINE_MS", "4000")
        .spawn()
        .unwrap();
    let runs = outcomes(vec![next]);
    assert_eq!(runs[0].1, "token endpoint");
    assert_eq!(server.token_requests(), 2);
    assert!(
        !redis.dump().iter().any(|(k, _)| *k == lock),
        "the lock was not freed"
    );
    let later = outcomes(vec![fleet_process(&server, &redis.url(), None)
        .spawn()
        .unwrap()]);
    assert_eq!(later[0], (runs[0].0.clone(), "cache_url".to_owned()));
}

#[test]
fn a_stuck_lock_holder_delays_the_others_by_their_wait_only() {
    capture_logs();
    let redis = Redis::start();
    let server = Server::new(issue_tokens("stuck", 86_400));
    let entry = entry_of(&server, SECRET);
    // A holder that never lets go (and whose lock outlives the wait).
    let lock = format!("lwolf-auth:{}:lock", entry.name);
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query(&mut redis.conn())
        .unwrap();
    // It waits until its deadline less one attempt's time (1.4 s - 0.7 s), then fetches.
    let client = Client::new(
        builder(&server, &redis.url())
            .timeout(Duration::from_millis(700))
            .deadline(Duration::from_millis(1400))
            .build()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let token = client.token().unwrap();
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert_eq!(token.source(), TokenSource::TokenEndpoint);
    assert_eq!(server.token_requests(), 1);
    assert_eq!(logged("still holds the token lock", "").len(), 1);
    // Its token is shared all the same, and the other's lock left alone.
    let dump = redis.dump();
    assert!(dump.iter().any(|(k, v)| *k == lock && v == b"someone-else"));
    assert_eq!(dump.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// DPoP and the C ABI

#[test]
fn a_dpop_bound_token_is_shared_only_with_holders_of_its_key() {
    let redis = Redis::start();
    let sandbox = lwolf_sandbox::Sandbox::start().unwrap();
    let tmp = TempDir::new("fleet-dpop");
    let key_file = |name: &str| {
        openssl_key(
            &tmp.join(name),
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        )
    };
    let (k1, k2) = (key_file("k1.pem"), key_file("k2.pem"));
    let client = |key: Option<&Path>| {
        let mut b = sandbox.config_builder().cache_url(redis.url()).dpop(true);
        if let Some(key) = key {
            b = b.dpop_key_file(key);
        }
        Client::new(b.build().unwrap())
    };
    let a = client(Some(&k1)).token().unwrap();
    assert_eq!(a.token_type(), lwolf_auth::TokenType::Dpop);
    let b = client(Some(&k1)).token().unwrap();
    assert_eq!(
        (b.secret(), b.source()),
        (a.secret(), TokenSource::CacheUrl)
    );
    let c = client(Some(&k2)).token().unwrap();
    assert_ne!(c.secret(), a.secret(), "shared with another key's holder");
    // A key made in memory is this process's alone: its tokens are not written.
    let entries = redis.dump().len();
    let d = client(None).token().unwrap();
    assert_ne!(d.secret(), a.secret());
    assert_eq!(redis.dump().len(), entries);
    // k1 once, k2 once, the made key once.
    assert_eq!(sandbox.token_requests(), 3);
    // And the bound token works for its other holder.
    assert_eq!(
        client(Some(&k1))
            .get("/v1/offices")
            .send()
            .unwrap()
            .status(),
        200
    );
}

/// A new private key made by `openssl genpkey <args>` at `path`.
fn openssl_key(path: &Path, args: &[&str]) -> std::path::PathBuf {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(path)
        .output()
        .expect("openssl is needed to make keys");
    ffi_support::expect_success(&out, "openssl genpkey");
    path.to_owned()
}

#[test]
fn a_private_key_is_a_credential_of_its_own() {
    let redis = Redis::start();
    let server = Server::tokens();
    let tmp = TempDir::new("fleet-pkjwt");
    let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    let (k1, k2) = (
        openssl_key(&tmp.join("k1.pem"), &rsa),
        openssl_key(&tmp.join("k2.pem"), &rsa),
    );
    let client = |key: &Path| {
        let mut b = common::builder(&server).cache_url(redis.url());
        b.set("client_auth", "private_key_jwt").unwrap();
        Client::new(b.private_key_file(key).build().unwrap())
    };
    let a = client(&k1).token().unwrap();
    let b = client(&k1).token().unwrap();
    assert_eq!(
        (b.secret(), b.source()),
        (a.secret(), TokenSource::CacheUrl)
    );
    // Another key (a rotated one): its own entry, its own token.
    let c = client(&k2).token().unwrap();
    assert_ne!(c.secret(), a.secret());
    assert_eq!(server.token_requests(), 2);
    assert_eq!(redis.dump().len(), 2);
}

#[test]
fn the_c_abi_shares_through_cache_url() {
    let redis = Redis::start();
    let sandbox = lwolf_sandbox::Sandbox::start().unwrap();
    let (token_url, cache_url) = (sandbox.token_url(), redis.url());
    let settings = [
        ("client_id", sandbox.client_id()),
        ("client_secret", sandbox.client_secret()),
        ("token_url", token_url.as_str()),
        ("cache_url", cache_url.as_str()),
    ];
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            let client = c_calls::client(&settings);
            let token = c_calls::token(client).unwrap();
            // SAFETY: a live client, freed once.
            unsafe { lwolf_auth_ffi::lwolf_client_free(client) };
            token
        })
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(sandbox.token_requests(), 1);
    // A bad URL is refused when the client is made, as every setting is.
    let cfg = c_calls::config(&[
        ("client_id", "x"),
        ("client_secret", "y"),
        ("cache_url", "ftp://nowhere"),
    ]);
    let mut client = std::ptr::null_mut();
    // SAFETY: a live config and a valid out-pointer; the config is freed once.
    let status = unsafe { lwolf_auth_ffi::lwolf_client_new(cfg, &mut client) };
    unsafe { lwolf_auth_ffi::lwolf_config_free(cfg) };
    assert_eq!(status, lwolf_auth_ffi::lwolf_status::LWOLF_ERR_CONFIG);
    assert!(client.is_null());
    assert!(
        c_calls::last_error().contains("cache_url"),
        "{}",
        c_calls::last_error()
    );
}

// ---------------------------------------------------------------------------------------------
// The command-line tool, and the dependency tree

#[test]
fn lwolf_info_says_which_layer_served_the_token() {
    let redis = Redis::start();
    let server = Server::tokens();
    let tmp = TempDir::new("fleet-info");
    let info = |dir: Option<&Path>| {
        let out = lwolf(&["info"], &server, &redis.url(), dir)
            .output()
            .unwrap();
        let out = ffi_support::expect_success(&out, "lwolf info");
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
        };
        (field("served_by"), field("cache_url"))
    };
    let host = tmp.join("host");
    assert_eq!(info(None), ("token endpoint".into(), redis.url()));
    assert_eq!(info(Some(&host)).0, "cache_url");
    assert_eq!(info(Some(&host)).0, "cache_dir");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn no_async_runtime_is_in_the_tree() {
    let out = Command::new(ffi_support::cargo())
        .args(["tree", "--edges", "normal", "--prefix", "none", "--offline"])
        .current_dir(ffi_support::repo_root())
        .output()
        .unwrap();
    let tree = ffi_support::expect_success(&out, "cargo tree");
    assert!(tree.lines().any(|l| l.starts_with("redis v")), "{tree}");
    for runtime in [
        "tokio ",
        "async-std ",
        "smol ",
        "async-io ",
        "futures-executor ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(runtime)),
            "{runtime}in the tree:\n{tree}"
        );
    }
}
