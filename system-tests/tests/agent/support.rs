//! What the agent's tests share: the sandbox, a running agent, curl, raw requests.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lwolf_sandbox::Sandbox;
use lwolf_test_support::ffi_support::clean_command;
use lwolf_test_support::temp_dir::TempDir;

/// The `lwolf` program (built for this test binary's profile).
pub(crate) fn lwolf() -> PathBuf {
    lwolf_test_support::ffi_support::lwolf_binary()
}
/// A secret and a subscription key that are easy to spot in any output.
pub(crate) const SECRET: &str = "agent-s3cr3t-MUST-NOT-SHOW";
pub(crate) const SUBSCRIPTION_KEY: &str = "agent-subkey-MUST-NOT-SHOW";
/// How long an agent may take to start, or a file to change: a bound, not a speed.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn sandbox() -> Sandbox {
    sandbox_with(Sandbox::builder())
}

pub(crate) fn sandbox_with(builder: lwolf_sandbox::SandboxBuilder) -> Sandbox {
    builder
        .client_secret(SECRET)
        .subscription_key(SUBSCRIPTION_KEY)
        .start()
        .unwrap()
}

/// A running `lwolf agent -vv`: its stderr collected as it comes.
pub(crate) struct Agent {
    pub(crate) child: Child,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) dir: TempDir,
    pub(crate) socket: PathBuf,
    /// The proxy's key file (beside the socket unless the test says otherwise).
    pub(crate) key_file: PathBuf,
    pub(crate) proxy: Option<String>,
    /// Values that must never be in its stderr (the key and tokens are added as seen).
    pub(crate) secrets: Vec<String>,
}

