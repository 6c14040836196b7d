//! Runs the Python bindings' tests (`bindings/python/test_lwolf_auth.py`, plain unittest)
//! against the release library and the sandbox example run as a process.
//!
//! Needs `python3`: a missing one fails the test with what to install.

mod ffi_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ffi_support::{c_library, cargo, clean_command, expect_success, repo_root, require_tool, run};

/// The sandbox example of this build (`cargo test` builds examples), or built now when this
/// test runs alone (`cargo test --test python`).
fn sandbox_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/python-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in <target>/<profile>/deps");
    let binary = profile_dir.join("examples/sandbox");
    if !binary.is_file() {
        let target_dir = profile_dir.parent().expect("<target>");
        let mut cmd = Command::new(cargo());
        cmd.current_dir(repo_root())
            .args(["build", "--example", "sandbox", "--features", "sandbox"])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        expect_success(
            &run(&mut cmd, Duration::from_secs(30 * 60)),
            "cargo build --example sandbox",
        );
    }
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

#[test]
fn python_bindings_unittest() {
    let python = require_tool("python3", "python3");
    let sandbox = sandbox_binary();
    let lib = c_library();
    let started = Instant::now();
    let mut cmd = clean_command(python);
    cmd.current_dir(repo_root().join("bindings/python"))
        .args(["-m", "unittest", "-v", "test_lwolf_auth"])
        .env("LWOLF_AUTH_LIB", lib.dir.join("liblwolf_auth.so"))
        .env("LWOLF_SANDBOX_BIN", &sandbox)
        .env("LWOLF_EXPECT_TEST_PANIC", "1")
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("RUST_BACKTRACE", "0");
    let out = run(&mut cmd, Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 -m unittest failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ran: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `Ran N tests` line:\n{stderr}"));
    assert!(ran >= 20, "only {ran} Python tests ran:\n{stderr}");
    assert!(
        !stderr.contains("skipped"),
        "a Python test was skipped:\n{stderr}"
    );
    eprintln!("{ran} Python tests in {:.1?}", started.elapsed());
}
