//! The red team's findings (issue "Red-team findings"), each proved closed through the public
//! surface: Rust, and the C ABI as a C program calls it. Those that need root or a real
//! `redis-server` are in `system-tests/tests/red_team.rs`, the fork findings in
//! `system-tests/tests/fork.rs` (C), and the Python and Go ones in their bindings' tests;
//! RELIABILITY.md's "Red team" section lists them all.

#![cfg(unix)]

use lwolf_test_support::c_calls;
use lwolf_test_support::common;
use lwolf_test_support::fleet_support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use fleet_support::{capture_logs, ScriptedRedis};
use lwolf_auth::{Client, Config, Error};

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on a thread of its own and hands back its result, or panics after `limit`:
/// a hang is a failure, never a stuck test.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

// ---------------------------------------------------------------------------------------------
// 9. A refresh_ratio below the jitter

#[test]
fn a_refresh_ratio_below_the_jitter_is_no_panic() {
    let server = Server::tokens();
    for ratio in [0.0001, 0.01, 0.049, 0.05, 0.051, 0.5, 0.9999] {
        let client = Client::new(builder(&server).refresh_ratio(ratio).build().unwrap());
        for _ in 0..20 {
            let token = ok(client.token());
            assert!(token.refresh_at() <= token.usable_until(), "ratio {ratio}");
            client.invalidate();
        }
    }
    // And through the C ABI, where a panic was LWOLF_ERR_INTERNAL.
    let url = server.token_url();
    let client = c_calls::client(&[
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("token_url", &url),
        ("refresh_ratio", "0.01"),
    ]);
    for _ in 0..20 {
        assert!(c_calls::token(client).is_ok());
        // SAFETY: a live client.
        unsafe { lwolf_auth_ffi::lwolf_client_invalidate(client) };
    }
    // SAFETY: freed once.
    unsafe { lwolf_auth_ffi::lwolf_client_free(client) };
}

// ---------------------------------------------------------------------------------------------
// 12. What messages may echo

#[test]
fn server_text_is_scrubbed_before_it_is_cut() {
    // The secret straddles the 200th character of the description.
    let description = format!("{}{SECRET}{}", "x".repeat(192), "y".repeat(40));
    let server = Server::new(Action::json(
        401,
        serde_json::json!({"error": "invalid_client", "error_description": description})
            .to_string(),
    ));
    let e = err(client(&server).token());
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(&SECRET[..6]),
        "part of the secret shows: {shown}"
    );
    assert!(shown.contains("invalid_client"), "{shown}");
}

#[test]
fn an_unknown_key_is_shown_only_when_it_looks_like_a_typo() {
    let pasted = "qwertzuiopasdfghjkl";
    let e = Config::builder().set(pasted, "x").unwrap_err();
    assert!(!e.to_string().contains(pasted), "{e}");
    let e = Config::builder().set("client_secert", "x").unwrap_err();
    assert!(e.to_string().contains("client_secert"), "{e}");
    assert!(e.to_string().contains("client_secret"), "a suggestion: {e}");
    // The same through the C ABI.
    let cfg = c_calls::config(&[]);
    let key = c_calls::c(pasted);
    // SAFETY: a live config and NUL-terminated strings.
    let status =
        unsafe { lwolf_auth_ffi::lwolf_config_set(cfg, key.as_ptr(), c_calls::c("x").as_ptr()) };
    assert_eq!(
        status,
        lwolf_auth_ffi::lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
    );
    assert!(!c_calls::last_error().contains(pasted));
    // SAFETY: freed once.
    unsafe { lwolf_auth_ffi::lwolf_config_free(cfg) };
}

// ---------------------------------------------------------------------------------------------
// 6. A secret given where a path belongs

