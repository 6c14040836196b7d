//! The Linux build the artifacts share, and the relocatable archive
//! `lwolf-auth-<version>-linux-x64.tar.gz`.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

use super::{dist_dir, fresh_dir, install, major_minor, run, symlink, template, write};

/// What a static link of `liblwolf_auth.a` needs from the system (rustc's
/// `--print native-static-libs`; the Makefile says the same and `c_abi.rs` checks it).
pub const STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

/// The library and the CLI, built once and stripped, in `target/dist/.build/`.
pub struct Built {
    /// `liblwolf_auth.so.<version>` (soname `liblwolf_auth.so.0`).
    pub shared: PathBuf,
    /// `liblwolf_auth.a`, debug info stripped.
    pub archive: PathBuf,
    /// `lwolf`.
    pub cli: PathBuf,
}

/// The glibc the release is built against: the oldest that zig's sysroot offers and Rust
/// supports (2.17: RHEL 7, Ubuntu 14.04 and everything since), so one build serves them all
/// (`manylinux_2_17`, the tag manylinux2014 names).
pub const GLIBC: &str = "2.17";

/// The Rust target of the release build: the host's, with the glibc version cargo-zigbuild
/// links against.
fn zig_target() -> String {
    format!("x86_64-unknown-linux-gnu.{GLIBC}")
}

pub fn build() -> Result<Built, String> {
    if std::env::consts::ARCH != "x86_64" {
        return Err("the release artifacts are for x86_64 Linux: build them on one".into());
    }
    // cargo-zigbuild and zig (PyPI's cargo-zigbuild and ziglang) live in target/venv.
    let venv_bin = root().join("target/venv/bin");
    if !venv_bin.join("cargo-zigbuild").is_file() {
        return Err("target/venv has no cargo-zigbuild: run `cargo xtask deps`".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![venv_bin];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| e.to_string())?;
    // The build machine's paths (the registry's sources, this tree) are not shipped in the
    // binaries' panic locations.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let rustflags = format!(
        "--remap-path-prefix={}=/cargo/registry/src --remap-path-prefix={}=/lwolf-auth",
        cargo_home.join("registry/src").display(),
        root().display()
    );
    let cargo = || {
        let mut cmd = Command::new(crate::cargo_program());
        cmd.current_dir(root())
            .env("PATH", &path)
            .env("RUSTFLAGS", &rustflags)
            // An encoded set of flags would win over RUSTFLAGS.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["zigbuild", "--release", "--target", &zig_target()]);
        cmd
    };
    // Two commands, as the tests build them: together, cargo would unify the CLI's features
    // of the core with the C library's and build a third variant.
    run(cargo().args(["-p", "lwolf-auth-ffi"]))?;
    run(cargo().args(["-p", "lwolf-cli"]))?;
    // cargo-zigbuild writes under the plain triple.
    let release = root().join("target/x86_64-unknown-linux-gnu/release");
    let stage = dist_dir().join(".build");
    fresh_dir(&stage)?;
    let built = Built {
        shared: stage.join(format!("liblwolf_auth.so.{}", version())),
        archive: stage.join("liblwolf_auth.a"),
        cli: stage.join("lwolf"),
    };
    install(&release.join("liblwolf_auth_ffi.so"), &built.shared, 0o644)?;
    install(&release.join("liblwolf_auth_ffi.a"), &built.archive, 0o644)?;
    install(&release.join("lwolf"), &built.cli, 0o755)?;
    run(Command::new("strip")
        .args(["--strip-unneeded", "--remove-section=.comment"])
        .arg(&built.shared)
        .arg(&built.cli))?;
    // Debug info is two thirds of the archive (Rust's std carries it); the code is all kept.
    run(Command::new("strip")
        .args(["--strip-debug", "--remove-section=.comment"])
        .arg(&built.archive))?;
    Ok(built)
}

/// Where the files of the C library go under a root.
pub struct Layout<'a> {
    /// Under the root, where the libraries go: `lib`, or Debian's `usr/lib/x86_64-linux-gnu`.
    pub libdir: &'a str,
    /// Under the root, where the headers go: `include` or `usr/include`.
    pub includedir: &'a str,
    /// The .pc file's paths: `None` for relocatable ones (from `${pcfiledir}`, with an
    /// rpath), or the fixed prefix a system package installs to (no rpath: the system's
    /// own library path finds it).
    pub fixed_prefix: Option<&'a str>,
}

/// The runtime library: `liblwolf_auth.so.<version>` and its soname link.
pub fn lay_out_runtime(root_dir: &Path, layout: &Layout, built: &Built) -> Result<(), String> {
    let libdir = root_dir.join(layout.libdir);
    let file = built.shared.file_name().expect("a file").to_string_lossy();
    install(&built.shared, &libdir.join(&*file), 0o644)?;
    symlink(&file, &libdir.join(xtask::abi::SONAME))
}

