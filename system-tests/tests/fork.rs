//! fork(): a client made before the fork keeps working in the parent and in the child,
//! through the C ABI (`examples-c/fork.c`) against servers of our own that record which
//! connection carried each request.
//!
//! - parent and child each send 20 GETs to their own paths at once, over http and over
//!   https: every answer is the caller's own, and no connection carries requests of both;
//! - a fork while another thread waits on the token request: the child's token() returns;
//! - 100 forks in a row while 4 threads keep using the client.

use lwolf_test_support::common;
use lwolf_test_support::ffi_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::*;

fn fork_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| ffi_support::make_examples(&["fork"], "c-fork").join("dynamic/fork"))
        .clone()
}

/// Tokens on `POST /oauth/token`; every other request answered with its own path.
fn echo_paths() -> Action {
    route(
        issue_tokens("f", 3600),
        Action::dynamic(|req| Action::body(200, req.path.clone())),
    )
}

fn fork_command(server: &Server, args: &[&str]) -> Command {
    let mut cmd = ffi_support::clean_command(fork_program());
    cmd.args(args)
        .env("LWOLF_TOKEN_URL", server.token_url())
        .env("LWOLF_API_BASE_URL", server.url())
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_TIMEOUT_MS", "5000");
    cmd
}

fn run_fork(cmd: &mut Command, what: &str) -> String {
    let out = ffi_support::run(cmd, secs(120));
    let stdout = ffi_support::expect_success(&out, what);
    assert_no_secret(&stdout);
    assert_no_secret(&String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The connections that carried the requests whose path starts with `prefix`, and how many
/// such requests there were.
fn connections_of(server: &Server, prefix: &str) -> (BTreeSet<usize>, usize) {
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .collect();
    (requests.iter().map(|r| r.conn).collect(), requests.len())
}

fn check_pairs(server: &Server, stdout: &str) {
    assert!(
        stdout.contains("parent: 20 of 20 answers were its own")
            && stdout.contains("child: 20 of 20 answers were its own"),
        "{stdout}"
    );
    let (parent, n_parent) = connections_of(server, "/parent/");
    let (child, n_child) = connections_of(server, "/child/");
    let (warm, _) = connections_of(server, "/warm");
    assert_eq!((n_parent, n_child), (20, 20));
    assert!(
        parent.is_disjoint(&child),
        "one connection carried requests of both processes: parent {parent:?}, child {child:?}"
    );
    // The child never touched the connection pooled before the fork.
    assert!(
        warm.is_disjoint(&child),
        "the child used the parent's pooled connection"
    );
}

#[test]
fn parent_and_child_get_their_own_answers_over_http() {
    let server = Server::new(echo_paths());
    let stdout = run_fork(
        &mut fork_command(&server, &["pairs", "20"]),
        "fork pairs (http)",
    );
    check_pairs(&server, &stdout);
}

#[test]
fn parent_and_child_get_their_own_answers_over_https() {
    let pki = TestPki::new();
    let server = Server::new_tls(echo_paths(), pki.server_config.clone());
    let dir = TempDir::new("fork-https");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}", server.port());
    let mut cmd = fork_command(&server, &["pairs", "20"]);
    cmd.env("LWOLF_TOKEN_URL", format!("{url}{TOKEN_PATH}"))
        .env("LWOLF_API_BASE_URL", &url)
        .env("LWOLF_CA_FILE", &ca);
    let stdout = run_fork(&mut cmd, "fork pairs (https)");
    check_pairs(&server, &stdout);
}

#[test]
fn a_child_forked_during_a_token_request_gets_its_own_token() {
    let server = Server::new(echo_paths());
    // The parent's request is held 2 s; the fork comes 300 ms into it.
    server.push(Action::token("TKN-parent", 3600).after(ms(2000)));
    let stdout = run_fork(&mut fork_command(&server, &["in-flight"]), "fork in-flight");
    assert!(stdout.contains("child: token() returned"), "{stdout}");
    assert!(stdout.contains("parent: token() returned"), "{stdout}");
    // The parent's request, and the child's own (it did not wait on the parent's).
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_hundred_forks_with_threads_running() {
    let server = Server::new(echo_paths());
    let stdout = run_fork(&mut fork_command(&server, &["loop", "100"]), "fork loop");
    assert!(stdout.contains("forks: 100, failures: 0"), "{stdout}");
    // Every child served the token cached before its fork: one token in all.
    assert_eq!(server.token_requests(), 1);
    let (child, n) = connections_of(&server, "/child");
    assert_eq!(n, 100);
    assert_eq!(child.len(), 100, "each child opens a connection of its own");
}

// ---------------------------------------------------------------------------------------------
// The red team's fork findings: nothing in a child waits on the parent's threads.

#[test]
fn a_child_replaces_the_log_callback_while_a_parent_thread_is_in_it() {
    let server = Server::new(echo_paths());
    let stdout = run_fork(&mut fork_command(&server, &["log-child"]), "fork log-child");
    assert!(
        stdout.contains("child: the log callback was replaced"),
        "{stdout}"
    );
}

#[test]
fn a_child_does_not_keep_the_cache_lock_of_its_parent() {
    let server = Server::new(echo_paths());
    // The parent's token request is held 1.5 s: it holds the cache directory's lock.
    server.push(Action::token("TKN-locked", 3600).after(ms(1500)));
    let dir = TempDir::new("fork-lock");
    let mut cmd = fork_command(&server, &["lock-child"]);
    cmd.env("LWOLF_CACHE_DIR", dir.path());
    let stdout = run_fork(&mut cmd, "fork lock-child");
    assert!(
        stdout.contains("after the parent's request: the lock is free"),
        "{stdout}"
    );
}

#[test]
fn the_children_of_a_fork_draw_their_own_refresh_jitter() {
    let server = Server::new(echo_paths());
    let stdout = run_fork(&mut fork_command(&server, &["jitter", "4"]), "fork jitter");
    let times: BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("refresh_at "))
        .collect();
    let all = stdout
        .lines()
        .filter(|l| l.starts_with("refresh_at "))
        .count();
    assert_eq!(all, 4, "{stdout}");
    // A refresh is placed up to 5% of the hour (180 s) early: four children that drew
    // their own jitter all land in one second once in ~10^6 runs.
    assert!(
        times.len() > 1,
        "every child drew the same jitter: {stdout}"
    );
}