/// The `lwolf agent` command for `sandbox`: a clean environment, the cache in `dir`.
pub(crate) fn agent_command(sandbox: &Sandbox, dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = clean_command(lwolf());
    cmd.arg("agent")
        .arg("-vv")
        .args(args)
        .env("HOME", dir.path())
        .env_remove("XDG_CACHE_HOME")
        .env("LWOLF_CLIENT_ID", sandbox.client_id())
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_TOKEN_URL", sandbox.token_url())
        .env("LWOLF_API_BASE_URL", sandbox.api_base_url())
        .env("LWOLF_TRANSACT_BASE_URL", sandbox.transact_base_url())
        .env("LWOLF_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
        .env("LWOLF_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Agent {
    /// `lwolf agent --socket DIR/agent.sock --proxy 127.0.0.1:0 EXTRA...`.
    pub(crate) fn start(sandbox: &Sandbox, extra: &[&str]) -> Agent {
        Agent::start_with(sandbox, extra, &[])
    }

    /// As [`start`](Self::start), with these environment variables set (or replaced).
    pub(crate) fn start_with(sandbox: &Sandbox, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::start_in(sandbox, TempDir::new("agent"), extra, |cmd| {
            cmd.envs(env.iter().copied());
        })
    }

    /// As [`start`](Self::start), in `dir` (its socket `agent.sock`, its cache, its HOME),
    /// the command changed by `edit` last (a variable removed, a file named).
    pub(crate) fn start_in(
        sandbox: &Sandbox,
        dir: TempDir,
        extra: &[&str],
        edit: impl FnOnce(&mut Command),
    ) -> Agent {
        let socket = dir.join("agent.sock");
        let mut args = vec![
            "--socket",
            socket.to_str().unwrap(),
            "--proxy",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut cmd = agent_command(sandbox, &dir, &args);
        edit(&mut cmd);
        Agent::spawn(cmd, dir, socket)
    }

    pub(crate) fn spawn(cmd: Command, dir: TempDir, socket: PathBuf) -> Agent {
        let mut name = socket.file_name().unwrap().to_os_string();
        name.push(".key");
        let key_file = socket.with_file_name(name);
        Agent::spawn_keyed(cmd, dir, socket, key_file)
    }

    /// As `spawn`, with the proxy's key in `key_file`.
    pub(crate) fn spawn_keyed(
        mut cmd: Command,
        dir: TempDir,
        socket: PathBuf,
        key_file: PathBuf,
    ) -> Agent {
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let mut agent = Agent {
            child,
            stderr,
            dir,
            socket,
            key_file,
            proxy: None,
            secrets: vec![SECRET.into(), SUBSCRIPTION_KEY.into()],
        };
        let started = Instant::now();
        loop {
            let text = agent.stderr();
            if let Some(line) = text.lines().find(|l| l.contains("agent: serving:")) {
                agent.proxy = line
                    .split("proxy http://")
                    .nth(1)
                    .map(|rest| rest.split([',', ' ']).next().unwrap().to_owned());
                break;
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("the agent exited ({status}) before serving:\n{text}");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the agent did not start:\n{text}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        if agent.proxy.is_some() {
            let key = agent.key();
            agent.secrets.push(key);
        }
        agent
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn key_file(&self) -> PathBuf {
        self.key_file.clone()
    }

    pub(crate) fn key(&self) -> String {
        fs::read_to_string(self.key_file())
            .unwrap()
            .trim()
            .to_owned()
    }

    pub(crate) fn proxy(&self) -> String {
        format!("http://{}", self.proxy.as_deref().unwrap())
    }

    /// `GET /v1/auth-headers` over the socket for `method` and `url`, encoded by curl.
    pub(crate) fn auth_headers(&mut self, method: &str, url: &str) -> (u16, String) {
        self.socket_curl(
            &[
                "-G",
                "--data-urlencode",
                &format!("method={method}"),
                "--data-urlencode",
                &format!("url={url}"),
            ],
            "/v1/auth-headers",
        )
    }

    /// curl over the socket: (HTTP status, body).
    pub(crate) fn socket_curl(&mut self, args: &[&str], path: &str) -> (u16, String) {
        let (status, body) = curl(
            &[
                &["--unix-socket", self.socket.to_str().unwrap()],
                args,
                &[&format!("http://localhost{path}")],
            ]
            .concat(),
        );
        self.remember_tokens(&body);
        (status, body)
    }

    /// Any token in `body` joins the values that must never reach stderr.
    pub(crate) fn remember_tokens(&mut self, body: &str) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
            for key in ["access_token", "Authorization"] {
                if let Some(t) = v.get(key).and_then(|t| t.as_str()) {
                    let bare = t.rsplit(' ').next().unwrap().to_owned();
                    self.secrets.push(bare);
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the agent to exit; its exit code.
    pub(crate) fn wait(&mut self, bound: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The checks every agent gets at the end: nothing secret in stderr, no panic.
    pub(crate) fn check_stderr(&self) {
        // The collector may be a moment behind the last line.
        thread::sleep(Duration::from_millis(100));
        let text = self.stderr();
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "the agent's stderr shows a secret, the key or a token:\n{text}"
            );
        }
        assert!(!text.contains("panicked"), "{text}");
    }

    /// Trace level is on: the library's exchanges and the proxy's requests were logged (and
    /// so checked by [`check_stderr`](Self::check_stderr)).
    pub(crate) fn check_traced(&self) {
        let text = self.stderr();
        assert!(text.contains("lwolf: trace:"), "{text}");
        assert!(text.contains("lwolf: agent: proxy: GET "), "{text}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) use lwolf_test_support::curl::curl;

/// A memory figure of process `pid` from `/proc/PID/status`, in KiB: `VmRSS` (resident
/// now) or `VmHWM` (its peak).
pub(crate) fn memory_kib(pid: &str, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Calls `get` until it answers 200, within [`PATIENCE`]; `what` names the wait.
pub(crate) fn until_ok(what: &str, mut get: impl FnMut() -> (u16, String)) {
    let started = Instant::now();
    loop {
        let (status, body) = get();
        if status == 200 {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no {what}: still {status}: {body}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub(crate) fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// Sends `request` as is to the proxy and reads the answer whole (the connection is closed
/// by the request's `Connection: close` or the agent): (status, head, body).
pub(crate) fn raw(proxy: &str, request: &[u8]) -> (u16, String, Vec<u8>) {
    let addr = proxy.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    parse_answer(&all)
}

pub(crate) fn parse_answer(all: &[u8]) -> (u16, String, Vec<u8>) {
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head: {:?}", String::from_utf8_lossy(all)));
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, all[split + 4..].to_vec())
}