/// What builds against the library: headers, the link, the archive, pkg-config, CMake.
pub fn lay_out_dev(root_dir: &Path, layout: &Layout, built: &Built) -> Result<(), String> {
    let libdir = root_dir.join(layout.libdir);
    let includedir = root_dir.join(layout.includedir);
    for header in ["lwolf_auth.h", "lwolf_auth.hpp"] {
        install(
            &root().join("include").join(header),
            &includedir.join(header),
            0o644,
        )?;
    }
    install(&built.archive, &libdir.join("liblwolf_auth.a"), 0o644)?;
    symlink(xtask::abi::SONAME, &libdir.join("liblwolf_auth.so"))?;
    let (major, minor) = major_minor();
    let version = version();
    let cmake_dir = format!("{}/cmake/lwolf_auth", layout.libdir);
    let from_cmake = |to: &str| relative(&cmake_dir, to);
    let static_libs: Vec<&str> = STATIC_LIBS.split(' ').map(|l| &l[2..]).collect();
    let static_libs = static_libs.join(";");
    let values = [
        ("VERSION", version.as_str()),
        ("MAJOR", major.as_str()),
        ("MINOR", minor.as_str()),
        ("LIB_FROM_HERE", &from_cmake(layout.libdir)),
        ("INCLUDE_FROM_HERE", &from_cmake(layout.includedir)),
        ("STATIC_LIBS", &static_libs),
    ];
    for file in ["lwolf_authConfig.cmake", "lwolf_authConfigVersion.cmake"] {
        let text = template(&format!("cmake/{file}.in"), &values)?;
        write(&root_dir.join(&cmake_dir).join(file), text)?;
    }
    let pc_dir = format!("{}/pkgconfig", layout.libdir);
    let (prefix, includedir, libdir, rpath) = match layout.fixed_prefix {
        Some(prefix) => (
            prefix.to_owned(),
            format!("/{}", layout.includedir),
            format!("/{}", layout.libdir),
            String::new(),
        ),
        None => (
            format!("${{pcfiledir}}/{}", relative(&pc_dir, "")),
            format!("${{pcfiledir}}/{}", relative(&pc_dir, layout.includedir)),
            format!("${{pcfiledir}}/{}", relative(&pc_dir, layout.libdir)),
            " -Wl,-rpath,${libdir}".to_owned(),
        ),
    };
    let pc = template(
        "packaging/lwolf_auth.pc.in",
        &[
            ("PREFIX", &prefix),
            ("INCLUDEDIR", &includedir),
            ("LIBDIR", &libdir),
            ("RPATH", &rpath),
            ("VERSION", &version),
            ("STATIC_LIBS", STATIC_LIBS),
        ],
    )?;
    write(&root_dir.join(pc_dir).join("lwolf_auth.pc"), pc)
}

/// The path from directory `from` to `to` (both relative to the same root; "" is the root).
fn relative(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `lwolf-auth-<version>-linux-x64.tar.gz`: `lwolf-auth-<version>-linux-x64/` with bin/,
/// include/ and lib/ as `make install` lays them out, relocatable.
pub fn archive(built: &Built) -> Result<PathBuf, String> {
    let name = format!("lwolf-auth-{}-linux-x64", version());
    let work = dist_dir().join(".linux");
    fresh_dir(&work)?;
    let tree = work.join(&name);
    let layout = Layout {
        libdir: "lib",
        includedir: "include",
        fixed_prefix: None,
    };
    lay_out_runtime(&tree, &layout, built)?;
    lay_out_dev(&tree, &layout, built)?;
    install(&built.cli, &tree.join("bin/lwolf"), 0o755)?;
    write(
        &tree.join("README.txt"),
        ARCHIVE_README.replace("{name}", &name),
    )?;
    super::normalize_modes(&tree)?;
    let tarball = dist_dir().join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .current_dir(&work)
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mode=go-w",
            "--mtime=@0",
            "-czf",
        ])
        .arg(&tarball)
        .arg(&name))?;
    Ok(tarball)
}

const ARCHIVE_README: &str = "lwolf-auth for Linux x86_64 (glibc 2.17 or later)

bin/lwolf                     the command line
include/lwolf_auth.h          the C API; lwolf_auth.hpp, the C++17 API
lib/liblwolf_auth.so.0        the library (lib/liblwolf_auth.so links to it)
lib/liblwolf_auth.a           the static library
lib/pkgconfig/lwolf_auth.pc   pkg-config
lib/cmake/lwolf_auth/         find_package(lwolf_auth CONFIG)

Unpack it anywhere; every path is found from where the files are:

  PKG_CONFIG_PATH=$PWD/{name}/lib/pkgconfig cc app.c $(pkg-config --cflags --libs lwolf_auth)
  cmake -DCMAKE_PREFIX_PATH=$PWD/{name} ...
";
