//! `lwolf agent` (lwolf-cli), run as a separate process (at trace level, `-vv`) against the
//! in-process sandbox: the socket API with curl, the proxy with curl, Python and raw sockets, every
//! refusal, a peer of another user, the sink file, the signals, and 100 concurrent clients.
//! Every agent's stderr is checked for the secret, the subscription key, the proxy's key and
//! every token handed out.

#![cfg(unix)]

mod limits;
mod rules;
mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lwolf_sandbox::Sandbox;
use lwolf_test_support::ffi_support::clean_command;
use lwolf_test_support::temp_dir::TempDir;

use support::*;

#[test]
fn the_socket_api_answers_curl() {
    let sandbox = sandbox();
    let mut agent = Agent::start(&sandbox, &[]);
    assert_eq!(mode(&agent.socket), 0o600);
    assert_eq!(mode(&agent.key_file()), 0o600);
    // The key: 64 hex digits from a random source.
    let key = agent.key();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "not hex");

    // GET /v1/token
    let (status, body) = agent.socket_curl(&[], "/v1/token");
    assert_eq!(status, 200, "{body}");
    let token = json(&body);
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token["token_type"], "Bearer");
    let expires_in = token["expires_in"].as_u64().unwrap();
    assert!(expires_in > 86_000 && expires_in <= 86_400, "{expires_in}");
    assert!(token["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sandbox.token_requests(), 1);
    // The same token again, from the cache: no second request.
    let (_, again) = agent.socket_curl(&[], "/v1/token");
    assert_eq!(json(&again)["access_token"], access.as_str());
    assert_eq!(sandbox.token_requests(), 1);

    // ?tenant=: another customer instance's token.
    let (status, body) = agent.socket_curl(&[], "/v1/token?tenant=office-7");
    assert_eq!(status, 200, "{body}");
    let tenant_token = json(&body)["access_token"].as_str().unwrap().to_owned();
    assert_ne!(tenant_token, access);
    assert_eq!(sandbox.token_requests(), 2);
    let (status, body) = agent.socket_curl(&[], "/v1/token?tenant=bad%20id");
    assert_eq!(status, 400, "{body}");

    // GET /v1/auth-headers: for the API, and refused for another origin.
    let api_url = format!("{}/v1/offices", sandbox.api_base_url());
    let (status, body) = agent.auth_headers("GET", &api_url);
    assert_eq!(status, 200, "{body}");
    let headers = json(&body);
    assert_eq!(
        headers["Authorization"],
        format!("Bearer {access}").as_str()
    );
    assert!(
        headers.get("DPoP").is_none(),
        "no DPoP proof without dpop: {body}"
    );
    let (status, body) = agent.auth_headers("GET", "https://evil.example/v1/offices");
    assert_eq!(status, 403, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("not sent there"),
        "{body}"
    );
    assert!(!body.contains(&access));
    let (status, _) = agent.socket_curl(&[], "/v1/auth-headers?method=GET");
    assert_eq!(status, 400);
    let (status, _) = agent.auth_headers("G T", &api_url);
    assert_eq!(status, 400);

    // POST /v1/reject: a token this agent handed out is renewed; a stranger's is not.
    let (status, body) = agent.socket_curl(&["--data-binary", "not-a-token-of-ours"], "/v1/reject");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["send_again"], false);
    assert_eq!(sandbox.token_requests(), 2);
    let (status, body) = agent.socket_curl(&["--data-binary", &access], "/v1/reject");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["send_again"], true);
    let (_, body) = agent.socket_curl(&[], "/v1/token");
    let renewed = json(&body)["access_token"].as_str().unwrap().to_owned();
    assert_ne!(renewed, access);
    assert_eq!(sandbox.token_requests(), 3);
    // A second rejection within 30 s is refused: the renewals are bounded.
    let (_, body) = agent.socket_curl(&["--data-binary", &renewed], "/v1/reject");
    assert_eq!(json(&body)["send_again"], false);
    assert_eq!(sandbox.token_requests(), 3);

    // GET /v1/health and /metrics.
    let (status, body) = agent.socket_curl(&[], "/v1/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "ok");
    assert_eq!(json(&body)["token"], "cached");
    let (status, metrics) = agent.socket_curl(&[], "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE lwolf_token_requests_total counter\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nlwolf_token_requests_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lwolf_agent_requests_total{listener=\"socket\"}"),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("lwolf_"), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(!metrics.contains(&renewed));

    // Unknown endpoints and wrong methods.
    let (status, body) = agent.socket_curl(&[], "/v1/secret");
    assert_eq!(status, 404, "{body}");
    let (status, _) = agent.socket_curl(&["-X", "DELETE"], "/v1/token");
    assert_eq!(status, 405);
    let (status, _) = agent.socket_curl(&[], "/v1/reject");
    assert_eq!(status, 405);
    agent.check_stderr();
}

#[test]
fn socket_group_makes_the_socket_0660_for_that_group() {
    let sandbox = sandbox();
    // A group that exists everywhere this runs; its members get no token without --allow.
    let group = ["nogroup", "daemon", "bin"]
        .into_iter()
        .find(|g| {
            fs::read_to_string("/etc/group")
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with(&format!("{g}:")))
        })
        .expect("a group to give the socket to");
    let gid: u32 = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{group}:")))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|g| g.parse().ok())
        .unwrap();
    let mut agent = Agent::start(&sandbox, &["--socket-group", group]);
    assert_eq!(mode(&agent.socket), 0o660);
    assert_eq!(fs::metadata(&agent.socket).unwrap().gid(), gid);
    let (status, _) = agent.socket_curl(&[], "/v1/health");
    assert_eq!(status, 200);
    agent.check_stderr();
}

