//! What the tests need beyond Rust, installed where each belongs: system tools with
//! apt-get (only as root; otherwise the one command that would is printed and nothing
//! runs), Python packages in a virtual environment of the workspace's own
//! (`target/venv`, with the wheels the offline `pip install` tests need in
//! `target/wheelhouse`), and npm packages in the `node_modules` of their projects.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::root;

/// (program looked for on the PATH, Debian package that brings it)
const TOOLS: &[(&str, &str)] = &[
    ("cc", "gcc"),
    ("c++", "g++"),
    ("make", "make"),
    ("cmake", "cmake"),
    ("pkg-config", "pkg-config"),
    ("valgrind", "valgrind"),
    ("go", "golang-go"),
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("openssl", "openssl"),
    ("readelf", "binutils"),
    ("curl", "curl"),
    ("git", "git"),
    ("unshare", "util-linux"),
    ("flock", "util-linux"),
    ("python3", "python3"),
    ("node", "nodejs"),
    ("npm", "npm"),
    // The release artifacts (xtask dist) and their tests.
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("lintian", "lintian"),
    ("abidw", "abigail-tools"),
    ("abidiff", "abigail-tools"),
    ("sha256sum", "coreutils"),
    // lwolf agent's tests: a second local user, and connecting as it.
    ("useradd", "passwd"),
    ("setpriv", "util-linux"),
];

/// Header files looked for, and the Debian package that brings each.
const HEADERS: &[(&str, &str)] = &[("/usr/include/openssl/evp.h", "libssl-dev")];

/// The Python packages the tests use (the adapters' libraries, a signer's RSA, and what
/// builds a wheel).
const PYTHON_PACKAGES: &[&str] = &[
    "setuptools",
    "wheel",
    "requests",
    "httpx",
    "cryptography",
    "auditwheel",
];
/// Tools from PyPI (program in the venv's bin/, package): the release build's cross-linker
/// (cargo-zigbuild, with zig from the ziglang package) for an old glibc.
const PYTHON_TOOLS: &[(&str, &str)] = &[
    ("cargo-zigbuild", "cargo-zigbuild"),
    ("python-zig", "ziglang"),
];
/// The wheels an offline `pip install` in a test's fresh venv needs (with their
/// dependencies).
const WHEELHOUSE: &[&str] = &["setuptools", "wheel", "requests"];
/// The npm projects the tests run (`npm ci` when their lock file changed).
const NPM_PROJECTS: &[&str] = &["system-tests/interop", "bindings/node"];

/// What the tests run with: variables to add to their environment.
pub struct Env {
    vars: Vec<(String, OsString)>,
}

impl Env {
    pub fn vars(&self) -> impl Iterator<Item = (&String, &OsString)> {
        self.vars.iter().map(|(k, v)| (k, v))
    }
}

pub fn is_root() -> bool {
    // The owner of /proc/self is the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    })
}

/// The Debian packages of the tools that are missing.
fn missing() -> Vec<&'static str> {
    let mut packages: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(_, package)| *package)
        .chain(
            HEADERS
                .iter()
                .filter(|(header, _)| !Path::new(header).exists())
                .map(|(_, package)| *package),
        )
        // The Windows build and Wine (crate::windows).
        .chain(crate::windows::missing())
        .collect();
    // Debian splits venv (and its pip) out of the interpreter.
    if which("python3").is_some() && !python_has("venv") {
        packages.push("python3-venv");
    }
    packages.sort_unstable();
    packages.dedup();
    packages
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Says what is missing, installs nothing.
pub fn check() -> Result<(), String> {
    let packages = missing();
    if packages.is_empty() {
        println!("every tool the tests need is installed");
        Ok(())
    } else {
        Err(format!(
            "missing: {}; install them with:\n  {}",
            packages.join(" "),
            apt_command(&packages)
        ))
    }
}

fn apt_command(packages: &[&str]) -> String {
    format!(
        "sudo apt-get update && sudo apt-get install -y {}",
        packages.join(" ")
    )
}

/// Installs what is missing, then the Python and npm packages; the variables the tests run
/// with.
pub fn install() -> Result<Env, String> {
    let packages = missing();
    if !packages.is_empty() {
        if !is_root() {
            return Err(format!(
                "the tests need {} and only root can install them; run this, then this \
                 command again:\n  {}",
                packages.join(", "),
                apt_command(&packages)
            ));
        }
        println!("== installing {}", packages.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let venv = python_venv()?;
    for project in NPM_PROJECTS {
        npm_ci(&root().join(project))?;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![venv.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| e.to_string())?;
    Ok(Env {
        vars: vec![
            ("PATH".into(), path),
            (
                "LWOLF_WHEELHOUSE".into(),
                root().join("target/wheelhouse").into_os_string(),
            ),
        ],
    })
}

/// `target/venv` with the tests' Python packages, and `target/wheelhouse` with the wheels
/// of offline installs; made once, topped up when a package is missing.
fn python_venv() -> Result<PathBuf, String> {
    let venv = root().join("target/venv");
    let python = venv.join("bin/python3");
    if !python.is_file() {
        println!("== making {}", super::shown(&venv).display());
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let imports = PYTHON_PACKAGES.join(", ");
    let ready = Command::new(&python)
        .args(["-c", &format!("import {imports}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        println!("== pip install {}", PYTHON_PACKAGES.join(" "));
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(PYTHON_PACKAGES))?;
    }
    let tools: Vec<&str> = PYTHON_TOOLS
        .iter()
        .filter(|(program, _)| !venv.join("bin").join(program).is_file())
        .map(|(_, package)| *package)
        .collect();
    if !tools.is_empty() {
        println!("== pip install {}", tools.join(" "));
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(&tools))?;
    }
    let wheelhouse = root().join("target/wheelhouse");
    let have = |name: &str| {
        std::fs::read_dir(&wheelhouse).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(name))
        })
    };
    if !WHEELHOUSE.iter().all(|w| have(w)) {
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(&wheelhouse)
            .args(WHEELHOUSE))?;
    }
    Ok(venv)
}

/// `npm ci` in `dir` unless its node_modules was installed from the same lock file (a copy
/// of which is kept there).
fn npm_ci(dir: &Path) -> Result<(), String> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("{}/package-lock.json: {e}", dir.display()))?;
    let stamp = dir.join("node_modules/.lwolf-installed-from.json");
    if std::fs::read(&stamp).is_ok_and(|s| s == lock) {
        return Ok(());
    }
    println!("== npm ci in {}", super::shown(dir).display());
    run(Command::new("npm").current_dir(dir).args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))?;
    std::fs::write(&stamp, lock).map_err(|e| e.to_string())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    super::run(cmd)
}
