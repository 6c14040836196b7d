//! A real `redis-server` for a test, on 127.0.0.1 and a free port, with nothing saved to disk;
//! killed when dropped. Without `redis-server` the test fails and says what to install.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    port: u16,
    /// With [`Redis::start_tls`]: the port that speaks TLS (`port` stays plain, for the test).
    tls_port: Option<u16>,
    dir: PathBuf,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// With a TLS port too, serving `cert` and `key` (PEM).
    pub fn start_tls(cert: &str, key: &str) -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "lwolf-redis-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        let tls_port = free_port();
        let (cert_file, key_file) = (
            cert_file.display().to_string(),
            key_file.display().to_string(),
        );
        let mut redis = Redis::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &cert_file,
            "--tls-key-file",
            &key_file,
            "--tls-auth-clients",
            "no",
        ]);
        redis.tls_port = Some(tls_port);
        redis
    }

    /// The `rediss://` URL of [`Redis::start_tls`]'s TLS port, by `host`.
    pub fn tls_url(&self, host: &str) -> String {
        format!(
            "rediss://{host}:{}",
            self.tls_port.expect("started with start_tls")
        )
    }

    /// With extra `redis-server` arguments (`["--requirepass", "pw"]`, say).
    pub fn start_with(args: &[&str]) -> Redis {
        let server = which("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server is not installed: the fleet cache tests need a real one \
                 (apt-get install redis-server; .ci/run installs it)"
            )
        });
        // A free port: redis-server cannot be told to pick one. Another process may take it
        // in between, so a failed start tries another.
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("lwolf-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new(&server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start redis-server");
            let mut redis = Redis {
                child: Some(child),
                port,
                tls_port: None,
                dir,
            };
            if redis.wait_ready(Duration::from_secs(10), args) {
                return redis;
            }
            redis.kill();
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    fn wait_ready(&mut self, limit: Duration, args: &[&str]) -> bool {
        let password = args
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1]);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                return false;
            }
            let ping = match password {
                Some(pw) => self.raw(&["AUTH", pw]).and_then(|_| self.raw(&["PING"])),
                None => self.raw(&["PING"]),
            };
            if ping.is_some_and(|r| r.contains("PONG") || r.contains("NOAUTH")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection of the test's own, to look at what the library wrote.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Every key and its value (as bytes; empty for keys that are not strings).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.conn();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        let mut out = Vec::new();
        for key in keys {
            let value: Option<Vec<u8>> =
                redis::cmd("GET").arg(&key).query(&mut conn).unwrap_or(None);
            out.push((key, value.unwrap_or_default()));
        }
        out.sort();
        out
    }

    /// How many times each command was run, from `INFO commandstats` (`get`, `set`, …).
    pub fn calls(&self, command: &str) -> u64 {
        let mut conn = self.conn();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    pub fn reset_stats(&self) {
        let mut conn = self.conn();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut conn)
            .unwrap();
    }

    /// One command over a bare socket, its first reply line; `None` if it cannot be had.
    fn raw(&self, words: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut req = format!("*{}\r\n", words.len());
        for w in words {
            req.push_str(&format!("${}\r\n{w}\r\n", w.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}
