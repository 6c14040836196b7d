//! The library's rules through the proxy: a renewal on a rejected token, the Transact API's
//! 403, retries, the timeout, redirects, another tenant's token, and a large body streamed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lwolf_sandbox::Sandbox;
use lwolf_test_support::common::{Action, Server};
use lwolf_test_support::temp_dir::TempDir;

use super::support::*;

/// `-D -` output: the value of header `name` (any case), if there is one.
fn header_in(dump: &str, name: &str) -> Option<String> {
    dump.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

#[test]
fn a_token_the_api_rejects_is_renewed_and_the_request_sent_again() {
    let sandbox = sandbox();
    let mut agent = Agent::start(&sandbox, &[]);
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let offices = format!("{}/backoffice/v1/offices", agent.proxy());
    assert_eq!(curl(&["-H", &key, &offices]).0, 200);
    assert_eq!(sandbox.tokens_issued(), 1);

    // The sandbox forgets every token: the next request is answered 401 upstream, and the
    // caller sees only the 200 of the request sent again with a new token.
    sandbox.expire_tokens();
    let (status, body) = curl(&["-H", &key, &offices]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(sandbox.tokens_issued(), 2);
    let (_, metrics) = agent.socket_curl(&[], "/metrics");
    assert!(
        metrics.contains("lwolf_forced_renewals_total 1"),
        "{metrics}"
    );
    agent.check_stderr();
}

#[test]
fn a_transact_403_is_relayed_and_never_renews() {
    let sandbox = sandbox();
    let agent = Agent::start_with(
        &sandbox,
        &[],
        &[("LWOLF_SUBSCRIPTION_KEY", "a-wrong-subscription-key")],
    );
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let proxy = agent.proxy();

    for _ in 0..3 {
        let (status, body) = curl(&[
            "-H",
            &key,
            &format!("{proxy}/transact-workflow/v1/transactions"),
        ]);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("lw-subscription-key"), "{body}");
    }
    // A Transact 403 is about the key, not the token: one token, still good for the other API.
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(
        curl(&["-H", &key, &format!("{proxy}/backoffice/v1/offices")]).0,
        200
    );
    assert_eq!(sandbox.token_requests(), 1);
    agent.check_stderr();
}

#[test]
fn another_tenant_is_named_with_lwolf_tenant() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &[]);
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let offices = format!("{}/backoffice/v1/offices", agent.proxy());

    let (status, own) = curl(&["-H", &key, "-D", "-", &offices]);
    assert_eq!(status, 200, "{own}");
    assert_eq!(header_in(&own, "x-sandbox-lwt-client-id"), None, "{own}");

    let (status, theirs) = curl(&[
        "-H",
        &key,
        "-H",
        "Lwolf-Tenant: office-7",
        "-D",
        "-",
        &offices,
    ]);
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(
        header_in(&theirs, "x-sandbox-lwt-client-id").as_deref(),
        Some("office-7"),
        "{theirs}"
    );
    // Kept: a second request for that tenant takes no new token.
    assert_eq!(
        curl(&["-H", &key, "-H", "Lwolf-Tenant: office-7", &offices]).0,
        200
    );
    assert_eq!(sandbox.tokens_issued(), 2);

    for bad in [
        &["-H", "Lwolf-Tenant: bad id"][..],
        &["-H", "Lwolf-Tenant: a", "-H", "Lwolf-Tenant: b"],
        &["-H", "Lwolf-Tenant;"],
    ] {
        let (status, body) = curl(&[&["-H", &key][..], bad, &[&offices]].concat());
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(body.contains("error"), "{body}");
    }
    assert_eq!(sandbox.tokens_issued(), 2);
    agent.check_stderr();
}