#[test]
fn a_secret_given_as_a_path_is_never_printed() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n\
               -----END PRIVATE KEY-----\n";
    let long = "p".repeat(5000);
    let base = || Config::builder().client_id(CLIENT_ID).client_secret("x");
    let key_text = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw";
    // (key, builder, the value given, what of it must not show)
    let cases: Vec<(&str, lwolf_auth::ConfigBuilder, &str, &str)> = vec![
        (
            "client_secret_file",
            Config::builder()
                .client_id(CLIENT_ID)
                .client_secret_file(SECRET),
            SECRET,
            SECRET,
        ),
        (
            "subscription_key_file",
            base().subscription_key_file(SECRET),
            SECRET,
            SECRET,
        ),
        ("ca_file", base().ca_file(SECRET), SECRET, SECRET),
        (
            "private_key_file",
            base()
                .client_auth(lwolf_auth::ClientAuth::PrivateKeyJwt)
                .private_key_file(pem),
            pem,
            key_text,
        ),
        (
            "dpop_key_file",
            base().dpop(true).dpop_key_file(pem),
            pem,
            key_text,
        ),
        (
            "client_secret_file",
            Config::builder()
                .client_id(CLIENT_ID)
                .client_secret_file(&long),
            &long,
            &long,
        ),
    ];
    for (key, builder, given, needle) in cases {
        let e = builder.build().unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(needle), "{key}: the value shows in {shown}");
        assert!(
            shown.contains(key),
            "{key}: the message names the key: {shown}"
        );
        assert!(
            shown.contains(&format!("{} characters", given.chars().count())),
            "{key}: the message gives the length: {shown}"
        );
    }
    // A path that exists is still named: it is no secret.
    let dir = TempDir::new("rt-path");
    let e = Config::builder()
        .client_id(CLIENT_ID)
        .client_secret_file(dir.path())
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );

    // A cache_dir that is the secret is never logged either.
    capture_logs();
    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .cache_dir(format!("/proc/{SECRET}/cache"))
            .build()
            .unwrap(),
    );
    ok(client.token());
    assert!(
        !fleet_support::LOGS
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(SECRET)),
        "the secret was logged"
    );
    // Nor shown by the configuration's Debug.
    let shown = format!("{:?}", client.config());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("cache_dir"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// 8. Renewal budgets and the subscription key, per API origin

#[test]
fn a_403_of_one_api_does_not_hold_back_another_apis_renewal() {
    let tokens = Server::tokens();
    // The Back Office API: a 401 to the token it was first sent, 200 to any other.
    let back_office = Server::new(Action::dynamic(|req| {
        if req.header("authorization") == Some(&format!("Bearer {}", issued("t", 2))) {
            Action::status(401)
        } else {
            Action::status(200)
        }
    }));
    // Another API that answers 403 to everything (a permission it lacks).
    let other = Server::new(Action::status(403));
    let client = Client::new(
        builder_for(&tokens, &back_office)
            .subscription_key("sub-key-123")
            .build()
            .unwrap(),
    );
    let elsewhere = client.for_api(&other.url()).unwrap();
    let resp = ok(elsewhere.get("/x").send());
    assert_eq!(resp.status(), 403);
    // The 403 claimed the other API's renewal: token 2 is in service now.
    assert_eq!(tokens.token_requests(), 2);
    let resp = ok(client.get("/v1/transactions").send());
    assert_eq!(
        resp.status(),
        200,
        "the Back Office API's renewal was held back by another API's 403"
    );
    assert_eq!(tokens.token_requests(), 3);
    // The subscription key went to the vendor's API only.
    assert!(other
        .requests()
        .iter()
        .all(|r| r.header("lw-subscription-key").is_none()));
    assert!(back_office
        .requests()
        .iter()
        .all(|r| r.header("lw-subscription-key") == Some("sub-key-123")));
}

#[test]
fn reject_token_refuses_an_empty_or_foreign_token() {
    let server = Server::tokens();
    let client = client(&server);
    let token = ok(client.token());
    assert!(!client.reject_token(""), "an empty token");
    assert!(!client.reject_token("Bearer "), "an empty bearer token");
    assert!(
        !client.reject_token("Bearer someone-elses"),
        "a foreign token"
    );
    assert_eq!(server.token_requests(), 1);
    assert_eq!(ok(client.token()).secret(), token.secret());
    // Our own token still renews.
    assert!(client.reject_token(&format!("Bearer {}", token.secret())));
    assert_ne!(ok(client.token()).secret(), token.secret());
    // And the one before it (another caller renewed already): send again with the new one.
    assert!(client.reject_token(token.secret()));
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn auth_headers_refuse_a_url_the_token_must_not_go_to() {
    let server = Server::tokens();
    let client = client(&server);
    for url in [
        "http://api.example.com/x".to_owned(),
        "https://evil.example.com/x".to_owned(),
        "http://127.0.0.1:1/x".to_owned(),
    ] {
        let e = err(client.auth_headers("GET", &url));
        assert!(matches!(e, Error::InvalidArgument(_)), "{url}: {e:?}");
    }
    assert_eq!(server.token_requests(), 0, "nothing was fetched for them");
    ok(client.auth_headers("GET", &format!("{}/backoffice/v1/x", server.url())));
}

// ---------------------------------------------------------------------------------------------
// 3. A slow or hostile Redis

/// A Redis stand-in that answers every command one byte every `every`.
fn trickling_redis(every: Duration) -> ScriptedRedis {
    ScriptedRedis::start_raw(move |mut conn| {
        let mut buf = [0u8; 4096];
        if conn.read(&mut buf).unwrap_or(0) == 0 {
            return;
        }
        // A simple string that never ends.
        for _ in 0..60 {
            if conn.write_all(b"+").is_err() {
                return;
            }
            thread::sleep(every);
        }
    })
}

#[test]
fn a_trickling_redis_stalls_no_caller_past_its_bound() {
    let redis = trickling_redis(ms(400));
    let server = Server::tokens();
    let client = Client::new(
        builder(&server)
            .cache_url(redis.url())
            .timeout(secs(10))
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || client.token().map(|t| t.secret().to_owned()))
        })
        .collect();
    for caller in callers {
        ok(caller.join().unwrap());
    }
    // Each Redis exchange is bounded as a whole (1 s); the stand-in would hold a per-read
    // timeout for 24 s.
    let took = started.elapsed();
    assert!(
        took < secs(8),
        "token() took {took:?} behind a trickling Redis"
    );
}

