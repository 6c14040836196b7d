//! `cargo xtask <task>`: the workspace's tasks that are not `cargo build`.
//!
//! ```text
//! cargo xtask test            every test there is, after installing what they need
//! cargo xtask deps [--check]  install what the tests need (or only say what is missing)
//! cargo xtask header [--check]  refresh include/lwolf_auth.h (or check it is current)
//! cargo xtask bench           the comparisons of BENCHMARKS.md (benches/run.sh)
//! cargo xtask windows         the Windows SDK in target/dist/windows-x64/ (and its zip)
//! cargo xtask dist            every release artifact in target/dist/ (docs/packages.md)
//! cargo xtask abi [--update]  check the header against abi/ (or record it there)
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use xtask::{abi, header, root};

mod deps;
mod dist;
mod windows;

const USAGE: &str =
    "usage: cargo xtask test | deps [--check] | header [--check] | bench | windows | dist | abi [--update]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["test"] => test(),
        ["deps"] => deps::install().map(|_| ()),
        ["deps", "--check"] => deps::check(),
        ["header"] => write_header(),
        ["header", "--check"] => check_header(),
        ["bench"] => run(Command::new("benches/run.sh").current_dir(root())),
        ["windows"] => windows::build().map(drop),
        ["dist"] => deps::install().and_then(|_| dist::build()),
        ["abi"] => abi::check(None),
        ["abi", "--update"] => abi::update(),
        ["-h"] | ["--help"] | [] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown task\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("xtask: {why}");
            ExitCode::FAILURE
        }
    }
}

fn write_header() -> Result<(), String> {
    let generated = header::generate()?;
    std::fs::write(header::committed_path(), generated).map_err(|e| e.to_string())?;
    println!("wrote include/lwolf_auth.h");
    Ok(())
}

fn check_header() -> Result<(), String> {
    let generated = header::generate()?;
    let committed = std::fs::read_to_string(header::committed_path()).unwrap_or_default();
    match header::first_difference(&generated, &committed) {
        None => Ok(()),
        Some(at) => Err(format!(
            "include/lwolf_auth.h is out of date: run cargo xtask header.\nFirst difference at {at}"
        )),
    }
}

/// Every test: the tools they need installed (or the command that would), then the checks
/// CI makes, the Windows build, the whole workspace's tests (the Windows SDK's under Wine
/// among them), and the clock-bound suites again at a simulated uptime of 30 s and of two
/// days.
fn test() -> Result<(), String> {
    let started = Instant::now();
    let env = deps::install()?;
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new(cargo_program());
        cmd.current_dir(root()).args(args).envs(env.vars());
        cmd
    };
    step("fmt", cargo(&["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut doc = cargo(&["doc", "--workspace", "--no-deps", "--all-features"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    step("doc", doc)?;
    step(
        "benches build",
        cargo(&["bench", "--workspace", "--no-run", "--all-features"]),
    )?;
    // The release artifacts (the Windows SDK's among them): tests/packages.rs installs them.
    println!("== dist");
    let dist_started = Instant::now();
    dist::build()?;
    println!("== dist: {:.0} s", dist_started.elapsed().as_secs_f64());
    step(
        "tests",
        cargo(&["test", "--workspace", "--all-features", "--no-fail-fast"]),
    )?;
    println!("== the core's tests for Windows, under Wine");
    let core_started = Instant::now();
    windows::test_core()?;
    println!(
        "== the core's tests for Windows: {:.0} s",
        core_started.elapsed().as_secs_f64()
    );
    // No result may depend on how long the machine has been up: the suites of the clock
    // (the core library's) again as if it had booted 30 s ago, and as if it had been up for
    // two days. A time namespace moves the monotonic and boot clocks; the wall clock is the
    // machine's.
    let uptime = uptime_secs()?;
    for target in [30i64, 172_800] {
        let offset = (target - uptime).to_string();
        let mut cmd = Command::new("unshare");
        if !deps::is_root() {
            // A user namespace of our own, where a time namespace needs no privilege.
            cmd.arg("--map-root-user");
        }
        cmd.current_dir(root())
            .args([
                "--time",
                "--fork",
                "--monotonic",
                &offset,
                "--boottime",
                &offset,
                "--",
            ])
            .arg(cargo_program())
            .args(["test", "-p", "lwolf-auth", "--all-features"])
            .envs(env.vars());
        step(&format!("the core's tests at an uptime of {target} s"), cmd)?;
    }
    println!(
        "== every test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn uptime_secs() -> Result<i64, String> {
    let text = std::fs::read_to_string("/proc/uptime").map_err(|e| format!("/proc/uptime: {e}"))?;
    text.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "cannot read /proc/uptime".into())
}

fn step(name: &str, mut cmd: Command) -> Result<(), String> {
    println!("== {name}");
    let started = Instant::now();
    run(&mut cmd)?;
    println!("== {name}: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed ({status})", cmd.get_program()))
    }
}

/// The cargo running this task.
fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// `dir` relative to the workspace, for messages.
fn shown(dir: &Path) -> PathBuf {
    dir.strip_prefix(root()).unwrap_or(dir).to_owned()
}
