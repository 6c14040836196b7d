//! `lwolf.exe agent` from the Windows SDK, under Wine against the sandbox: the proxy (curl on
//! this side of Wine's shared loopback), the sink, the token API on a named pipe (a Windows
//! client of ours, built with mingw), what Windows refuses, and Ctrl+C (Wine turns a SIGINT
//! to a console program into one) finishing cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lwolf_sandbox::Sandbox;
use lwolf_test_support::curl::curl;
use lwolf_test_support::ffi_support::{expect_success, repo_root, run, scratch_dir};
use lwolf_test_support::wine::{dist, windows_path, wine, LIMIT};

/// The agent's stderr lines, as they come, and the child.
fn start(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// Lines until one contains `what` (returned with all before it), within `bound`.
fn until(lines: &mpsc::Receiver<String>, what: &str, bound: Duration) -> (Option<String>, String) {
    let deadline = Instant::now() + bound;
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(what) {
                    return (Some(line), seen);
                }
            }
            Err(_) => break,
        }
    }
    (None, seen)
}

/// Ctrl+C: the agent stops cleanly and exits 0. All it said.
fn stop(child: &mut Child, lines: &mpsc::Receiver<String>, seen: String) -> String {
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lwolf.exe agent did not stop on Ctrl+C within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, rest) = until(lines, "\u{0}", Duration::from_secs(2));
    let all = format!("{seen}{rest}");
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("agent: stopped"), "{all}");
    all
}

#[test]
fn the_agents_pipe_under_wine() {
    let exe = dist().join("bin/lwolf.exe");
    let dir = scratch_dir("windows-agent-pipe");
    let sandbox = Sandbox::start().unwrap();
    let client = dir.join("pipe_client.exe");
    let mut cc = std::process::Command::new("x86_64-w64-mingw32-gcc");
    cc.args(["-O1", "-o"])
        .arg(&client)
        .arg(repo_root().join("system-tests/tests/windows_pipe_client.c"));
    expect_success(&run(&mut cc, LIMIT), "mingw gcc windows_pipe_client.c");
    let pipe = format!(r"\\.\pipe\lwolf-agent-test-{}", std::process::id());

    // What a pipe is not, or has no use for, is refused, with the way named.
    for (args, said) in [
        (
            vec!["agent", "--socket", r"C:\agent.sock"],
            r"names a pipe: \\.\pipe\NAME",
        ),
        (
            vec!["agent", "--socket", &pipe, "--socket-group", "users"],
            "--allow names the users",
        ),
        (
            vec![
                "agent",
                "--socket",
                &pipe,
                "--allow",
                "no-such-account-here",
            ],
            "no account",
        ),
        // A SID that would add to the pipe's DACL is not a SID.
        (
            vec!["agent", "--socket", &pipe, "--allow", "S-1-1-0)(A;;GA;;;WD"],
            "is not a SID",
        ),
    ] {
        let refused = run(&mut wine(&exe, &args, &sandbox), LIMIT);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_ne!(refused.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }

    let mut cmd = wine(&exe, &["agent", "-vv", "--socket", &pipe], &sandbox);
    cmd.env("LWOLF_CACHE_DIR", windows_path(&dir.join("cache")));
    let (mut child, lines) = start(&mut cmd);
    let (serving, seen) = until(&lines, "agent: serving:", LIMIT);
    if serving.is_none() {
        let _ = child.kill();
        panic!("lwolf.exe agent --socket {pipe} did not start under Wine:\n{seen}");
    }
    let get = |path: &str| -> String {
        let out = run(&mut wine(&client, &[&pipe, path], &sandbox), LIMIT);
        expect_success(&out, &format!("pipe_client {path}"))
    };
    let token = get("/v1/token");
    assert!(token.starts_with("HTTP/1.1 200 "), "{token}");
    let body = &token[token.find("\r\n\r\n").expect("an answer head") + 4..];
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let access_token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert!(access_token.len() > 20);
    assert!(get("/v1/health").starts_with("HTTP/1.1 200 "));
    let metrics = get("/metrics");
    assert!(metrics.contains("lwolf_token_requests_total"), "{metrics}");
    assert!(get("/v1/nothing").starts_with("HTTP/1.1 404 "));
    // Several at once, each answered.
    let many: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = wine(&client, &[&pipe, "/v1/token"], &sandbox);
            std::thread::spawn(move || run(&mut cmd, LIMIT))
        })
        .collect();
    for each in many {
        let out = each.join().unwrap();
        let said = expect_success(&out, "pipe_client /v1/token");
        assert!(said.starts_with("HTTP/1.1 200 "), "{said}");
    }
    assert_eq!(sandbox.tokens_issued(), 1);
    // A client that sends nothing is let go (the first request head is due within 3 s):
    // every wait on the pipe is bounded.
    let started = Instant::now();
    let idle = get("-");
    assert!(idle.contains("closed by the agent"), "{idle}");
    eprintln!(
        "an idle pipe client was closed after {:?}",
        started.elapsed()
    );
    assert!(get("/v1/health").starts_with("HTTP/1.1 200 "));
    // Closed, not refused: a silent client is no peer of another user.
    let metrics = get("/metrics");
    assert!(
        metrics.contains("lwolf_agent_refused_total{reason=\"peer\"} 0"),
        "{metrics}"
    );

    // The name is this agent's: a second one is refused.
    let second = run(
        &mut wine(&exe, &["agent", "--socket", &pipe], &sandbox),
        LIMIT,
    );
    assert_ne!(second.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("cannot serve the pipe"), "{stderr}");

    let all = stop(&mut child, &lines, seen);
    for secret in [access_token.as_str(), sandbox.client_secret()] {
        assert!(
            !all.contains(secret),
            "the agent's stderr shows a secret:\n{all}"
        );
    }
}