/// The scripted API of these tests (`lwolf_test_support::common::Server`): `/api/flaky`
/// answers 503 once and then 200, a POST to `/api/busy` always 503, a POST to `/api/upload`
/// 201, `/api/slow` after 4 s, and `/api/moved` a 302 to `moved_to`.
fn scripted_api(moved_to: String) -> Server {
    let flaky = Arc::new(AtomicUsize::new(0));
    Server::new(Action::dynamic(move |req| {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/flaky") if flaky.fetch_add(1, Ordering::SeqCst) == 0 => {
                Action::body(503, "busy").header("Retry-After", "0")
            }
            ("GET", "/api/flaky") => Action::body(200, "fine"),
            ("POST", "/api/busy") => Action::body(503, "busy").header("Retry-After", "0"),
            ("POST", "/api/upload") => Action::body(201, "stored"),
            ("GET", "/api/slow") => Action::body(200, "late").after(Duration::from_secs(4)),
            ("GET", "/api/moved") => Action::redirect(302, &moved_to),
            _ => Action::body(404, "no such path"),
        }
    }))
}

/// The agent with `args` and `env`, its tokens from a sandbox and its API the scripted one
/// (`/api`).
fn start_on_scripted_api(args: &[&str], env: &[(&str, &str)]) -> (Sandbox, Server, Agent) {
    let sandbox = sandbox();
    let upstream = scripted_api(String::new());
    let api = format!("{}/api", upstream.url());
    let mut all_env = vec![("LWOLF_API_BASE_URL", api.as_str())];
    all_env.extend_from_slice(env);
    let agent = Agent::start_with(&sandbox, args, &all_env);
    (sandbox, upstream, agent)
}

/// The agent still serves: a GET through the proxy is answered; nothing secret in its
/// stderr.
fn serves_on(agent: &Agent) {
    let (status, _) = curl(&[
        "-H",
        &format!("Lwolf-Agent-Key: {}", agent.key()),
        &format!("{}/backoffice/flaky", agent.proxy()),
    ]);
    assert_eq!(status, 200);
    agent.check_stderr();
}

/// A body's length and the sum of its bytes (a large body is never printed).
fn length_and_sum(body: &[u8]) -> (usize, u64) {
    (body.len(), body.iter().map(|&b| u64::from(b)).sum())
}

/// Retries of idempotent methods only, a timed-out API answered 504 within a bound, and a
/// redirect to another origin relayed, never followed (so the token never goes there).
#[test]
fn retries_the_timeout_and_redirects_follow_the_library() {
    let sandbox = sandbox();
    let foreign = Server::new(Action::body(200, "stolen"));
    let stolen = format!("{}/stolen", foreign.url());
    let upstream = scripted_api(stolen.clone());
    let api = format!("{}/api", upstream.url());
    let agent = Agent::start_with(
        &sandbox,
        &[],
        &[
            ("LWOLF_API_BASE_URL", &api),
            ("LWOLF_TIMEOUT_MS", "1000"),
            ("LWOLF_MAX_RETRIES", "1"),
            ("LWOLF_RETRY_BASE_MS", "50"),
        ],
    );
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let proxy = agent.proxy();

    // A GET answered 503 once is sent again; the caller sees the 200.
    let (status, body) = curl(&["-H", &key, &format!("{proxy}/backoffice/flaky")]);
    assert_eq!((status, body.as_str()), (200, "fine"));
    let flaky = upstream.requests_to("/api/flaky");
    assert_eq!(flaky.len(), 2);
    for seen in &flaky {
        let auth = seen.header("authorization").unwrap_or_default();
        assert!(auth.starts_with("Bearer ") && auth.len() > 20);
    }

    // A POST is not: the 503 comes back as it is, after one attempt.
    let (status, body) = curl(&[
        "-H",
        &key,
        "--data",
        "x=1",
        &format!("{proxy}/backoffice/busy"),
    ]);
    assert_eq!((status, body.as_str()), (503, "busy"));
    let busy = upstream.requests_to("/api/busy");
    assert_eq!(busy.len(), 1);
    assert_eq!(busy[0].method, "POST");

    // An API slower than timeout_ms: each attempt is cut off, and the caller gets a 504 in
    // about the two attempts' time, not the API's.
    let started = Instant::now();
    let (status, body) = curl(&["-H", &key, &format!("{proxy}/backoffice/slow")]);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream.requests_to("/api/slow").len(), 2);

    // A redirect to another origin is the caller's to see; the agent does not follow it.
    let (status, dump) = curl(&["-H", &key, "-D", "-", &format!("{proxy}/backoffice/moved")]);
    assert_eq!(status, 302, "{dump}");
    assert_eq!(header_in(&dump, "location"), Some(stolen));
    assert_eq!(foreign.request_count(), 0);
    assert_eq!(sandbox.token_requests(), 1);
    agent.check_stderr();
}

