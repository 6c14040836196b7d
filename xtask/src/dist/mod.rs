//! `cargo xtask dist`: everything a release publishes, in `target/dist/`, from one build of
//! the library for Linux, against glibc 2.17 with cargo-zigbuild (and the Windows SDK's,
//! `cargo xtask windows`):
//!
//! ```text
//! lwolf-auth-<v>-linux-x64.tar.gz                  relocatable: bin/ include/ lib/ (pkg-config, CMake)
//! liblwolf-auth0_<v>-1_amd64.deb                   the runtime (liblwolf_auth.so.0)
//! liblwolf-auth-dev_<v>-1_amd64.deb                headers, .so link, .a, pkg-config, CMake
//! lwolf-cli_<v>-1_amd64.deb                        the lwolf command
//! lwolf_auth-<v>-py3-none-manylinux_2_17_x86_64.whl, lwolf_auth-<v>-py3-none-win_amd64.whl
//! lwolf_auth-<v>.tar.gz                            the Python sdist (builds the library with cargo)
//! lwolf-auth-<v>.tgz                               the npm package (linux-x64 and win32-x64 inside)
//! goproxy/                                         the Go module as a GOPROXY serves it
//! lwolf-auth-<v>-windows-x64.zip                   the Windows SDK
//! SHA256SUMS
//! ```
//!
//! docs/packages.md says how each is installed; `system-tests/tests/packages.rs` installs
//! each one as its users do, away from cargo and the source tree.

mod debian;
mod go;
mod linux;
mod node;
mod python;

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

/// The folder of the release artifacts.
pub fn dist_dir() -> PathBuf {
    root().join("target/dist")
}

pub fn build() -> Result<(), String> {
    // Nothing of an earlier release may be taken for this one's.
    fresh_dir(&dist_dir())?;
    let built = linux::build()?;
    xtask::abi::check(Some(&built.shared))?;
    let mut artifacts = vec![linux::archive(&built)?];
    artifacts.extend(debian::packages(&built)?);
    let windows = crate::windows::build()?;
    let windows_dll = windows.join("bin/lwolf_auth.dll");
    artifacts.push(dist_dir().join(format!("lwolf-auth-{}-windows-x64.zip", version())));
    artifacts.extend(python::wheels(&built, &windows_dll)?);
    artifacts.push(python::sdist()?);
    artifacts.push(node::package(&built, &windows_dll)?);
    artifacts.push(go::proxy(&built)?);
    checksums(&artifacts)?;
    println!("== wrote {}", dist_dir().display());
    Ok(())
}

/// `SHA256SUMS` of the artifacts that are files.
fn checksums(artifacts: &[PathBuf]) -> Result<(), String> {
    let mut cmd = Command::new("sha256sum");
    cmd.current_dir(dist_dir());
    for artifact in artifacts.iter().filter(|a| a.is_file()) {
        cmd.arg(artifact.file_name().expect("a file"));
    }
    let out = cmd.output().map_err(|e| format!("sha256sum: {e}"))?;
    if !out.status.success() {
        return Err("sha256sum failed".into());
    }
    write(&dist_dir().join("SHA256SUMS"), &out.stdout)
}

/// An empty directory at `dir` (whatever was there is gone).
fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Every file and directory under `dir` readable by all and writable by the owner only,
/// whatever the builder's umask: what a package installs must not be group-writable.
fn normalize_modes(dir: &Path) -> Result<(), String> {
    run(Command::new("chmod")
        .arg("-R")
        .arg("u+rwX,go+rX,go-w")
        .arg(dir))
}

fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// Copies `from` to `to` (parents made) with the file mode `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", to.display()))
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("{}: {e}", link.display()))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    crate::run(cmd)
}

/// The template `name` of `packaging/` or `cmake/` with each `(@KEY@, value)` filled in.
fn template(path: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut text =
        std::fs::read_to_string(root().join(path)).map_err(|e| format!("{path}: {e}"))?;
    for (key, value) in values {
        text = text.replace(&format!("@{key}@"), value);
    }
    if let Some(at) = text.find('@').filter(|&at| {
        text[at + 1..]
            .split('@')
            .next()
            .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    }) {
        return Err(format!("{path}: a value is missing near {}", &text[at..]));
    }
    Ok(text)
}

/// The version's (major, minor).
fn major_minor() -> (String, String) {
    let v = version();
    let mut parts = v.split('.');
    (
        parts.next().unwrap_or("0").to_owned(),
        parts.next().unwrap_or("0").to_owned(),
    )
}