/// A throwaway user of this host, removed on drop.
struct ThrowawayUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl ThrowawayUser {
    fn new() -> ThrowawayUser {
        assert_eq!(
            rustix::process::geteuid().as_raw(),
            0,
            "this test makes a second user (useradd) to connect as: it must run as root"
        );
        let name = format!("lwagt{}", std::process::id() % 100_000);
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args([
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .output()
            .expect("useradd");
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        ThrowawayUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }

    /// curl over `socket` as this user: (HTTP status, body, curl's exit code).
    fn curl(&self, socket: &Path, path: &str) -> (u16, String, i32) {
        self.curl_in_group(self.gid, socket, path)
    }

    /// As `curl`, with `gid` as the primary group.
    fn curl_in_group(&self, gid: u32, socket: &Path, path: &str) -> (u16, String, i32) {
        let out: Output = Command::new("setpriv")
            .args([
                &format!("--reuid={}", self.uid),
                &format!("--regid={gid}"),
                "--clear-groups",
                "curl",
                "-s",
                "--max-time",
                "30",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
                socket.to_str().unwrap(),
                &format!("http://localhost{path}"),
            ])
            .output()
            .expect("setpriv (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.trim().parse().unwrap_or(0),
            body.to_owned(),
            out.status.code().unwrap_or(-1),
        )
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

#[test]
fn a_peer_of_another_user_is_refused_before_any_token_is_read() {
    let user = ThrowawayUser::new();
    let sandbox = sandbox();
    // The socket's group is the other user's, so the file lets it connect: the refusal is the
    // agent's, by SO_PEERCRED.
    let mut agent = Agent::start(&sandbox, &["--socket-group", &user.name]);
    fs::set_permissions(agent.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (status, body, _) = user.curl(&agent.socket, "/v1/token");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not use the agent"), "{body}");
    assert_eq!(
        sandbox.token_requests(),
        0,
        "a token was fetched for a refused peer"
    );
    let (status, _, _) = user.curl(&agent.socket, "/metrics");
    assert_eq!(status, 403);
    // The agent's own user is still served.
    let (status, _) = agent.socket_curl(&[], "/v1/token");
    assert_eq!(status, 200);
    let refused = agent.socket_curl(&[], "/metrics").1;
    assert!(
        refused.contains("lwolf_agent_refused_total{reason=\"peer\"} 2"),
        "{refused}"
    );
    agent.check_stderr();
    drop(agent);

    // Named with --allow, the same user is served.
    let mut allowed = Agent::start(
        &sandbox,
        &["--socket-group", &user.name, "--allow", &user.name],
    );
    fs::set_permissions(allowed.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (status, body, _) = user.curl(&allowed.socket, "/v1/token");
    assert_eq!(status, 200, "{body}");
    allowed.remember_tokens(&body);
    allowed.check_stderr();
    drop(allowed);

    // --allow of a group: a peer whose group it is, is served; the user, in its own group,
    // is not. A uid given as a number is a user.
    let group = format!("{}g", user.name);
    let _ = Command::new("groupdel").arg(&group).output();
    let made = Command::new("groupadd")
        .arg(&group)
        .output()
        .expect("groupadd");
    assert!(
        made.status.success(),
        "groupadd: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let gid: u32 = {
        let out = Command::new("getent")
            .args(["group", &group])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let mut by_group = Agent::start(&sandbox, &["--socket-group", &group, "--allow", &group]);
    fs::set_permissions(by_group.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (status, body, _) = user.curl_in_group(gid, &by_group.socket, "/v1/token");
    assert_eq!(status, 200, "{body}");
    by_group.remember_tokens(&body);
    // Its own group is not the one allowed (and the socket's group lets it connect).
    fs::set_permissions(&by_group.socket, fs::Permissions::from_mode(0o666)).unwrap();
    let (status, body, _) = user.curl(&by_group.socket, "/v1/token");
    assert_eq!(status, 403, "{body}");
    by_group.check_stderr();
    drop(by_group);
    let _ = Command::new("groupdel").arg(&group).output();
    let uid = user.uid.to_string();
    let mut by_uid = Agent::start(&sandbox, &["--socket-group", &user.name, "--allow", &uid]);
    fs::set_permissions(by_uid.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (status, body, _) = user.curl(&by_uid.socket, "/v1/token");
    assert_eq!(status, 200, "{body}");
    by_uid.remember_tokens(&body);
    by_uid.check_stderr();
    drop(by_uid);

    // Without --socket-group the socket is 0600: the other user cannot even connect.
    let closed = Agent::start(&sandbox, &[]);
    fs::set_permissions(closed.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (status, _, code) = user.curl(&closed.socket, "/v1/token");
    assert_eq!(
        (status, code),
        (0, 7),
        "connected to a 0600 socket of another user"
    );
}

#[test]
fn the_proxy_adds_the_credentials_and_streams_the_answer() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &[]);
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let proxy = agent.proxy();

    // The Back Office API, with a caller's own Authorization and subscription key dropped
    // (the library would refuse the first; the sandbox would refuse a wrong second).
    let (status, body) = curl(&[
        "-H",
        &key,
        "-H",
        "Authorization: Bearer callers-own",
        "-H",
        "lw-subscription-key: callers-own",
        &format!("{proxy}/backoffice/v1/offices"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["data"].as_array().unwrap().len() >= 2, "{body}");

    // The Transact API: the subscription key is the agent's to add.
    let (status, body) = curl(&[
        "-H",
        &key,
        &format!("{proxy}/transact-workflow/v1/transactions"),
    ]);
    assert_eq!(status, 200, "{body}");

    // A large document, streamed through whole.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "-H", &key, "-o", "-"])
        .arg(format!(
            "{proxy}/transact-workflow/v1/documents/d1?size=5000000"
        ))
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 5_000_000);
    assert!(out.stdout.starts_with(b"%PDF"));

    // A POST with a body, and the caller's request id kept.
    let (status, body) = curl(&[
        "-H",
        &key,
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-Request-ID: caller-id-42",
        "-D",
        "-",
        "--data",
        r#"{"name":"From the proxy"}"#,
        &format!("{proxy}/backoffice/v1/transactions"),
    ]);
    assert_eq!(status, 201, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("x-request-id: caller-id-42"),
        "{body}"
    );
    assert!(body.contains("From the proxy"), "{body}");

    // A new request id when the caller gives none; HEAD answers without a body.
    let (status, head) = curl(&["-H", &key, "-I", &format!("{proxy}/backoffice/v1/offices")]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-request-id: "),
        "{head}"
    );

    // The API's own refusal comes through as it is (an unknown record).
    let (status, _) = curl(&[
        "-H",
        &key,
        &format!("{proxy}/backoffice/v1/transactions/nope"),
    ]);
    assert_eq!(status, 404);
    assert_eq!(sandbox.token_requests(), 1);
    agent.check_traced();
    agent.check_stderr();
}

/// A Python program through the proxy: `requests` if target/venv has it, else the standard
/// library's urllib (which any python3 has).
#[test]
fn python_through_the_proxy() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &[]);
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python3");
    let has_requests = venv.exists()
        && Command::new(&venv)
            .args(["-c", "import requests"])
            .status()
            .is_ok_and(|s| s.success());
    let (python, program) = if has_requests {
        (
            venv,
            r#"
import os, requests
base, key = os.environ["PROXY"], os.environ["KEY"]
s = requests.Session()
s.headers["Lwolf-Agent-Key"] = key
for _ in range(5):
    r = s.get(base + "/backoffice/v1/offices", params={"$top": "1"})
    assert r.status_code == 200, r.status_code
    assert len(r.json()["data"]) == 1, r.text
r = s.post(base + "/backoffice/v1/transactions", json={"name": "py"})
assert r.status_code == 201, r.status_code
assert r.json()["name"] == "py"
r = requests.get(base + "/backoffice/v1/offices")
assert r.status_code == 403, r.status_code
print("requests ok")
"#,
        )
    } else {
        (
            PathBuf::from("python3"),
            r#"
import json, os, urllib.request, urllib.error
base, key = os.environ["PROXY"], os.environ["KEY"]
for _ in range(5):
    req = urllib.request.Request(base + "/backoffice/v1/offices?%24top=1", headers={"Lwolf-Agent-Key": key})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
        assert len(json.load(r)["data"]) == 1
req = urllib.request.Request(base + "/backoffice/v1/transactions", data=b'{"name": "py"}',
    headers={"Lwolf-Agent-Key": key, "Content-Type": "application/json"})
with urllib.request.urlopen(req) as r:
    assert r.status == 201 and json.load(r)["name"] == "py"
try:
    urllib.request.urlopen(base + "/backoffice/v1/offices")
    raise SystemExit("no refusal")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
print("urllib ok")
"#,
        )
    };
    let out = Command::new(&python)
        .args(["-c", program])
        .env("PROXY", agent.proxy())
        .env("KEY", agent.key())
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(if has_requests {
        "requests ok"
    } else {
        "urllib ok"
    }));
    assert_eq!(sandbox.token_requests(), 1);
    agent.check_stderr();
}

#[test]
fn the_proxy_refuses_what_is_not_for_it_and_keeps_serving() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &["--max-body-bytes", "1000"]);
    let key = agent.key();
    let proxy = agent.proxy();
    let with_key = format!("Lwolf-Agent-Key: {key}");
    let offices = format!("{proxy}/backoffice/v1/offices");

    // No key, a wrong key, a key of the right length that differs in its last character.
    assert_eq!(curl(&[&offices]).0, 403);
    assert_eq!(curl(&["-H", "Lwolf-Agent-Key: nope", &offices]).0, 403);
    let mut near = key.clone();
    let last = if near.ends_with('0') { "1" } else { "0" };
    near.replace_range(63.., last);
    assert_eq!(
        curl(&["-H", &format!("Lwolf-Agent-Key: {near}"), &offices]).0,
        403
    );
    // Two keys, one of them right: refused.
    let (status, _, _) = raw(
        &proxy,
        format!(
            "GET /backoffice/v1/offices HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: x\r\n\
             Lwolf-Agent-Key: {key}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 403);

    // Another path, a path that climbs out of the API, and the socket's endpoints.
    assert_eq!(
        curl(&["-H", &with_key, &format!("{proxy}/oauth/token")]).0,
        404
    );
    assert_eq!(
        curl(&["-H", &with_key, &format!("{proxy}/v1/token")]).0,
        404
    );
    assert_eq!(
        curl(&["-H", &with_key, &format!("{proxy}/backofficeX/v1")]).0,
        404
    );
    let (status, _, _) = raw(
        &proxy,
        format!(
            "GET /backoffice/../oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Lwolf-Agent-Key: {key}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        &proxy,
        format!(
            "GET /backoffice/%2e%2e/oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Lwolf-Agent-Key: {key}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 400);
    // Whatever a server could read as another path, a fragment among them: the library drops
    // `#...`, so a `..` before it would climb out of the API's base upstream.
    for target in [
        "/backoffice/v1/offices/..#x",
        "/backoffice/v1/#/../../oauth/token",
        "/backoffice/v1/offices?$top=1#x",
        "/backoffice/v1;x/offices",
        "/backoffice/v1%2foffices",
        "/backoffice/v1\\..\\offices",
        "/backoffice/v1/%25",
    ] {
        let (status, _, _) = raw(
            &proxy,
            format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Lwolf-Agent-Key: {key}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(status, 400, "{target}");
    }

    // Absolute-form targets (a forward proxy's), and CONNECT.
    let (status, body) = curl(&[
        "-H",
        &with_key,
        "-x",
        &proxy,
        "http://example.com/backoffice/v1/offices",
    ]);
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = raw(
        &proxy,
        format!("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nLwolf-Agent-Key: {key}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status, 405);

    // A Host that is not loopback: a DNS rebinding page's.
    assert_eq!(
        curl(&["-H", &with_key, "-H", "Host: evil.example", &offices]).0,
        403
    );
    let (status, _, _) = raw(
        &proxy,
        format!("GET /backoffice/v1/offices HTTP/1.1\r\nLwolf-Agent-Key: {key}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 403, "a request without a Host is refused");

    // Header injection: a bare CR in a value, a NUL, a name with a space.
    for bad in ["X-A: a\rInjected: 1", "X-A: a\0b", "Bad Name: x"] {
        let (status, _, _) = raw(
            &proxy,
            format!(
                "GET /backoffice/v1/offices HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
                 {bad}\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(status, 400, "{bad:?}");
    }

    // A body over --max-body-bytes, a chunked body, conflicting lengths.
    let big = "x".repeat(2000);
    let (status, _) = curl(&[
        "-H",
        &with_key,
        "--data",
        &big,
        &format!("{proxy}/backoffice/v1/transactions"),
    ]);
    assert_eq!(status, 413);
    // Chunked: over the limit in its second chunk; with a Content-Length too (smuggling);
    // another coding.
    let (status, _, _) = raw(
        &proxy,
        format!(
            "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
             Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n7d0\r\n{big}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 413);
    let (status, _, _) = raw(
        &proxy,
        format!(
            "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
             Transfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        &proxy,
        format!(
            "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
             Transfer-Encoding: gzip\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 501);
    let (status, _, _) = raw(
        &proxy,
        format!(
            "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
             Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"
        )
        .as_bytes(),
    );
    assert_eq!(status, 400);

    // A caller that leaves mid-body: nothing is sent, no token is fetched.
    {
        let mut stream = TcpStream::connect(proxy.trim_start_matches("http://")).unwrap();
        stream
            .write_all(
                format!(
                    "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                     Lwolf-Agent-Key: {key}\r\nContent-Length: 900\r\n\r\n{{\"name\":"
                )
                .as_bytes(),
            )
            .unwrap();
    }
    // A head that never ends is cut off at its size limit.
    let (status, _, _) = raw(
        &proxy,
        format!(
            "GET /backoffice/v1/offices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: {}\r\n",
            "a".repeat(40_000)
        )
        .as_bytes(),
    );
    assert_eq!(status, 431);

    // None of this cost a token or reached the API.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(sandbox.token_requests(), 0);
    assert_eq!(sandbox.api_requests(), 0);

    // And the agent still serves.
    let (status, body) = curl(&["-H", &with_key, &offices]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[
        "-H",
        &with_key,
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"name":"small"}"#,
        &format!("{proxy}/backoffice/v1/transactions"),
    ]);
    assert_eq!(status, 201, "{body}");
    // A chunked body is taken too (decoded, within the limit).
    let (status, _, body) = raw(
        &proxy,
        format!(
            "POST /backoffice/v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             5\r\n{{\"nam\r\n11\r\ne\":\"chunked one\"}}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("chunked one"));
    assert_eq!(sandbox.token_requests(), 1);
    // Each refusal is said at -v, a bad head and a body too large among them.
    let said = agent.stderr();
    for refusal in ["refused: 431", "refused: 413"] {
        assert!(said.contains(refusal), "{refusal} not said:\n{said}");
    }
    agent.check_stderr();
}

#[test]
fn an_answer_over_max_response_bytes_is_refused_before_it_is_relayed() {
    let sandbox = sandbox();
    let agent = Agent::start_with(&sandbox, &[], &[("LWOLF_MAX_RESPONSE_BYTES", "100000")]);
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let document = |size: usize| {
        curl(&[
            "-H",
            &key,
            &format!(
                "{}/transact-workflow/v1/documents/d1?size={size}",
                agent.proxy()
            ),
        ])
    };
    let (status, body) = document(200_000);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("max_response_bytes"), "{body}");
    // Within the limit, and the agent serves on.
    let (status, body) = document(90_000);
    assert_eq!(status, 200);
    assert_eq!(body.len(), 90_000);
    agent.check_stderr();
}

#[test]
fn the_sink_file_is_written_atomically_at_start_and_on_each_new_token() {
    let sandbox = sandbox();
    let dir = TempDir::new("agent-sink");
    let sink = dir.join("token.json");
    let raw_sink = dir.join("token.raw");
    let socket = dir.join("agent.sock");
    let cmd = agent_command(
        &sandbox,
        &dir,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--sink",
            sink.to_str().unwrap(),
        ],
    );
    let mut agent = Agent::spawn(cmd, TempDir::new("agent-sink-home"), socket);
    let wait_for = |path: &Path, differs_from: Option<&str>| -> String {
        let started = Instant::now();
        loop {
            if let Ok(text) = fs::read_to_string(path) {
                if !text.is_empty() && Some(text.as_str()) != differs_from {
                    return text;
                }
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{} was not (re)written",
                path.display()
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    // At start, with no caller asking.
    let first = wait_for(&sink, None);
    assert_eq!(mode(&sink), 0o600);
    let first_json = json(&first);
    let token = first_json["access_token"].as_str().unwrap().to_owned();
    agent.secrets.push(token.clone());
    assert_eq!(first_json["token_type"], "Bearer");
    assert!(first_json["expires_in"].as_u64().unwrap() > 0);
    let (_, body) = agent.socket_curl(&[], "/v1/token");
    assert_eq!(json(&body)["access_token"], token.as_str());
    let inode = fs::metadata(&sink).unwrap().ino();
    // Names someone else could guess and take first in a shared directory: the temporary
    // file this agent's pid would have, and a few more.
    let taken: Vec<PathBuf> = [
        ".token.json.{pid}.tmp",
        ".token.json.{pid}.new",
        ".token.json.tmp",
    ]
    .iter()
    .map(|name| dir.join(&name.replace("{pid}", &agent.pid())))
    .collect();
    for name in &taken {
        fs::create_dir(name).unwrap();
    }

    // A new token (the old one rejected): the file is replaced, not rewritten in place.
    sandbox.expire_tokens();
    let (_, body) = agent.socket_curl(&["--data-binary", &token], "/v1/reject");
    assert_eq!(json(&body)["send_again"], true);
    let second = wait_for(&sink, Some(&first));
    let renewed = json(&second)["access_token"].as_str().unwrap().to_owned();
    agent.secrets.push(renewed.clone());
    assert_ne!(renewed, token);
    assert_ne!(
        fs::metadata(&sink).unwrap().ino(),
        inode,
        "written in place"
    );
    assert_eq!(mode(&sink), 0o600);
    for name in &taken {
        fs::remove_dir(name).unwrap();
    }
    // Nothing left beside it but the file, the socket and the cache.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| ["token.json", "agent.sock", "cache"].contains(&n.as_str())),
        "{names:?}"
    );
    agent.check_stderr();
    drop(agent);

    // --sink-format raw: the bare token, the one the cache shares.
    let cmd = agent_command(
        &sandbox,
        &dir,
        &["--sink", raw_sink.to_str().unwrap(), "--sink-format", "raw"],
    );
    let agent = Agent::spawn(cmd, TempDir::new("agent-sink-home2"), dir.join("none"));
    let bare = wait_for(&raw_sink, None);
    assert_eq!(bare, renewed);
    assert_eq!(mode(&raw_sink), 0o600);
    agent.check_stderr();
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let sandbox = sandbox_with(Sandbox::builder().api_latency(Duration::from_millis(1500)));
    // As systemd's Type=notify: READY=1 once serving, STOPPING=1 on the way out.
    let dir = TempDir::new("agent-term");
    let notify_path = dir.join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut agent = Agent::start_in(&sandbox, dir, &[], |cmd| {
        cmd.env("NOTIFY_SOCKET", notify_path);
    });
    let mut said = [0u8; 64];
    let n = notify.recv(&mut said).unwrap();
    assert_eq!(&said[..n], b"READY=1");
    let key = agent.key();
    let proxy = agent.proxy();
    let in_flight = {
        let (key, proxy) = (key.clone(), proxy.clone());
        thread::spawn(move || {
            curl(&[
                "-H",
                &format!("Lwolf-Agent-Key: {key}"),
                &format!("{proxy}/backoffice/v1/offices"),
            ])
        })
    };
    // Once the request is with the API, TERM.
    let started = Instant::now();
    while sandbox.api_requests() == 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "the request never reached the API"
        );
        thread::sleep(Duration::from_millis(10));
    }
    agent.signal("TERM");
    let n = notify.recv(&mut said).unwrap();
    assert_eq!(&said[..n], b"STOPPING=1");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the request in flight was cut off: {body}");
    // The bound is the agent's 10 s grace; this only waits for it, with room.
    let code = agent.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", agent.stderr());
    assert!(!agent.socket.exists(), "the socket file was left behind");
    // Nothing listens any more.
    assert_eq!(
        curl(&[
            "-H",
            &format!("Lwolf-Agent-Key: {key}"),
            &format!("{proxy}/backoffice/v1/offices")
        ])
        .0,
        0
    );
    assert!(agent.stderr().contains("stopped"), "{}", agent.stderr());
    agent.check_stderr();
}

#[test]
fn sighup_reads_the_secret_file_again() {
    let sandbox = sandbox();
    let dir = TempDir::new("agent-hup");
    let secret_file = dir.join("secret");
    fs::write(&secret_file, "a-wrong-secret-NOT-SHOWN").unwrap();
    let mut agent = Agent::start_in(&sandbox, dir, &["--no-cache"], |cmd| {
        cmd.env_remove("LWOLF_CLIENT_SECRET")
            .env("LWOLF_CLIENT_SECRET_FILE", &secret_file);
    });
    agent.secrets.push("a-wrong-secret-NOT-SHOWN".into());
    let (status, body) = agent.socket_curl(&[], "/v1/token");
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        json(&body)["status"],
        "LWOLF_ERR_INVALID_CREDENTIALS",
        "{body}"
    );

    fs::write(&secret_file, SECRET).unwrap();
    agent.signal("HUP");
    until_ok("a token after SIGHUP", || {
        agent.socket_curl(&[], "/v1/token")
    });
    assert!(agent.stderr().contains("SIGHUP"), "{}", agent.stderr());
    agent.check_stderr();
}

/// SIGHUP reads the subscription key's file again too: the proxy's Transact calls, refused
/// with the old key, go through with the new one.
#[test]
fn sighup_reads_the_subscription_key_file_again() {
    let sandbox = sandbox();
    let dir = TempDir::new("agent-hup-key");
    let key_file = dir.join("subscription-key");
    fs::write(&key_file, "a-wrong-subscription-key\n").unwrap();
    let mut agent = Agent::start_in(&sandbox, dir, &[], |cmd| {
        cmd.env_remove("LWOLF_SUBSCRIPTION_KEY")
            .env("LWOLF_SUBSCRIPTION_KEY_FILE", &key_file);
    });
    agent.secrets.push("a-wrong-subscription-key".into());
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let transactions = format!("{}/transact-workflow/v1/transactions", agent.proxy());
    assert_eq!(curl(&["-H", &key, &transactions]).0, 403);

    fs::write(&key_file, format!("{SUBSCRIPTION_KEY}\n")).unwrap();
    agent.signal("HUP");
    until_ok("Transact after SIGHUP", || {
        curl(&["-H", &key, &transactions])
    });
    let (_, metrics) = agent.socket_curl(&[], "/metrics");
    assert!(metrics.contains("lwolf_agent_reloads_total 1"), "{metrics}");
    agent.check_stderr();
}

#[test]
fn a_hundred_concurrent_clients_share_one_token() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &[]);
    let key = agent.key();
    let addr = agent.proxy.clone().unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs(10);
    let started = Instant::now();
    let mut rss_early = 0;
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let (key, addr, answered) = (key.clone(), addr.clone(), Arc::clone(&answered));
            thread::spawn(move || -> Result<u64, String> {
                let mut n = 0;
                // Half keep their connection, half open one per request.
                let mut kept: Option<BufReader<TcpStream>> = None;
                while started.elapsed() < run_for {
                    let mut conn = match kept.take() {
                        Some(c) => c,
                        None => {
                            let s = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
                            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            BufReader::new(s)
                        }
                    };
                    let close = if i % 2 == 0 { "keep-alive" } else { "close" };
                    let request = format!(
                        "GET /backoffice/v1/offices?client={i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                         Lwolf-Agent-Key: {key}\r\nConnection: {close}\r\n\r\n"
                    );
                    conn.get_mut()
                        .write_all(request.as_bytes())
                        .map_err(|e| e.to_string())?;
                    let mut status_line = String::new();
                    conn.read_line(&mut status_line)
                        .map_err(|e| e.to_string())?;
                    if !status_line.starts_with("HTTP/1.1 200") {
                        // The rest of the answer says who refused and why.
                        let mut rest = Vec::new();
                        let _ = conn.take(4096).read_to_end(&mut rest);
                        return Err(format!(
                            "answer: {status_line:?} then {:?}",
                            String::from_utf8_lossy(&rest)
                        ));
                    }
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        conn.read_line(&mut line).map_err(|e| e.to_string())?;
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; length];
                    conn.read_exact(&mut body).map_err(|e| e.to_string())?;
                    if !body.starts_with(b"{\"data\"") {
                        return Err("not the offices".into());
                    }
                    n += 1;
                    answered.fetch_add(1, Ordering::Relaxed);
                    if i % 2 == 0 {
                        kept = Some(conn);
                    }
                }
                Ok(n)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    rss_early = rss_early.max(memory_kib(&agent.pid(), "VmRSS"));
    let mut each = Vec::new();
    for client in clients {
        match client.join().unwrap() {
            Ok(n) => each.push(n),
            Err(e) => {
                let log = agent.stderr();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "a client got no answer: {e}\nthe agent's log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }
    let rss_late = memory_kib(&agent.pid(), "VmRSS");
    assert_eq!(each.len(), 100);
    assert!(
        each.iter().all(|n| *n > 0),
        "a client was never answered: {each:?}"
    );
    let total: u64 = each.iter().sum();
    assert_eq!(total, answered.load(Ordering::Relaxed));
    assert_eq!(sandbox.token_requests(), 1, "more than one token request");
    assert_eq!(
        sandbox.api_requests(),
        total,
        "API requests and answers differ"
    );
    // Memory flat: what the agent holds after the run is about what it held early in it.
    assert!(
        rss_late < rss_early + 64 * 1024,
        "the agent's memory grew from {rss_early} KiB to {rss_late} KiB"
    );
    eprintln!("{total} answers from 100 clients; agent RSS {rss_early} KiB -> {rss_late} KiB");
    agent.check_traced();
    agent.check_stderr();
}

#[test]
fn bad_command_lines_are_refused() {
    let dir = TempDir::new("agent-args");
    let socket = dir.join("agent.sock");
    let socket = socket.to_str().unwrap();
    for (args, says) in [
        (&["agent"][..], "needs --socket"),
        (
            &["agent", "--socket", socket, "--allow", "no-such-name-xyz"],
            "neither a user nor a group",
        ),
        (&["agent", "--proxy", "0.0.0.0:8080"], "loopback"),
        (&["agent", "--proxy", "10.1.2.3:8080"], "loopback"),
        (
            &["agent", "--sink-format", "xml", "--sink", "x"],
            "json or raw",
        ),
        (&["token", "--socket", "/tmp/x"], "does not apply"),
    ] {
        let out = clean_command(lwolf())
            .args(args)
            .env("HOME", dir.path())
            .env("LWOLF_CLIENT_ID", "id")
            .env("LWOLF_CLIENT_SECRET", SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET));
    }
    // The help names the agent's options.
    let out = clean_command(lwolf()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "lwolf agent",
        "--socket PATH",
        "--allow USER|GROUP",
        "--sink-format",
        "Lwolf-Agent-Key",
    ] {
        assert!(help.contains(word), "{word}");
    }
}

#[test]
fn dpop_bound_tokens_get_proofs_over_the_socket_and_through_the_proxy() {
    // The sandbox asks for a DPoP nonce too, as Auth0 may.
    let sandbox = sandbox_with(Sandbox::builder().dpop_nonce(true));
    let mut agent = Agent::start_with(&sandbox, &[], &[("LWOLF_DPOP", "on")]);
    let api_url = format!("{}/v1/offices", sandbox.api_base_url());
    let (status, body) = agent.auth_headers("GET", &api_url);
    assert_eq!(status, 200, "{body}");
    let headers = json(&body);
    assert!(
        headers["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("DPoP "),
        "{body}"
    );
    let proof = headers["DPoP"].as_str().expect("a DPoP proof");
    assert_eq!(proof.split('.').count(), 3, "a proof is a JWT");
    // The proxy sends a proof of its own with each request; the sandbox checks it.
    let (status, body) = curl(&[
        "-H",
        &format!("Lwolf-Agent-Key: {}", agent.key()),
        &format!("{}/backoffice/v1/offices", agent.proxy()),
    ]);
    assert_eq!(status, 200, "{body}");
    agent.check_stderr();
}

/// An API that frames its answer with both `Transfer-Encoding: chunked` and a
/// `Content-Length` that is not the body's: the proxy relays what the coding framed, never
/// the length (which would leave the caller reading the next answer as this one's rest); and
/// an answer's hop-by-hop headers and cookies, which are not relayed either.
#[test]
fn a_length_beside_a_transfer_coding_is_not_relayed() {
    use lwolf_test_support::common::{Action, Server};
    let tokens = Server::tokens();
    let api = Server::new(Action::Raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\
          Content-Type: text/plain\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
    ));
    let dir = TempDir::new("agent-te-cl");
    let socket = dir.join("agent.sock");
    let mut cmd = clean_command(lwolf());
    cmd.arg("agent")
        .arg("-vv")
        .args([
            "--socket",
            socket.to_str().unwrap(),
            "--proxy",
            "127.0.0.1:0",
        ])
        .env("HOME", dir.path())
        .env_remove("XDG_CACHE_HOME")
        .env("LWOLF_CLIENT_ID", "te-cl-client")
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_TOKEN_URL", tokens.token_url())
        .env("LWOLF_API_BASE_URL", format!("{}/backoffice", api.url()))
        .env("LWOLF_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let agent = Agent::spawn(cmd, TempDir::new("agent-te-cl-home"), socket);
    let request = format!(
        "GET /backoffice/v1/notes HTTP/1.1\r\nHost: {}\r\nLwolf-Agent-Key: {}\r\n\
         Connection: close\r\n\r\n",
        agent.proxy().trim_start_matches("http://"),
        agent.key()
    );
    let (status, head, body) = raw(&agent.proxy(), request.as_bytes());
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("content-length: 100"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n", "{head}");

    // Headers the API's `Connection` names are its hop's; a cookie would be the browser's
    // for every service on loopback, whatever its port: neither is relayed.
    api.push(Action::Raw(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop-Secret\r\nX-Hop-Secret: 1\r\n\
          Set-Cookie: session=abc\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
            .to_vec(),
    ));
    let (status, head, body) = raw(&agent.proxy(), request.as_bytes());
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-kept: yes"), "{head}");
    assert!(!head.contains("x-hop-secret"), "{head}");
    assert!(!head.contains("set-cookie"), "{head}");
    assert_eq!(body, b"ok", "{head}");
    agent.check_stderr();
}

/// Socket activation: a launcher standing in for systemd binds the socket (with the mode a
/// `.socket` unit's `SocketMode=0660` gives), passes it as descriptor 3 with `LISTEN_FDS=1`
/// and its own pid in `LISTEN_PID`, and execs the agent. The agent serves that socket,
/// checks its peers as on its own, and leaves it in place when it stops (it is systemd's).
#[test]
fn a_socket_passed_by_systemd_is_served_and_left_in_place() {
    let sandbox = sandbox();
    let dir = TempDir::new("agent-activated");
    let socket = dir.join("agent.sock");
    let launcher = "import os, socket, sys\n\
        path, argv = sys.argv[1], sys.argv[2:]\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
        s.bind(path)\n\
        os.chmod(path, 0o660)\n\
        s.listen(16)\n\
        if s.fileno() != 3: os.dup2(s.fileno(), 3)\n\
        os.set_inheritable(3, True)\n\
        os.environ['LISTEN_FDS'] = '1'\n\
        os.environ['LISTEN_PID'] = str(os.getpid())\n\
        os.execv(argv[0], argv)\n";
    let template = agent_command(&sandbox, &dir, &["--socket", socket.to_str().unwrap()]);
    let mut cmd = clean_command("python3");
    cmd.args(["-c", launcher])
        .arg(&socket)
        .arg(lwolf())
        .args(template.get_args());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut agent = Agent::spawn(cmd, TempDir::new("agent-activated-home"), socket.clone());
    assert!(
        agent.stderr().contains("is systemd's"),
        "the agent bound a socket of its own:\n{}",
        agent.stderr()
    );
    assert_eq!(mode(&socket), 0o660, "the unit's mode was changed");
    let (status, body) = curl(&[
        "--unix-socket",
        socket.to_str().unwrap(),
        "http://localhost/v1/token",
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["access_token"].as_str().unwrap().len() > 20);
    agent.signal("TERM");
    assert_eq!(
        agent.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        agent.stderr()
    );
    assert!(socket.exists(), "the agent removed systemd's socket");
    agent.check_stderr();
}

#[test]
fn the_proxys_key_is_in_the_key_file_named_or_in_the_cache_directory() {
    let sandbox = sandbox();
    let dir = TempDir::new("agent-key-file");
    let get = |agent: &Agent, key: &str| {
        curl(&[
            "-H",
            &format!("Lwolf-Agent-Key: {key}"),
            &format!("{}/backoffice/v1/offices", agent.proxy()),
        ])
        .0
    };
    // A proxy-only agent whose key is expected in `key_file`.
    let start = |args: &[&str], home: &str, key_file: &Path| {
        let cmd = agent_command(
            &sandbox,
            &dir,
            &[&["--proxy", "127.0.0.1:0"], args].concat(),
        );
        Agent::spawn_keyed(
            cmd,
            TempDir::new(home),
            dir.join("none"),
            key_file.to_owned(),
        )
    };
    // --key-file: made there, 0600, and the proxy takes that key only.
    let named = dir.join("proxy.key");
    let with_key_file = ["--key-file", named.to_str().unwrap()];
    let agent = start(&with_key_file, "agent-key-home", &named);
    assert_eq!(mode(&named), 0o600);
    let key = agent.key();
    assert_eq!(key.len(), 64, "32 random bytes in hex");
    assert_eq!(get(&agent, &key), 200);
    assert_eq!(get(&agent, &"0".repeat(64)), 403);
    agent.check_stderr();
    drop(agent);
    // The next agent keeps the key it finds.
    let agent = start(&with_key_file, "agent-key-home2", &named);
    assert_eq!(agent.key(), key);
    assert_eq!(get(&agent, &key), 200);
    agent.check_stderr();
    drop(agent);
    // Neither --key-file nor --socket: in the cache directory, a key of its own.
    let cached = dir.join("cache").join("agent.key");
    let agent = start(&[], "agent-key-home3", &cached);
    assert_eq!(mode(&cached), 0o600);
    assert_ne!(agent.key(), key);
    assert_eq!(get(&agent, &agent.key()), 200);
    assert_eq!(get(&agent, &key), 403);
    agent.check_stderr();
}

/// A socket file left at the path: served by a live process (even one whose queue is full,
/// which a blocking connect would wait on forever), the agent refuses it at once; left by a
/// dead one, it is replaced and served.
#[test]
fn a_socket_in_use_is_refused_at_once_and_a_stale_one_replaced() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sandbox = sandbox();
    let dir = TempDir::new("agent-socket-taken");
    let socket = dir.join("agent.sock");
    let start = |dir: &TempDir| -> Child {
        let mut cmd = agent_command(&sandbox, dir, &["--socket", socket.to_str().unwrap()]);
        cmd.stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let exits_at_once = |mut child: Child| -> String {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut said = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut said)
                    .unwrap();
                assert!(!status.success(), "{said}");
                return said;
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!("the agent waited on a socket in use");
            }
            thread::sleep(Duration::from_millis(20));
        }
    };

    // A listener whose queue is full: one connection waits in a queue of none.
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let address = SocketAddrUnix::new(socket.as_path()).unwrap();
    rustix::net::bind(&listener, &address).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let queued = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::connect(&queued, &address).unwrap();
    let said = exits_at_once(start(&dir));
    assert!(said.contains("served by another process"), "{said}");

    // The process gone, its file left: replaced, and served.
    drop(queued);
    drop(listener);
    assert!(socket.exists());
    let mut agent = Agent::spawn(
        agent_command(&sandbox, &dir, &["--socket", socket.to_str().unwrap()]),
        TempDir::new("agent-socket-taken-home"),
        socket.clone(),
    );
    let (status, _) = agent.socket_curl(&[], "/v1/health");
    assert_eq!(status, 200);
    agent.check_stderr();
}
