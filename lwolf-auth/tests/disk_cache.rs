//! The token cache shared between processes (`cache_dir`), through the public surface,
//! against the in-process sandbox on loopback.
//!
//! Several tests run copies of this test binary as worker processes: the binary runs itself
//! with `--exact worker --ignored` and `LWOLF_DISK_WORKER=<mode>`. `worker` is ignored in a
//! plain run, and fails, saying why, when run by hand without its variable.
//!
//! The two tests of files owned by another user chown to uid 65534, which needs root: they
//! fail, saying so, when run without it (CI runs as root).

#![cfg(unix)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lwolf_auth::{AccessToken, Client, ConfigBuilder};
use lwolf_sandbox::Sandbox;

use ffi_support::clean_command;
use lwolf_test_support::at_rest;
use lwolf_test_support::ffi_support;
use lwolf_test_support::temp_dir;
use temp_dir::TempDir;

/// A secret that is easy to spot if it ever leaks into a file or a log.
const SECRET: &str = "disk-s3cr3t-NEVER-ON-DISK";
const WORKER_MODE: &str = "LWOLF_DISK_WORKER";

// ---------------------------------------------------------------------------------------------
// Helpers

fn sandbox() -> Sandbox {
    registered(Sandbox::builder().client_secret(SECRET).start().unwrap())
}

/// `sandbox`, its entry made known to `file_json`.
fn registered(sandbox: Sandbox) -> Sandbox {
    at_rest::register(&at_rest::Who {
        token_url: &sandbox.token_url(),
        client_id: sandbox.client_id(),
        audience: lwolf_auth::defaults::DEFAULT_AUDIENCE,
        lwt_client_id: None,
        secret: SECRET,
    });
    sandbox
}

fn builder(sandbox: &Sandbox, dir: &Path) -> ConfigBuilder {
    sandbox
        .config_builder()
        .client_secret(SECRET)
        .cache_dir(dir)
        .retry_base(Duration::from_millis(10))
        .retry_max(Duration::from_millis(50))
}

fn client(sandbox: &Sandbox, dir: &Path) -> Client {
    Client::new(builder(sandbox, dir).build().unwrap())
}

/// The JSON the file seals.
fn file_json(path: &Path) -> serde_json::Value {
    at_rest::entry_of_file(path)
        .open(&fs::read(path).unwrap())
        .unwrap_or_else(|| panic!("{} does not open", path.display()))
}

fn file_token(path: &Path) -> String {
    file_json(path)["access_token"].as_str().unwrap().to_owned()
}

/// Rewrites the file's `obtained_at` to `age` ago, keeping it private.
fn age_file(path: &Path, age: Duration) {
    let aged = at_rest::entry_of_file(path).aged(&fs::read(path).unwrap(), age);
    replace_file(path, &aged);
}