/// A body over 1 MiB with a `Content-Length` goes to the API as it arrives: all of it, with
/// the token, and the agent's memory never holds it (its peak grows by far less than the
/// body; read whole, it would grow by all of it).
#[test]
fn a_large_body_is_streamed_to_the_api() {
    const SIZE: usize = 64 * 1024 * 1024;
    let scratch = TempDir::new("agent-upload");
    let file = scratch.join("upload.bin");
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    std::fs::write(&file, &data).unwrap();
    drop(data);
    let (sandbox, upstream, agent) = start_on_scripted_api(&["--max-body-bytes", "100000000"], &[]);
    let key = format!("Lwolf-Agent-Key: {}", agent.key());
    let proxy = agent.proxy();
    // A small request first: the agent has its token and its pool.
    assert_eq!(
        curl(&["-H", &key, &format!("{proxy}/backoffice/flaky")]).0,
        200
    );
    let before = memory_kib(&agent.pid(), "VmHWM");
    assert!(before > 0, "no VmHWM in /proc/{}/status", agent.pid());

    // curl sends `Expect: 100-continue` for a body this large: answered, then streamed.
    let (status, body) = curl(&[
        "-H",
        &key,
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{proxy}/backoffice/upload"),
    ]);
    assert_eq!((status, body.as_str()), (201, "stored"));
    let seen = upstream.requests_to("/api/upload");
    assert_eq!(seen.len(), 1);
    assert_eq!(length_and_sum(&seen[0].body), (SIZE, sum));
    assert!(seen[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));

    // The same body chunked (curl's chunks are 64 KiB or less): streamed too, and sent on
    // chunked, as its length is not known.
    let (status, body) = curl(&[
        "-H",
        &key,
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{proxy}/backoffice/upload"),
    ]);
    assert_eq!((status, body.as_str()), (201, "stored"));
    let seen = upstream.requests_to("/api/upload");
    assert_eq!(seen.len(), 2);
    assert_eq!(length_and_sum(&seen[1].body), (SIZE, sum));
    assert_eq!(seen[1].header("transfer-encoding"), Some("chunked"));
    let grown = memory_kib(&agent.pid(), "VmHWM").saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the agent's peak memory grew by {grown} KiB for two {} KiB bodies",
        SIZE / 1024
    );
    assert_eq!(sandbox.token_requests(), 1);
    agent.check_stderr();
}

