//! The red team's findings that need more than Rust to prove closed: root (another user's
//! files, a private mount namespace) or a real `redis-server`. The others are in
//! `lwolf-auth/tests/red_team.rs`. The fork findings are in
//! `tests/fork.rs` (C) and the Python and Go ones in their bindings' tests; RELIABILITY.md's
//! "Red team" section lists them all.
//!
//! Some tests need root (another user's files, a private mount namespace): they fail, saying
//! so, when run without it.

#![cfg(unix)]

use lwolf_test_support::common;
use lwolf_test_support::ffi_support;
use lwolf_test_support::fleet_support;
use lwolf_test_support::redis_support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;
use fleet_support::{capture_logs, logged, ScriptedRedis};
use lwolf_auth::Client;
use redis_support::Redis;

/// The uid of a user other than us that owns nothing of ours: `nobody`.
const OTHER_UID: u32 = 65534;

fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc_geteuid() };
    assert_eq!(
        euid, 0,
        "{what} needs root (to make files of another user, or a private mount namespace); \
         run the test suite as root, as .ci/run does"
    );
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
    #[link_name = "lchown"]
    fn libc_lchown(path: *const std::ffi::c_char, uid: u32, gid: u32) -> i32;
}

fn chown_no_follow(path: &Path, uid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; lchown changes the link itself, never its target.
    assert_eq!(unsafe { libc_lchown(c.as_ptr(), uid, uid) }, 0, "lchown");
}

// ---------------------------------------------------------------------------------------------
// 9. A refresh_ratio below the jitter

#[test]
fn a_redis_that_pins_a_rejected_token_is_overruled_locally() {
    // The sealed value of a token the API will reject, made with a real Redis.
    let real = Redis::start();
    let tokens = Server::tokens();
    let first = Client::new(
        fleet_support::builder(&tokens, &real.url())
            .build()
            .unwrap(),
    );
    let rejected = ok(first.token()).secret().to_owned();
    let (key, value) = real
        .dump()
        .into_iter()
        .find(|(k, _)| !k.ends_with(":lock") && !k.ends_with(":renewed"))
        .expect("the entry");
    drop(real);
    // A Redis that always holds that value and answers every renewal claim as taken.
    let redis = ScriptedRedis::start(move |args| match args[0].to_ascii_uppercase().as_slice() {
        b"GET" if args[1] == key.as_bytes() => ScriptedRedis::bulk(&value),
        b"GET" => b"$-1\r\n".to_vec(),
        b"SET"
            if args.iter().any(|a| a.eq_ignore_ascii_case(b"NX"))
                && args[1].ends_with(b":renewed") =>
        {
            b"$-1\r\n".to_vec()
        }
        b"SET" => b"+OK\r\n".to_vec(),
        b"EVAL" | b"DEL" => b":0\r\n".to_vec(),
        _ => b"+OK\r\n".to_vec(),
    });
    let api = Server::new(Action::dynamic(move |req| {
        if req.header("authorization") == Some(&format!("Bearer {rejected}")) {
            Action::status(401)
        } else {
            Action::status(200)
        }
    }));
    let before = tokens.token_requests();
    let client = Client::new(
        fleet_support::builder(&tokens, &redis.url())
            .api_base_url(format!("{}/backoffice", api.url()))
            .build()
            .unwrap(),
    );
    let resp = ok(client.get("/v1/x").send());
    assert_eq!(resp.status(), 200, "the pinned, rejected token was kept");
    assert_eq!(tokens.token_requests(), before + 1);
}

// ---------------------------------------------------------------------------------------------
// 11. The fleet lock outlives a slow fetch