fn replace_file(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

fn euid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

fn token_files(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "token"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_no_leak(token: &AccessToken, dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
    for (_, message) in logs_of_this_thread() {
        assert!(!message.contains(SECRET), "logged the secret: {message}");
        assert!(
            !message.contains(token.secret()),
            "logged a token: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A logger that keeps what each thread logged, so that a test can look at its own lines.

struct Capture;

static LINES: Mutex<Vec<(String, log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("lwolf_auth")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            LINES
                .lock()
                .unwrap()
                .push((thread, record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// What threads named `name` logged.
fn logs_of(name: &str) -> Vec<(log::Level, String)> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == name)
        .map(|(_, l, m)| (*l, m.clone()))
        .collect()
}

fn logs_of_this_thread() -> Vec<(log::Level, String)> {
    logs_of(std::thread::current().name().unwrap_or("?"))
}

fn warned(about: &str) -> bool {
    logs_of_this_thread()
        .iter()
        .any(|(level, m)| *level == log::Level::Warn && m.contains(about))
}

/// Fails the test unless it runs as root, which giving a file to another user needs.
fn require_root() {
    assert_eq!(
        euid(),
        0,
        "this test chowns a file to uid 65534, which needs root: run the suite as root \
         (CI does), or skip it with --skip another_user"
    );
}

// ---------------------------------------------------------------------------------------------
// Worker processes

/// This test binary, run as a worker in `mode`, with every inherited `LWOLF_*` removed.
fn worker_command(mode: &str) -> Command {
    let mut cmd = clean_command(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "worker",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(WORKER_MODE, mode)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// A worker that takes the lock on `lock` and holds it until killed; returned once it holds it.
fn lock_holder(lock: &Path) -> Child {
    let mut child = worker_command("hold")
        .env("LWOLF_DISK_LOCK", lock)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            // The harness may have printed `test worker ... ` on the same line.
            Some(Ok(line)) if line.ends_with("LOCKED") => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = child.kill();
                panic!("the lock holder stopped before taking the lock");
            }
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// The worker side, started by the tests below as a process of its own.
#[test]
#[ignore = "a helper process, run by the other tests of this file with LWOLF_DISK_WORKER set"]
fn worker() {
    let mode = std::env::var(WORKER_MODE).unwrap_or_else(|_| {
        panic!("`worker` is a helper process: the tests of this file run it with {WORKER_MODE} set")
    });
    match mode.as_str() {
        // Takes the lock and sleeps until killed.
        "hold" => {
            let path = std::env::var_os("LWOLF_DISK_LOCK").unwrap();
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap();
            file.lock().unwrap();
            println!("LOCKED");
            std::thread::sleep(Duration::from_secs(600));
            drop(file);
        }
        // LWOLF_DISK_THREADS threads, each with its own client from the environment, wait
        // until LWOLF_DISK_START_MS (UNIX ms), then ask for a token at the same moment.
        "fetch" => {
            let threads: usize = std::env::var("LWOLF_DISK_THREADS")
                .unwrap()
                .parse()
                .unwrap();
            let start: u64 = std::env::var("LWOLF_DISK_START_MS")
                .unwrap()
                .parse()
                .unwrap();
            let clients: Vec<Client> = (0..threads).map(|_| Client::from_env().unwrap()).collect();
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = clients
                .into_iter()
                .map(|client| {
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                        let at = Duration::from_millis(start);
                        if at > now {
                            std::thread::sleep(at - now);
                        }
                        barrier.wait();
                        client.token().unwrap().fingerprint().to_owned()
                    })
                })
                .collect();
            for handle in handles {
                println!("FINGERPRINT {}", handle.join().unwrap());
            }
        }
        other => panic!("unknown worker mode {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Many processes

#[test]
fn eight_processes_of_eight_threads_make_one_token_request() {
    let sandbox = sandbox();
    let tmp = TempDir::new("8x8");
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(1500);
    let children: Vec<Child> = (0..8)
        .map(|_| {
            worker_command("fetch")
                .env("LWOLF_DISK_THREADS", "8")
                .env("LWOLF_DISK_START_MS", start.as_millis().to_string())
                .env("LWOLF_CLIENT_ID", sandbox.client_id())
                .env("LWOLF_CLIENT_SECRET", SECRET)
                .env("LWOLF_TOKEN_URL", sandbox.token_url())
                .env("LWOLF_API_BASE_URL", sandbox.api_base_url())
                .env("LWOLF_CACHE_DIR", tmp.join("cache"))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut fingerprints = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "worker failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
        fingerprints.extend(
            stdout
                .lines()
                // The harness may have printed `test worker ... ` on the same line.
                .filter_map(|l| l.split_once("FINGERPRINT ").map(|(_, f)| f.to_owned())),
        );
    }
    assert_eq!(fingerprints.len(), 64);
    assert!(
        fingerprints.iter().all(|f| *f == fingerprints[0]),
        "{fingerprints:?}"
    );
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(sandbox.tokens_issued(), 1);

    let files = token_files(&tmp.join("cache"));
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&tmp.join("cache")), 0o700);
    assert_eq!(mode(&files[0]), 0o600);
    // A client started afterwards reads the same token, without asking for one.
    let late = client(&sandbox, &tmp.join("cache"));
    assert_eq!(late.token().unwrap().fingerprint(), fingerprints[0]);
    assert_eq!(late.cache_file(), Some(files[0].as_path()));
    assert_eq!(sandbox.token_requests(), 1);
}

#[test]
fn a_killed_lock_holder_does_not_wedge_the_others() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("killed");
    let probe = client(&sandbox, &tmp.join("cache"));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(tmp.join("cache"))
        .unwrap();
    let lock = probe.cache_file().unwrap().with_extension("lock");
    let mut holder = lock_holder(&lock);

    // Waiters with a bound far longer than the test: they must get the lock, not time out.
    let config = builder(&sandbox, &tmp.join("cache"))
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let client = Client::new(config.clone());
            std::thread::Builder::new()
                .name(format!("killed-holder-waiter-{i}"))
                .spawn(move || client.token().map(|t| t.fingerprint().to_owned()))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sandbox.token_requests(),
        0,
        "nobody fetched while the lock was held"
    );
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();

    let fingerprints: Vec<String> = waiters
        .into_iter()
        .map(|w| w.join().unwrap().unwrap())
        .collect();
    assert!(fingerprints.iter().all(|f| *f == fingerprints[0]));
    assert_eq!(sandbox.token_requests(), 1);
    for i in 0..4 {
        let lines = logs_of(&format!("killed-holder-waiter-{i}"));
        assert!(
            !lines.iter().any(|(_, m)| m.contains("without the lock")),
            "{lines:?}"
        );
    }
    // The dead holder's lock is gone for good.
    let file = fs::OpenOptions::new().write(true).open(&lock).unwrap();
    file.try_lock().unwrap();
}

#[test]
fn a_holder_that_never_lets_go_delays_the_others_by_the_bound_only() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("stuck");
    let probe = client(&sandbox, &tmp.join("cache"));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(tmp.join("cache"))
        .unwrap();
    let lock = probe.cache_file().unwrap().with_extension("lock");
    let mut holder = lock_holder(&lock);

    let result = std::thread::Builder::new()
        .name("stuck-holder-waiter".into())
        .spawn({
            let client = Client::new(
                // It waits until its deadline less one attempt's time, then fetches.
                builder(&sandbox, &tmp.join("cache"))
                    .timeout(Duration::from_millis(400))
                    .deadline(Duration::from_millis(1200))
                    .build()
                    .unwrap(),
            );
            move || client.token()
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = holder.kill();
    let _ = holder.wait();

    let token = result.unwrap();
    assert_eq!(sandbox.token_requests(), 1);
    assert!(logs_of("stuck-holder-waiter")
        .iter()
        .any(|(l, m)| *l == log::Level::Warn && m.contains("going on without the lock")));
    // Written all the same (the rename needs no lock).
    assert_eq!(file_token(probe.cache_file().unwrap()), token.secret());
}

// ---------------------------------------------------------------------------------------------
// Reading, trusting and replacing the file

#[test]
fn a_second_client_reads_the_token_from_the_file() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("second");
    let a = client(&sandbox, &tmp.join("cache"));
    let first = a.token().unwrap();
    let b = client(&sandbox, &tmp.join("cache"));
    let second = b.token().unwrap();
    assert_eq!(first.secret(), second.secret());
    assert_eq!(sandbox.token_requests(), 1);
    // The times come back from the wall clock (to the microsecond or so).
    let drift = |x: SystemTime, y: SystemTime| {
        x.duration_since(y)
            .unwrap_or_else(|e| e.duration())
            .as_secs_f64()
    };
    assert!(drift(first.expires_at(), second.expires_at()) < 0.01);
    assert_eq!(first.lifetime(), second.lifetime());

    let file = a.cache_file().unwrap();
    let json = file_json(file);
    assert_eq!(json["lifetime"], 86_400.0);
    assert_eq!(json["access_token"], first.secret());
    assert_eq!(fs::read(file).unwrap()[0], 1, "the format version");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), 32 + ".token".len());
    assert!(name[..32].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_no_leak(&first, &tmp.join("cache"));
}

#[test]
fn a_token_in_memory_never_touches_the_disk() {
    let sandbox = sandbox();
    let tmp = TempDir::new("memory");
    let client = client(&sandbox, &tmp.join("cache"));
    let first = client.token().unwrap();
    fs::remove_dir_all(tmp.join("cache")).unwrap();
    for _ in 0..100 {
        assert_eq!(client.token().unwrap().secret(), first.secret());
    }
    assert!(
        !tmp.join("cache").exists(),
        "the cache directory was looked at again"
    );
    assert_eq!(sandbox.token_requests(), 1);
}

#[test]
fn unset_cache_dir_writes_nothing() {
    let sandbox = sandbox();
    let client = Client::new(sandbox.config_builder().build().unwrap());
    assert_eq!(client.cache_file(), None);
    assert_eq!(client.config().cache_dir(), None);
    client.token().unwrap();
    let mut b = sandbox.config_builder().cache_dir("/somewhere");
    b.set("cache_dir", "").unwrap();
    assert_eq!(b.build().unwrap().cache_dir(), None);
}

/// Client A gets a token; the file is then spoiled by `spoil`; client B must refuse it, fetch a
/// new token and replace the file with a sound one.
fn replaced_after(tag: &str, spoil: impl FnOnce(&Path)) {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new(tag);
    let a = client(&sandbox, &tmp.join("cache"));
    let old = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    spoil(&file);

    let b = client(&sandbox, &tmp.join("cache"));
    let new = b.token().unwrap();
    assert_ne!(
        new.secret(),
        old.secret(),
        "{tag}: the spoiled file was used"
    );
    assert_eq!(sandbox.token_requests(), 2, "{tag}");
    assert_eq!(file_token(&file), new.secret(), "{tag}: not replaced");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(fs::metadata(&file).unwrap().uid(), euid());
    // And the replacement serves the next process.
    let c = client(&sandbox, &tmp.join("cache"));
    assert_eq!(c.token().unwrap().secret(), new.secret());
    assert_eq!(sandbox.token_requests(), 2, "{tag}");
    assert_no_leak(&new, &tmp.join("cache"));
}

#[test]
fn a_corrupt_file_is_replaced() {
    replaced_after("corrupt", |f| replace_file(f, b"\x00\xffnot json at all"));
    assert!(warned("corrupt"));
}

#[test]
fn a_truncated_file_is_replaced() {
    replaced_after("truncated", |f| {
        let bytes = fs::read(f).unwrap();
        replace_file(f, &bytes[..bytes.len() / 2]);
    });
    assert!(warned("truncated"));
}

#[test]
fn an_empty_file_is_replaced() {
    replaced_after("empty", |f| replace_file(f, b""));
}

#[test]
fn a_file_of_an_unknown_version_is_replaced() {
    replaced_after("version", |f| {
        let mut bytes = fs::read(f).unwrap();
        bytes[0] = 2;
        replace_file(f, &bytes);
    });
    assert!(warned("unknown version"));
}

#[test]
fn an_altered_file_is_replaced() {
    replaced_after("altered", |f| {
        let mut bytes = fs::read(f).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        replace_file(f, &bytes);
    });
    assert!(warned("does not authenticate"));
}

#[test]
fn a_file_sealed_under_another_credential_is_replaced() {
    replaced_after("credential", |f| {
        let mut json = file_json(f);
        json["access_token"] = "planted-token".into();
        let stranger = at_rest::Entry::of(&at_rest::Who {
            token_url: "x",
            client_id: "x",
            audience: "x",
            lwt_client_id: None,
            secret: "another secret",
        });
        replace_file(f, &stranger.seal(&json));
    });
    assert!(warned("does not authenticate"));
}

#[test]
fn a_file_readable_by_others_is_not_trusted() {
    replaced_after("mode", |f| {
        fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
    });
    assert!(warned("refusing"));
}

#[test]
fn a_file_of_another_user_is_not_trusted() {
    require_root();
    replaced_after("owner", |f| {
        std::os::unix::fs::chown(f, Some(65534), Some(65534)).unwrap();
    });
    assert!(warned("owned by uid 65534"));
}

#[test]
fn an_expired_token_on_disk_is_fetched_anew() {
    replaced_after("expired", |f| age_file(f, Duration::from_secs(2 * 86_400)));
}

#[test]
fn a_directory_open_to_others_is_not_used() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("opendir");
    // A sound file in a directory that was then opened up: neither read nor written.
    let a = client(&sandbox, &tmp.join("cache"));
    let first = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    fs::set_permissions(tmp.join("cache"), fs::Permissions::from_mode(0o755)).unwrap();
    let b = client(&sandbox, &tmp.join("cache"));
    let second = b.token().unwrap();
    assert_ne!(
        second.secret(),
        first.secret(),
        "read from a dir open to others"
    );
    assert_eq!(sandbox.token_requests(), 2);
    assert!(warned("refusing the token cache directory"));
    // Said once as a warning; each later use says it again at DEBUG only.
    b.invalidate();
    b.token().unwrap();
    let said = |level: log::Level| {
        logs_of_this_thread()
            .iter()
            .filter(|(l, m)| *l == level && m.contains("refusing the token cache directory"))
            .count()
    };
    assert_eq!(said(log::Level::Warn), 1);
    assert!(said(log::Level::Debug) >= 1);
    assert_eq!(
        file_token(&file),
        first.secret(),
        "wrote into a dir open to others"
    );
    assert_eq!(
        mode(&tmp.join("cache")),
        0o755,
        "the directory is the user's to fix"
    );

    // A directory that was open from the start is not written into at all.
    let open = tmp.join("open");
    fs::DirBuilder::new().mode(0o755).create(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    client(&sandbox, &open).token().unwrap();
    assert!(fs::read_dir(&open).unwrap().next().is_none());
}

#[test]
fn a_directory_of_another_user_is_not_used() {
    require_root();
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("otherdir");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(tmp.join("cache"))
        .unwrap();
    std::os::unix::fs::chown(tmp.join("cache"), Some(65534), Some(65534)).unwrap();
    let a = client(&sandbox, &tmp.join("cache"));
    a.token().unwrap();
    assert!(warned("owned by uid 65534"));
    assert!(token_files(&tmp.join("cache")).is_empty());
}

#[test]
fn the_directory_is_created_private() {
    let sandbox = sandbox();
    let tmp = TempDir::new("create");
    let nested = tmp.join("a").join("b");
    let client = client(&sandbox, &nested);
    client.token().unwrap();
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(client.cache_file().unwrap()), 0o600);
    let lock = client.cache_file().unwrap().with_extension("lock");
    assert_eq!(mode(&lock), 0o600);
    // No temp file is left behind.
    let names: Vec<_> = fs::read_dir(&nested)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// Refresh ahead, failures and rejections

#[test]
fn a_due_token_on_disk_is_refreshed() {
    let sandbox = sandbox();
    let tmp = TempDir::new("due");
    let a = client(&sandbox, &tmp.join("cache"));
    let old = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    // Past 0.9 (and the jitter) of a day, before the one-minute margin.
    age_file(&file, Duration::from_secs(86_400 - 600));

    let b = client(&sandbox, &tmp.join("cache"));
    let new = b.token().unwrap();
    assert_ne!(new.secret(), old.secret());
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(file_token(&file), new.secret());
}

#[test]
fn a_due_token_on_disk_is_served_when_its_refresh_fails() {
    capture_logs();
    // One token request a second: the refresh right after the first is turned away (429).
    let sandbox = registered(
        Sandbox::builder()
            .client_secret(SECRET)
            .rate_limit(1)
            .start()
            .unwrap(),
    );
    let tmp = TempDir::new("duefail");
    let a = client(&sandbox, &tmp.join("cache"));
    let old = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    age_file(&file, Duration::from_secs(86_400 - 600));

    let b = Client::new(
        builder(&sandbox, &tmp.join("cache"))
            .max_retries(0)
            .build()
            .unwrap(),
    );
    let served = b.token().unwrap();
    assert_eq!(served.secret(), old.secret());
    assert_eq!(sandbox.token_requests(), 2);
    assert!(warned("serving token"));
    // The next refresh waits for the shared backoff instead of hammering the gateway.
    assert_eq!(b.token().unwrap().secret(), old.secret());
    assert!(sandbox.token_requests() <= 3);
    assert_eq!(
        file_token(&file),
        old.secret(),
        "a failure must not touch the file"
    );
}

#[test]
fn a_token_on_disk_that_the_api_rejects_is_replaced() {
    let sandbox = sandbox();
    let tmp = TempDir::new("rejected");
    let a = client(&sandbox, &tmp.join("cache"));
    let old = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    sandbox.expire_tokens();

    // B reads the dead token from the file, gets one 401, drops it, fetches one new token.
    let b = client(&sandbox, &tmp.join("cache"));
    let response = b.get("/v1/transactions").send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sandbox.api_requests(), 2);
    assert_eq!(sandbox.token_requests(), 2);
    let new = b.cached_token().unwrap();
    assert_ne!(new.secret(), old.secret());
    assert_eq!(file_token(&file), new.secret());

    // A still holds the dead token in memory: one 401, then B's token from the file,
    // and no new token request.
    assert_eq!(a.get("/v1/offices").send().unwrap().status(), 200);
    assert_eq!(sandbox.api_requests(), 4);
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(a.cached_token().unwrap().secret(), new.secret());
    assert_eq!(
        file_token(&file),
        new.secret(),
        "B's good token was dropped"
    );
}

#[test]
fn invalidate_drops_the_file_too() {
    let sandbox = sandbox();
    let tmp = TempDir::new("invalidate");
    let a = client(&sandbox, &tmp.join("cache"));
    let old = a.token().unwrap();
    a.invalidate();
    assert!(!a.cache_file().unwrap().exists());
    let new = a.token().unwrap();
    assert_ne!(new.secret(), old.secret());
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(file_token(a.cache_file().unwrap()), new.secret());
}

#[test]
fn tenants_have_files_of_their_own() {
    let sandbox = sandbox();
    let tmp = TempDir::new("tenants");
    let a = client(&sandbox, &tmp.join("cache"));
    let t1 = a.for_tenant("customer-1").unwrap();
    let t2 = a.for_tenant("customer-2").unwrap();
    let files = [a.cache_file(), t1.cache_file(), t2.cache_file()];
    assert!(files[0] != files[1] && files[1] != files[2] && files[0] != files[2]);
    let tokens: Vec<_> = [&a, &t1, &t2].iter().map(|c| c.token().unwrap()).collect();
    assert_eq!(token_files(&tmp.join("cache")).len(), 3);
    // Another process's tenant client finds its own.
    let again = client(&sandbox, &tmp.join("cache"))
        .for_tenant("customer-2")
        .unwrap();
    assert_eq!(again.token().unwrap().secret(), tokens[2].secret());
    assert_eq!(sandbox.token_requests(), 3);
    for t in &tokens {
        assert_no_leak(t, &tmp.join("cache"));
    }
}

#[test]
fn an_environment_cache_dir_is_used() {
    // Through ConfigBuilder::set, which is what LWOLF_CACHE_DIR and lwolf_config_set use.
    let sandbox = sandbox();
    let tmp = TempDir::new("setkey");
    let mut b = sandbox.config_builder();
    b.set("cache_dir", tmp.join("cache").to_str().unwrap())
        .unwrap();
    let config = b.build().unwrap();
    assert_eq!(config.cache_dir(), Some(tmp.join("cache").as_path()));
    let client = Client::new(config);
    client.token().unwrap();
    assert!(client.cache_file().unwrap().exists());
    assert!(lwolf_auth::CONFIG_KEYS.contains(&"cache_dir"));
}

// ---------------------------------------------------------------------------------------------
// The identity takes in the credential; links, parents and leftovers

#[test]
fn a_rotated_secret_is_never_served_the_old_token() {
    let sandbox = sandbox();
    let tmp = TempDir::new("rotated");
    let a = client(&sandbox, &tmp.join("cache"));
    a.token().unwrap();
    // The gateway accepts only SECRET: a client with another secret has a file of its own,
    // and hears the gateway's refusal instead of being handed the other secret's token.
    let b = Client::new(
        builder(&sandbox, &tmp.join("cache"))
            .client_secret("rotated-or-wrong")
            .max_retries(0)
            .build()
            .unwrap(),
    );
    assert_ne!(a.cache_file(), b.cache_file());
    let err = b.token().unwrap_err();
    assert!(
        matches!(err, lwolf_auth::Error::InvalidCredentials(_)),
        "a wrong secret was served a token: {err:?}"
    );
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(token_files(&tmp.join("cache")).len(), 1);
}

#[test]
fn links_in_the_directory_are_not_followed() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("links");
    let dir = tmp.join("cache");
    let a = client(&sandbox, &dir);
    let first = a.token().unwrap();
    let file = a.cache_file().unwrap().to_owned();
    let entry = at_rest::entry_of_file(&file);
    // The sound file moved elsewhere, a link to it in its place.
    let elsewhere = tmp.join("elsewhere.token");
    fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    // And the lock file a link to a file outside.
    let lock = file.with_extension("lock");
    let _ = fs::remove_file(&lock);
    let victim = tmp.join("victim");
    fs::write(&victim, b"untouched").unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();

    let b = client(&sandbox, &dir);
    let second = b.token().unwrap();
    assert_ne!(second.secret(), first.secret(), "read through a link");
    assert_eq!(sandbox.token_requests(), 2);
    assert!(warned("refusing the shared token cache"));
    assert!(warned("cannot open the lock file"));
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
    let moved = entry.open(&fs::read(&elsewhere).unwrap()).unwrap();
    assert_eq!(
        moved["access_token"],
        first.secret(),
        "wrote through a link"
    );
    // The write replaced the link with a file.
    assert!(fs::symlink_metadata(&file).unwrap().is_file());
    assert_eq!(file_token(&file), second.secret());
}

#[test]
fn a_parent_open_to_everyone_without_the_sticky_bit_is_refused() {
    capture_logs();
    let sandbox = sandbox();
    let tmp = TempDir::new("parents");
    let open = tmp.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let client_in_open = client(&sandbox, &open.join("cache"));
    client_in_open.token().unwrap();
    assert!(warned("writable by group or others without the sticky bit"));
    assert!(token_files(&open.join("cache")).is_empty());

    // The sticky bit (as on /tmp) makes it safe: others cannot rename what is ours.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let sticky = client(&sandbox, &open.join("cache"));
    sticky.token().unwrap();
    assert_eq!(token_files(&open.join("cache")).len(), 1);
}

#[test]
fn leftovers_are_swept() {
    let sandbox = sandbox();
    let tmp = TempDir::new("sweep");
    let dir = tmp.join("cache");
    fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let put = |name: &str, at: SystemTime| {
        let path = dir.join(name);
        fs::write(&path, b"{\"version\":1,\"access_token\":\"plain\"}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(at)
            .unwrap();
        path
    };
    let stem = "0123456789abcdef0123456789abcdef";
    let legacy = put(&format!("{stem}.json"), SystemTime::now());
    let dead_tmp = put(&format!("{stem}.123-0-ab.tmp"), old);
    let live_tmp = put(&format!("{stem}.124-0-ab.tmp"), SystemTime::now());
    let stray_lock = put(&format!("{stem}.lock"), old);
    let stray_renewed = put(&format!("{stem}.renewed"), old);
    let fresh_lock = put("fedcba9876543210fedcba9876543210.lock", SystemTime::now());
    let other = put("notes.txt", old);
    // A lock file someone holds stays, however old.
    let held_stem = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let held = put(&format!("{held_stem}.lock"), old);
    let holder = fs::File::open(&held).unwrap();
    holder.lock().unwrap();

    client(&sandbox, &dir).token().unwrap();
    for gone in [&legacy, &dead_tmp, &stray_lock, &stray_renewed] {
        assert!(!gone.exists(), "{} was not swept", gone.display());
    }
    for kept in [&live_tmp, &fresh_lock, &other, &held] {
        assert!(kept.exists(), "{} was swept", kept.display());
    }
    drop(holder);
}
