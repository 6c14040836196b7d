//! Shared by the tests that drive the C ABI from outside Rust (`tests/c_abi.rs`,
//! `tests/python.rs`): building the library as C users get it, finding tools, running
//! programs with a time limit, and pointing them at a sandbox.
//!
//! A missing tool (C compiler, make, valgrind, pkg-config, python3) FAILS the test with a
//! message saying what to install; it never passes silently.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The workspace's root directory.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
}

/// The target directory the running test was built into (`<target>/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("<target>/<profile>")
        .to_owned()
}

/// `<target>/<profile>` of the running test.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe
        .parent()
        .expect("the test binary sits in <target>/<profile>/deps");
    deps.parent().expect("<target>/<profile>").to_owned()
}

/// `<target>/tmp`: scratch space for the tests, as cargo's `CARGO_TARGET_TMPDIR`.
pub fn target_tmp() -> PathBuf {
    target_dir().join("tmp")
}

/// A directory for this test's files under `target/tmp`, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_tmp().join("lwolf-ffi").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The library as C users build it: `liblwolf_auth.so` and `liblwolf_auth.a` in release mode.
pub struct CLibrary {
    /// Holds `liblwolf_auth.so` and `liblwolf_auth.a`.
    pub dir: PathBuf,
    /// What `--print native-static-libs` printed: the system libraries a static link needs.
    pub native_static_libs: String,
    /// How long the (possibly cached) build took.
    pub build_time: Duration,
}

/// The library built once per test binary, with `cargo rustc -p lwolf-auth-ffi --release
/// --lib --crate-type cdylib,staticlib --features ffi-test-panic -- --print
/// native-static-libs` into its own target directory (`target/tmp/c-abi-target`), so that
/// it never disturbs `target/release` and the test-only panic hook never reaches a real
/// build. Cargo's own lock serialises this between test binaries; after the first build it
/// is a no-op that replays the cached `native-static-libs` note.
pub fn c_library() -> &'static CLibrary {
    static LIB: OnceLock<CLibrary> = OnceLock::new();
    LIB.get_or_init(|| {
        let target_dir = target_tmp().join("c-abi-target");
        let started = Instant::now();
        let mut cmd = Command::new(cargo());
        cmd.current_dir(repo_root())
            .args([
                "rustc",
                "-p",
                "lwolf-auth-ffi",
                "--release",
                "--lib",
                "--crate-type",
                "cdylib,staticlib",
                "--features",
                "ffi-test-panic",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--", "--print", "native-static-libs"])
            .env_remove("CARGO_TARGET_DIR");
        let out = run(&mut cmd, Duration::from_secs(30 * 60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "building the release library failed:\n{stderr}"
        );
        let native_static_libs = stderr
            .lines()
            .find_map(|l| l.split_once("native-static-libs: ").map(|(_, v)| v.trim()))
            .unwrap_or_else(|| panic!("no native-static-libs line in:\n{stderr}"))
            .to_owned();
        let dir = target_dir.join("release");
        for lib in ["liblwolf_auth.so", "liblwolf_auth.a"] {
            assert!(
                dir.join(lib).is_file(),
                "{lib} was not built in {}",
                dir.display()
            );
        }
        CLibrary {
            dir,
            native_static_libs,
            build_time: started.elapsed(),
        }
    })
}

/// The cargo that runs these tests.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Fails the test unless `tool` is on the PATH.
pub fn require_tool(tool: &str, debian_package: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed, and this test needs it \
             (on Debian/Ubuntu: apt-get install {debian_package}; .ci/run does this)"
        )
    })
}

/// `tool`'s path on the PATH, if any.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Runs `cmd` to completion with stdout and stderr captured; kills it and fails the test
/// when it takes longer than `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_with_limit(&mut child, limit, &what)
}

fn wait_with_limit(child: &mut Child, limit: Duration, what: &str) -> Output {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let err = err_reader.join().unwrap_or_default();
                panic!(
                    "{what} did not finish within {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A command with no inherited `LWOLF_*` variable, so the developer's own settings cannot
/// leak into a test, and without the `LD_LIBRARY_PATH` cargo gives test binaries (it names
/// `target/debug`, whose `liblwolf_auth.so.0` would win over a program's own run path).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LWOLF_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Sets the `LWOLF_*` variables that point at `sandbox`.
pub fn sandbox_env(cmd: &mut Command, sandbox: &lwolf_sandbox::Sandbox) {
    cmd.env("LWOLF_TOKEN_URL", sandbox.token_url())
        .env("LWOLF_API_BASE_URL", sandbox.api_base_url())
        .env("LWOLF_CLIENT_ID", sandbox.client_id())
        .env("LWOLF_CLIENT_SECRET", sandbox.client_secret())
        .env("LWOLF_SUBSCRIPTION_KEY", sandbox.subscription_key())
        .env("LWOLF_TRANSACT_BASE_URL", sandbox.transact_base_url());
}

/// Builds `make -C examples-c <targets>` against [`c_library`] into a scratch directory
/// named `name`; returns the build directory (programs under `dynamic/`).
pub fn make_examples(targets: &[&str], name: &str) -> PathBuf {
    require_tool("cc", "gcc");
    require_tool("make", "make");
    let lib = c_library();
    let builddir = scratch_dir(name);
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(repo_root().join("examples-c"))
        .args(targets)
        .arg(format!("LIBDIR={}", lib.dir.display()))
        .arg(format!("BUILDDIR={}", builddir.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    expect_success(
        &run(&mut make, Duration::from_secs(300)),
        &format!("make {}", targets.join(" ")),
    );
    builddir
}

/// The `lwolf-sandbox` program, built for the profile of this test binary (other
/// languages' tests run it as a process).
pub fn sandbox_binary() -> PathBuf {
    workspace_binary("lwolf-sandbox", "lwolf-sandbox")
}

/// The `lwolf` tool, built for the profile of this test binary.
pub fn lwolf_binary() -> PathBuf {
    workspace_binary("lwolf-cli", "lwolf")
}

/// The binary `name` of the workspace's package `package`, for the profile of this test
/// binary: built now if it is not there yet (a test run alone), once per test binary.
fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let profile_dir = profile_dir();
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(repo_root())
            .args(["build", "-p", package, "--bin", name])
            .arg("--target-dir")
            .arg(target_dir());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        expect_success(
            &run(&mut cmd, Duration::from_secs(30 * 60)),
            &format!("cargo build -p {package} --bin {name}"),
        );
        built.push(name.to_owned());
    }
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

/// `make install PREFIX=<prefix>` of [`c_library`]'s build, as a user runs it.
pub fn make_install(prefix: &Path) {
    let lib = c_library();
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(repo_root())
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("CARGO_LIBDIR={}", lib.dir.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    expect_success(&run(&mut make, Duration::from_secs(120)), "make install");
}

/// Fails with the program's output unless it exited with 0; returns its stdout.
pub fn expect_success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