#[test]
fn the_fleet_lock_lasts_as_long_as_a_slow_fetch() {
    let redis = Redis::start();
    // Each fetch: two 503s, then a token, 250 ms apiece: longer than timeout_ms (300 ms).
    let answered = Arc::new(AtomicUsize::new(0));
    let issued_tokens = Arc::new(AtomicUsize::new(0));
    let (a, i) = (Arc::clone(&answered), Arc::clone(&issued_tokens));
    let server = Server::new(Action::dynamic(move |_| {
        if a.fetch_add(1, Ordering::SeqCst) % 3 < 2 {
            Action::status(503).after(ms(250))
        } else {
            let n = i.fetch_add(1, Ordering::SeqCst) + 1;
            Action::token(&issued("slowfleet", n), 3600).after(ms(250))
        }
    }));
    let host = |_: usize| {
        Client::new(
            fleet_support::builder(&server, &redis.url())
                .timeout(ms(300))
                .max_retries(3)
                .retry_base(ms(1))
                .retry_max(ms(5))
                .build()
                .unwrap(),
        )
    };
    let first = host(0);
    let second = host(1);
    let a = thread::spawn(move || first.token().map(|t| t.secret().to_owned()));
    thread::sleep(ms(100));
    let b = thread::spawn(move || second.token().map(|t| t.secret().to_owned()));
    let (a, b) = (ok(a.join().unwrap()), ok(b.join().unwrap()));
    assert_eq!(a, b, "both hosts use the one token");
    assert_eq!(
        issued_tokens.load(Ordering::SeqCst),
        1,
        "single flight collapsed: each host fetched"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A cache_dir that another local user controls

fn cache_logs(needle: &str) -> Vec<String> {
    logged(needle, "")
}

#[test]
fn a_cache_dir_that_is_another_users_link_is_refused() {
    require_root("a link owned by another user");
    capture_logs();
    let tmp = TempDir::new("rt-sticky");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    // The victim's own private directory, and another user's link to it in "/tmp".
    let victim = TempDir::new("rt-victim");
    fs::set_permissions(victim.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let link = tmp.path().join("lwolf-cache");
    symlink(victim.path(), &link).unwrap();
    chown_no_follow(&link, OTHER_UID);
    let server = Server::tokens();
    let client = Client::new(builder(&server).cache_dir(&link).build().unwrap());
    ok(client.token());
    assert_eq!(
        fs::read_dir(victim.path()).unwrap().count(),
        0,
        "the cache wrote through another user's link"
    );
    assert!(
        !cache_logs(&link.display().to_string()).is_empty(),
        "the refusal was not logged"
    );
    // Our own link to our own directory is fine.
    let mine = tmp.path().join("mine");
    symlink(victim.path(), &mine).unwrap();
    let client = Client::new(builder(&server).cache_dir(&mine).build().unwrap());
    ok(client.token());
    assert!(
        fs::read_dir(victim.path()).unwrap().count() >= 1,
        "our own link to our own directory was refused"
    );
}

#[test]
fn a_cache_dir_below_another_users_directory_is_refused() {
    require_root("a directory owned by another user");
    let top = TempDir::new("rt-theirs");
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown_no_follow(top.path(), OTHER_UID);
    let dir = top.path().join("cache");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let server = Server::tokens();
    let client = Client::new(builder(&server).cache_dir(&dir).build().unwrap());
    ok(client.token());
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "another user could swap the directory away, yet it was used"
    );
    // Put it back to us, so that the TempDir can go.
    chown_no_follow(top.path(), 0);
}

#[test]
fn localhost_over_http_never_asks_the_resolver() {
    require_root("a private mount namespace");
    let server = Server::tokens();
    let dir = TempDir::new("rt-hosts");
    let hosts = dir.path().join("hosts");
    // A hosts file that sends localhost elsewhere (127.0.0.2: nothing listens there).
    fs::write(&hosts, "127.0.0.2 localhost\n").unwrap();
    let url = format!("http://localhost:{}{TOKEN_PATH}", server.port());
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} token",
        hosts.display(),
        fleet_support::lwolf_program().display()
    );
    let mut cmd = ffi_support::clean_command("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_TOKEN_URL", &url)
        .env("LWOLF_CACHE_DIR", "")
        .env("LWOLF_MAX_RETRIES", "0");
    let out = ffi_support::run(&mut cmd, secs(60));
    let stdout = ffi_support::expect_success(&out, "lwolf token with localhost remapped");
    assert!(stdout.starts_with(TOKEN_MARK), "{stdout}");
}
