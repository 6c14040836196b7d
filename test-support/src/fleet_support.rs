//! What the fleet cache tests (`tests/fleet.rs`, `tests/fleet_faults.rs`) share: the fleet's
//! processes (the `lwolf` tool, each "host" its own `cache_dir`), the entry names the format
//! gives, the library's log lines, and misbehaving stand-ins for Redis.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::at_rest;
use crate::common::{self, Action, Server, CLIENT_ID, SECRET, TOKEN_MARK};
use crate::ffi_support::clean_command;
use lwolf_auth::ConfigBuilder;

/// The `lwolf` tool, built for this test's profile.
pub fn lwolf_program() -> std::path::PathBuf {
    crate::ffi_support::lwolf_binary()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A token endpoint that answers every request with a new token after `delay`.
pub fn slow_tokens(delay: Duration) -> Server {
    let counter = Arc::new(AtomicUsize::new(0));
    Server::new(Action::dynamic(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Action::token(&format!("{TOKEN_MARK}fleet-{n}"), 86_400).after(delay)
    }))
}

pub fn builder(server: &Server, cache_url: &str) -> ConfigBuilder {
    common::builder(server)
        .cache_url(cache_url)
        .max_retries(0)
        .timeout(Duration::from_secs(5))
}

/// The entry of `server`'s identity with `secret`, as the format says it is named.
pub fn entry_of(server: &Server, secret: &str) -> at_rest::Entry {
    at_rest::Entry::of(&at_rest::Who {
        token_url: &server.token_url(),
        client_id: CLIENT_ID,
        audience: lwolf_auth::defaults::DEFAULT_AUDIENCE,
        lwt_client_id: None,
        secret,
    })
}

/// `lwolf token --json` as one process of the fleet on the "host" whose cache is `dir`.
pub fn fleet_process(server: &Server, cache_url: &str, dir: Option<&Path>) -> Command {
    lwolf(&["token", "--json"], server, cache_url, dir)
}

/// `lwolf <args>` as one process of the fleet on the "host" whose cache is `dir`.
pub fn lwolf(args: &[&str], server: &Server, cache_url: &str, dir: Option<&Path>) -> Command {
    let mut cmd = clean_command(lwolf_program());
    cmd.args(args)
        .env("LWOLF_TOKEN_URL", server.token_url())
        .env("LWOLF_CLIENT_ID", CLIENT_ID)
        .env("LWOLF_CLIENT_SECRET", SECRET)
        .env("LWOLF_CACHE_URL", cache_url)
        .env(
            "LWOLF_CACHE_DIR",
            dir.map_or("".into(), |d| d.as_os_str().to_owned()),
        )
        .env("LWOLF_TIMEOUT_MS", "5000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Each process's `(fingerprint, source)`, once all have exited successfully.
pub fn outcomes(children: Vec<Child>) -> Vec<(String, String)> {
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let stdout = crate::ffi_support::expect_success(&out, "a fleet process");
            let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            (
                json["fingerprint"].as_str().unwrap().to_owned(),
                json["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `hosts` hosts of `per_host` processes each, all started at once.
pub fn run_fleet(
    server: &Server,
    cache_url: &str,
    hosts: &[&Path],
    per_host: usize,
) -> Vec<(String, String)> {
    let mut children = Vec::new();
    for _ in 0..per_host {
        for host in hosts {
            children.push(
                fleet_process(server, cache_url, Some(host))
                    .spawn()
                    .unwrap(),
            );
        }
    }
    outcomes(children)
}

/// What the library logged, for the tests to search (by a port or name of their own: the
/// tests of this file run in parallel, and the handler is the process's).
pub static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        lwolf_auth::unversioned::log::set_handler(log::LevelFilter::Trace, |level, message| {
            LOGS.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{level} {message}"));
        });
    });
}

pub fn logged(needle: &str, also: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle) && l.contains(also))
        .cloned()
        .collect()
}

/// A TCP server on loopback that accepts connections and counts them, and answers each
/// with `reply` (nothing at all, for `None`: a server that hangs).
pub struct FakeRedis {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
}

impl FakeRedis {
    pub fn start(reply: Option<&'static [u8]>) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    match reply {
                        Some(bytes) => {
                            let _ = conn.write_all(bytes);
                        }
                        None => std::thread::sleep(Duration::from_secs(30)),
                    }
                });
            }
        });
        FakeRedis { port, accepted }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A TCP proxy to `target` that holds each chunk for the current delay (in ms) before
/// passing it on: Redis made slow on demand.
pub struct DelayingProxy {
    pub port: u16,
    pub delay_ms: Arc<AtomicU64>,
    pub accepted: Arc<AtomicUsize>,
}

impl DelayingProxy {
    pub fn start(target: u16) -> DelayingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (delay, count) = (Arc::clone(&delay_ms), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let delay = Arc::clone(&delay);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        DelayingProxy {
            port,
            delay_ms,
            accepted,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A Redis stand-in on loopback that speaks enough RESP to script a hostile server: each
/// command (an array of bulk strings) is answered with what `answer` returns for its
/// arguments, or (`start_raw`) each connection is handed to a closure whole.
pub struct ScriptedRedis {
    pub port: u16,
}

impl ScriptedRedis {
    pub fn start(answer: impl Fn(&[Vec<u8>]) -> Vec<u8> + Send + Sync + 'static) -> ScriptedRedis {
        let answer = Arc::new(answer);
        ScriptedRedis::start_raw(move |conn| {
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut conn = conn;
            while let Some(args) = read_command(&mut reader) {
                if conn.write_all(&answer(&args)).is_err() {
                    return;
                }
            }
        })
    }

    /// Each accepted connection goes to `serve`, on a thread of its own.
    pub fn start_raw(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> ScriptedRedis {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let serve = Arc::clone(&serve);
                std::thread::spawn(move || serve(conn));
            }
        });
        ScriptedRedis { port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A RESP bulk string.
    pub fn bulk(value: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", value.len()).into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// One RESP command (`*N` then N bulk strings); `None` at the end of the stream.
fn read_command(reader: &mut impl std::io::BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0u8; len + 2];
        reader.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}