#[test]
fn a_huge_redis_reply_is_not_read_whole() {
    // The most any one connection was sent before the client stopped reading.
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    let redis = ScriptedRedis::start_raw(move |mut conn| {
        let mut buf = [0u8; 4096];
        if conn.read(&mut buf).unwrap_or(0) == 0 {
            return;
        }
        // A bulk string of 512 MiB, sent as fast as the reader takes it.
        let _ = conn.write_all(b"$536870912\r\n");
        let chunk = vec![b'a'; 64 * 1024];
        let mut here = 0;
        for _ in 0..(536_870_912 / chunk.len()) {
            if conn.write_all(&chunk).is_err() {
                break;
            }
            here += chunk.len();
        }
        counted.fetch_max(here, Ordering::SeqCst);
    });
    let server = Server::tokens();
    let client = Client::new(builder(&server).cache_url(redis.url()).build().unwrap());
    ok(client.token());
    thread::sleep(ms(300));
    // What the client read is cut off at the largest entry (81 KiB); what the socket
    // buffers took on top is the kernel's, a few MiB at most.
    let read = sent.load(Ordering::SeqCst);
    assert!(
        read < 64 * 1024 * 1024,
        "{read} bytes of an oversized reply were taken before it was refused"
    );
}

#[test]
fn callers_behind_a_fetch_in_flight_are_bounded_by_their_deadline() {
    // Another process of the host holds the cache_dir lock through a slow fetch.
    let dir = TempDir::new("rt-deadline");
    let slow = Server::new(Action::token(&issued("slow", 1), 3600).after(secs(6)));
    let holder = Client::new(builder(&slow).cache_dir(dir.path()).build().unwrap());
    let holding = thread::spawn(move || holder.token().map(|_| ()));
    thread::sleep(ms(500));
    // This client waits on it; its callers' deadline is 1 s, its timeout_ms 20 s.
    let client = Client::new(
        builder(&slow)
            .cache_dir(dir.path())
            .timeout(secs(20))
            .deadline(ms(1000))
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || client.token().map(|_| ()))
        })
        .collect();
    for caller in callers {
        let outcome = caller.join().unwrap();
        let took = started.elapsed();
        assert!(
            took < secs(4),
            "a caller with deadline_ms 1000 waited {took:?} ({outcome:?})"
        );
    }
    let _ = holding.join();
}

