//! The Python package: platform wheels holding the one build of the library (Linux's tagged
//! with the lowest glibc it needs, `manylinux_2_<N>_x86_64`; Windows' `win_amd64`), both
//! `py3-none` (the package uses ctypes, not Python's C API), and an sdist that builds the
//! library with cargo where no wheel fits.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

use super::linux::Built;
use super::{dist_dir, fresh_dir, install, run};

/// The workspace's venv (`cargo xtask deps` makes it), which has setuptools and wheel.
fn python() -> Result<PathBuf, String> {
    let python = root().join("target/venv/bin/python3");
    if python.is_file() {
        Ok(python)
    } else {
        Err("target/venv is missing: run `cargo xtask deps`".into())
    }
}

/// The binding's files (those git tracks) copied to `to`.
fn copy_binding(to: &Path) -> Result<(), String> {
    for file in tracked(&["bindings/python"])? {
        let relative = file.strip_prefix("bindings/python/").expect("under it");
        install(&root().join(&file), &to.join(relative), 0o644)?;
    }
    Ok(())
}

/// The files git tracks under `paths`.
pub(super) fn tracked(paths: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new("git")
        .current_dir(root())
        .arg("ls-files")
        .args(paths)
        .output()
        .map_err(|e| format!("git ls-files: {e}"))?;
    if !out.status.success() {
        return Err("git ls-files failed (the release is made from a git checkout)".into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The newest `GLIBC_2.N` symbol version `library` needs: N.
pub fn glibc_minor(library: &Path) -> Result<u32, String> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(library)
        .output()
        .map_err(|e| format!("objdump: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .split("GLIBC_2.")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .ok_or_else(|| format!("{} needs no glibc version?", library.display()))
}

pub fn wheels(built: &Built, windows_dll: &Path) -> Result<Vec<PathBuf>, String> {
    let platform = format!("manylinux_2_{}_x86_64", glibc_minor(&built.shared)?);
    // The wheel's library is the runtime's file under the name the package loads.
    let work = dist_dir().join(".python");
    fresh_dir(&work)?;
    let linux_lib = work.join("liblwolf_auth.so");
    install(&built.shared, &linux_lib, 0o755)?;
    Ok(vec![
        wheel(&linux_lib, &platform, &work.join("linux"))?,
        wheel(windows_dll, "win_amd64", &work.join("windows"))?,
    ])
}

/// One wheel holding `library`, tagged `py3-none-<platform>`.
fn wheel(library: &Path, platform: &str, work: &Path) -> Result<PathBuf, String> {
    let source = work.join("src");
    copy_binding(&source)?;
    let built = work.join("built");
    run(Command::new(python()?)
        .current_dir(&source)
        .args([
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--wheel-dir",
        ])
        .arg(&built)
        .arg(".")
        .env("LWOLF_AUTH_PREBUILT", library))?;
    let made = only_file(&built, ".whl")?;
    run(Command::new(python()?)
        .args([
            "-m",
            "wheel",
            "tags",
            "--remove",
            "--python-tag",
            "py3",
            "--abi-tag",
            "none",
            "--platform-tag",
            platform,
        ])
        .arg(&made))?;
    let name = format!("lwolf_auth-{}-py3-none-{platform}.whl", version());
    let tagged = built.join(&name);
    let dest = dist_dir().join(&name);
    std::fs::rename(&tagged, &dest).map_err(|e| format!("{}: {e}", tagged.display()))?;
    Ok(dest)
}

fn only_file(dir: &Path, suffix: &str) -> Result<PathBuf, String> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "{}: expected one {suffix}, found {found:?}",
            dir.display()
        )),
    }
}

/// The workspace files the sdist's `rust/` carries: every member (cargo loads them all,
/// dev-dependencies included), the lock file and the header.
const RUST_SOURCES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "include",
    "lwolf-auth",
    "lwolf-auth-ffi",
    "lwolf-cli",
    "lwolf-sandbox",
    "test-support",
    "system-tests/Cargo.toml",
    "system-tests/src",
    "system-tests/tests",
    "xtask",
];

/// `lwolf_auth-<version>.tar.gz`: the binding, and the Rust workspace in `rust/`, from
/// which `pip install` builds the library with cargo (`cargo build --release -p
/// lwolf-auth-ffi`, the lock file's versions).
pub fn sdist() -> Result<PathBuf, String> {
    let work = dist_dir().join(".sdist");
    fresh_dir(&work)?;
    copy_binding(&work)?;
    for file in tracked(RUST_SOURCES)? {
        install(&root().join(&file), &work.join("rust").join(&file), 0o644)?;
    }
    std::fs::write(
        work.join("MANIFEST.in"),
        "graft rust\ninclude README.md\nglobal-exclude __pycache__ *.pyc\n",
    )
    .map_err(|e| e.to_string())?;
    let out = work.join("out");
    run(Command::new(python()?)
        .current_dir(&work)
        .args(["setup.py", "-q", "sdist", "--formats=gztar", "-d"])
        .arg(&out))?;
    let made = only_file(&out, ".tar.gz")?;
    let dest = dist_dir().join(format!("lwolf_auth-{}.tar.gz", version()));
    std::fs::rename(&made, &dest).map_err(|e| e.to_string())?;
    Ok(dest)
}