/// The head of a proxy request with a body of `length` bytes.
fn upload_head(key: &str, length: usize) -> String {
    format!(
        "POST /backoffice/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// A streamed body the caller leaves half-way never reaches the API as a whole request;
/// bytes pipelined after a streamed body are never taken for a request (the connection
/// closes after it); and the agent serves on.
#[test]
fn a_streamed_body_cut_off_or_followed_is_never_taken_for_more() {
    const SIZE: usize = 3 * 1024 * 1024;
    let (_sandbox, upstream, agent) = start_on_scripted_api(&[], &[]);
    let key = agent.key();
    let address = agent.proxy().trim_start_matches("http://").to_owned();

    // Half the body, then the caller is gone.
    let mut caller = TcpStream::connect(&address).unwrap();
    caller
        .write_all(upload_head(&key, SIZE).as_bytes())
        .unwrap();
    caller.write_all(&vec![b'a'; SIZE / 2]).unwrap();
    drop(caller);

    // A whole body with a second request right behind it on the same connection.
    let mut caller = TcpStream::connect(&address).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut all = upload_head(&key, SIZE).into_bytes();
    all.extend(vec![b'b'; SIZE]);
    all.extend_from_slice(
        format!(
            "GET /backoffice/flaky HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\r\n"
        )
        .as_bytes(),
    );
    caller.write_all(&all).unwrap();
    let mut answer = Vec::new();
    let _ = caller.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");

    // The API saw one upload, the whole one; nothing of the cut one, nor the GET.
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.requests_to("/api/upload").is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let uploads = upstream.requests_to("/api/upload");
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        length_and_sum(&uploads[0].body),
        (SIZE, SIZE as u64 * u64::from(b'b'))
    );
    assert!(upstream.requests_to("/api/flaky").is_empty());

    // And it serves on.
    serves_on(&agent);
}

/// A chunked body that grows past `--max-body-bytes`, or whose framing breaks, after the
/// agent began to stream it: the caller is told which (413, 400), the API never gets a
/// whole request, and the agent serves on.
#[test]
fn a_chunked_body_refused_mid_stream_is_answered_for_what_went_wrong() {
    const CHUNK: usize = 128 * 1024;
    let (_sandbox, upstream, agent) = start_on_scripted_api(&["--max-body-bytes", "3000000"], &[]);
    let key = agent.key();
    let address = agent.proxy().trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /backoffice/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = |n: usize| {
        let mut wire = Vec::new();
        for _ in 0..n {
            wire.extend_from_slice(format!("{CHUNK:x}\r\n").as_bytes());
            wire.extend(vec![b'c'; CHUNK]);
            wire.extend_from_slice(b"\r\n");
        }
        wire
    };
    // 4 MiB in 128 KiB chunks; 2 MiB, then a chunk size that is not one.
    let too_large = [chunk(32), b"0\r\n\r\n".to_vec()].concat();
    let malformed = [chunk(16), b"zz\r\n".to_vec(), chunk(8)].concat();
    for (body, status) in [(too_large, 413), (malformed, 400)] {
        let mut caller = TcpStream::connect(&address).unwrap();
        caller
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut writer = caller.try_clone().unwrap();
        let wire = [head.as_bytes(), &body].concat();
        // Written apart from the reading: the agent may stop reading before the end.
        let sending = thread::spawn(move || {
            let _ = writer.write_all(&wire);
        });
        let mut answer = Vec::new();
        let _ = caller.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
        drop(caller);
        sending.join().unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    assert!(upstream.requests_to("/api/upload").is_empty());
    serves_on(&agent);
}

/// A caller that goes quiet in the middle of a streamed body is let go after the agent's 60 s
/// wait for its next bytes, with a 408 (its fault, not the API's); the API never gets the
/// request whole. The longest test here: the wait is the agent's own.
#[test]
fn a_caller_quiet_mid_body_is_answered_408() {
    const SIZE: usize = 3 * 1024 * 1024;
    // The attempt's own bound (timeout_ms and the body's time at 64 KiB/s) is longer than
    // the 60 s wait: the quiet caller is what ends it.
    let (_sandbox, upstream, agent) = start_on_scripted_api(&[], &[("LWOLF_TIMEOUT_MS", "120000")]);
    let key = agent.key();
    let address = agent.proxy().trim_start_matches("http://").to_owned();
    let mut caller = TcpStream::connect(&address).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(150)))
        .unwrap();
    caller
        .write_all(upload_head(&key, SIZE).as_bytes())
        .unwrap();
    caller.write_all(&vec![b'q'; SIZE / 2]).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = caller.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("did not arrive whole"), "{answer}");
    eprintln!("a quiet caller was answered after {:?}", started.elapsed());
    assert!(upstream.requests_to("/api/upload").is_empty());
    agent.check_stderr();
}