// ---------------------------------------------------------------------------------------------
// 10. A compromised Redis that pins a rejected token

#[test]
fn a_fifo_named_like_the_cache_file_blocks_nobody() {
    let dir = TempDir::new("rt-fifo");
    let server = Server::tokens();
    let client = Client::new(builder(&server).cache_dir(dir.path()).build().unwrap());
    let file = client.cache_file().unwrap().to_owned();
    fs::create_dir_all(dir.path()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    mkfifo(&file);
    let lock = PathBuf::from(format!("{}", file.display()).replace(".token", ".lock"));
    mkfifo(&lock);
    let c = client.clone();
    let token = within(secs(10), "token() with a FIFO in the cache", move || {
        c.token().map(|t| t.secret().to_owned())
    });
    ok(token);
    // Never read, and replaced by the rename of a real cache file (the rename replaces the
    // name; it never writes into what was there).
    assert!(fs::symlink_metadata(&file).unwrap().is_file());
    assert!(fs::symlink_metadata(&lock)
        .unwrap()
        .file_type()
        .is_fifo_like());
    let c = client.clone();
    within(
        secs(10),
        "invalidate() with a FIFO in the cache",
        move || c.invalidate(),
    );
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn the_sweep_removes_only_the_librarys_own_names() {
    let dir = TempDir::new("rt-sweep");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let old = SystemTime::now() - secs(3600);
    let theirs = [
        "id_rsa.tmp",
        "notes.tmp",
        "known_hosts.swp.tmp",
        "x.json",
        "a.b.tmp",
    ];
    let ours = "0123456789abcdef0123456789abcdef.4242-0-deadbeef.tmp";
    for name in theirs.iter().chain([&ours]) {
        let path = dir.path().join(name);
        fs::write(&path, b"keep me").unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let server = Server::tokens();
    let client = Client::new(builder(&server).cache_dir(dir.path()).build().unwrap());
    ok(client.token());
    for name in theirs {
        assert!(dir.path().join(name).exists(), "the sweep removed {name}");
    }
    assert!(
        !dir.path().join(ours).exists(),
        "a dead writer's temp file stayed"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. localhost is loopback, whatever the resolver says

#[test]
fn the_subscription_key_goes_to_the_configured_transact_base_too() {
    let tokens = Server::tokens();
    let transact = Server::new(Action::status(200));
    let other = Server::new(Action::status(200));
    let client = Client::new(
        builder(&tokens)
            .subscription_key("sub-key-123")
            .transact_base_url(format!("{}/transact-workflow", transact.url()))
            .build()
            .unwrap(),
    );
    ok(client
        .for_api(&format!("{}/transact-workflow", transact.url()))
        .unwrap()
        .get("/v1/x")
        .send());
    ok(client.for_api(&other.url()).unwrap().get("/v1/x").send());
    assert_eq!(
        transact.requests()[0].header("lw-subscription-key"),
        Some("sub-key-123")
    );
    assert_eq!(other.requests()[0].header("lw-subscription-key"), None);
}