#[test]
fn the_agents_proxy_and_sink_under_wine() {
    let exe = dist().join("bin/lwolf.exe");
    let dir = scratch_dir("windows-agent");
    let sink = dir.join("token.json");
    let key_file = dir.join("agent.key");
    let sandbox = Sandbox::start().unwrap();

    // A key file someone left there is not taken: its key could be known to them.
    let planted = "a-key-planted-by-someone-else-0123456789";
    std::fs::write(&key_file, planted).unwrap();
    let mut cmd = wine(
        &exe,
        &[
            "agent",
            "-vv",
            "--proxy",
            "127.0.0.1:0",
            "--key-file",
            &windows_path(&key_file),
            "--sink",
            &windows_path(&sink),
        ],
        &sandbox,
    );
    cmd.env("LWOLF_CACHE_DIR", windows_path(&dir.join("cache")));
    let (mut child, lines) = start(&mut cmd);
    let (serving, seen) = until(&lines, "agent: serving:", LIMIT);
    let Some(serving) = serving else {
        let _ = child.kill();
        panic!("lwolf.exe agent did not start under Wine:\n{seen}");
    };
    let proxy = serving
        .split("proxy http://")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no proxy address in {serving:?}"))
        .to_owned();
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.len() >= 32, "a short key: {} characters", key.len());
    let key_header = format!("Lwolf-Agent-Key: {key}");

    let (status, body) = curl(&[
        "-H",
        &key_header,
        &format!("http://{proxy}/backoffice/v1/offices"),
    ]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[
        "-H",
        &key_header,
        &format!("http://{proxy}/transact-workflow/v1/transactions"),
    ]);
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&[&format!("http://{proxy}/backoffice/v1/offices")]);
    assert_eq!(status, 403, "no key, no token");
    let (status, _) = curl(&["-H", &key_header, &format!("http://{proxy}/elsewhere")]);
    assert_eq!(status, 404);

    // The sink holds the token the proxy used: one token for all of it.
    let deadline = Instant::now() + LIMIT;
    while !sink.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sink).expect("the sink file")).expect("JSON");
    let token = written["access_token"].as_str().expect("access_token");
    assert!(token.len() > 20);
    // The DACLs of the user alone, as Wine shows them: it keeps no DACL on a Unix file
    // system, but maps the one set to the file's mode.
    use std::os::unix::fs::PermissionsExt;
    for file in [&key_file, &sink] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o007,
            0,
            "{} is open to others: {mode:o}",
            file.display()
        );
    }
    assert_eq!(sandbox.tokens_issued(), 1);

    let all = stop(&mut child, &lines, seen);
    for secret in [key.as_str(), token, sandbox.client_secret()] {
        assert!(
            !all.contains(secret),
            "the agent's stderr shows a secret:\n{all}"
        );
    }
}
