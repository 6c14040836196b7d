//! Runs the Python bindings' tests (`bindings/python/test_lwolf_auth.py` and
//! `test_api_rules.py`, plain unittest)
//! against the release library and the sandbox example run as a process.
//!
//! Needs `python3`: a missing one fails the test with what to install.

use lwolf_test_support::ffi_support;

use std::process::Command;
use std::time::{Duration, Instant};

use ffi_support::{c_library, clean_command, expect_success, repo_root, require_tool, run};

/// The sandbox example of this build (`cargo test` builds examples), or built now when this
/// test runs alone (`cargo test --test python`).
#[test]
fn python_bindings_unittest() {
    let python = require_tool("python3", "python3");
    let sandbox = ffi_support::sandbox_binary();
    let lib = c_library();
    let started = Instant::now();
    let mut cmd = clean_command(python);
    cmd.current_dir(repo_root().join("bindings/python"))
        .args(["-m", "unittest", "-v", "test_lwolf_auth", "test_api_rules"])
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

/// `pip install ./bindings/python` into a fresh virtual environment builds the library and
/// bundles it: `import lwolf_auth` then works from a directory outside the tree, with no
/// `LWOLF_AUTH_LIB` and no `PYTHONPATH`, and loads the library from the installed package.
///
/// No network: the build needs setuptools and wheel, which are installed into the fresh
/// venv from the wheels `cargo xtask test` downloads to `target/wheelhouse`
/// (`LWOLF_WHEELHOUSE`), and pip runs `--no-index`.
#[test]
fn pip_installs_a_package_that_works_from_anywhere() {
    let python = require_tool("python3", "python3");
    let wheelhouse = std::env::var_os("LWOLF_WHEELHOUSE")
        .map(std::path::PathBuf::from)
        .filter(|w| w.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "this test installs setuptools and wheel from LWOLF_WHEELHOUSE, a directory of \
                 wheels; `cargo xtask test` fills target/wheelhouse and sets it"
            )
        });
    let dir = ffi_support::scratch_dir("pip-venv");
    let venv = dir.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    expect_success(
        &run(
            clean_command(&python).args(["-m", "venv"]).arg(&venv),
            Duration::from_secs(120),
        ),
        "python3 -m venv",
    );
    let mut tools = clean_command(venv.join("bin/pip"));
    tools
        .args(["install", "--no-index", "--quiet", "--find-links"])
        .arg(&wheelhouse)
        .args(["setuptools", "wheel"]);
    expect_success(
        &run(&mut tools, Duration::from_secs(300)),
        "pip install setuptools wheel (from the wheelhouse)",
    );
    let started = Instant::now();
    let mut pip = clean_command(venv.join("bin/pip"));
    pip.args(["install", "--no-build-isolation", "--no-index", "--quiet"])
        .arg(repo_root().join("bindings/python"))
        .env_remove("PYTHONPATH")
        .env_remove("CARGO_TARGET_DIR");
    expect_success(
        &run(&mut pip, Duration::from_secs(30 * 60)),
        "pip install ./bindings/python",
    );
    eprintln!("pip install: {:.1?}", started.elapsed());

    let sandbox = lwolf_sandbox::Sandbox::start().expect("sandbox");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let script = "import lwolf_auth, os\n\
                  print('library', lwolf_auth.library_path())\n\
                  here = os.path.dirname(lwolf_auth.__file__)\n\
                  print('typed', all(os.path.exists(os.path.join(here, f)) for f in ('py.typed', '__init__.pyi')))\n\
                  with lwolf_auth.Client.from_env() as c:\n\
                  \x20   print('status', c.get('/v1/offices').status_code)\n";
    let mut cmd = clean_command(venv.join("bin/python"));
    cmd.args(["-c", script])
        .current_dir(&elsewhere)
        .env_remove("PYTHONPATH")
        .env_remove("LWOLF_AUTH_LIB");
    ffi_support::sandbox_env(&mut cmd, &sandbox);
    let stdout = expect_success(
        &run(&mut cmd, Duration::from_secs(120)),
        "the installed package",
    );
    let library = stdout
        .lines()
        .find_map(|l| l.strip_prefix("library "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        library.starts_with(venv.to_str().unwrap()),
        "loaded {library}, not the library bundled in the venv"
    );
    assert!(stdout.contains("status 200"), "{stdout}");
    assert!(
        stdout.contains("typed True"),
        "py.typed or the stub not installed: {stdout}"
    );
    // What the build leaves in the source tree (build/, *.egg-info) is ignored by git.
    let status = run(
        Command::new("git").current_dir(repo_root()).args([
            "status",
            "--porcelain",
            "--untracked-files=all",
            "bindings/python",
        ]),
        Duration::from_secs(60),
    );
    let stray: Vec<String> = String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter(|l| l.starts_with("??") && (l.contains("/build/") || l.contains(".egg-info")))
        .map(str::to_owned)
        .collect();
    assert!(stray.is_empty(), "pip left files git sees: {stray:?}");
}
