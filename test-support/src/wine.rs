//! Windows programs under Wine 8.0, in the prefix `cargo xtask windows` makes, against a
//! sandbox on this machine (Wine's processes share its loopback).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ffi_support::{clean_command, expect_success, repo_root, run, sandbox_env};
use lwolf_sandbox::Sandbox;

/// How long one Windows program may take.
pub const LIMIT: Duration = Duration::from_secs(180);

/// The SDK's folder; it must have been built.
pub fn dist() -> PathBuf {
    let dist = repo_root().join("target/dist/windows-x64");
    assert!(
        dist.join("bin/lwolf_auth.dll").is_file(),
        "{} has no bin/lwolf_auth.dll: run `cargo xtask windows` (`cargo xtask test` does)",
        dist.display()
    );
    dist
}

pub fn wine_prefix() -> PathBuf {
    let prefix = repo_root().join("target/windows/wine");
    assert!(
        prefix
            .join("drive_c/windows/system32/bcryptprimitives.dll")
            .is_file(),
        "the Wine prefix {} is not ready: run `cargo xtask windows`",
        prefix.display()
    );
    prefix
}

/// A Windows program under Wine, in `dir`, with the sandbox's settings.
pub fn wine(program: &Path, args: &[&str], sandbox: &Sandbox) -> Command {
    let mut cmd = clean_command("/usr/lib/wine/wine64");
    cmd.arg(program)
        .args(args)
        .current_dir(program.parent().unwrap())
        .env("WINEPREFIX", wine_prefix())
        .env("WINEDEBUG", "-all");
    sandbox_env(&mut cmd, sandbox);
    cmd
}

pub fn wine_ok(program: &Path, args: &[&str], sandbox: &Sandbox) -> String {
    let out = run(&mut wine(program, args, sandbox), LIMIT);
    expect_success(
        &out,
        &format!("wine {} {}", program.display(), args.join(" ")),
    )
}

/// `path` as Wine's `Z:` drive (the Unix root) names it.
pub fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}
