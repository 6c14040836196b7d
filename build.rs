//! Generates the C header from `src/ffi` with cbindgen.
//!
//! The header is always written to `$OUT_DIR/lwolf_auth.h`, never into the source tree, so
//! that `cargo package` and read-only checkouts work. `include/lwolf_auth.h` is the committed
//! copy: it is refreshed only when asked, with `LWOLF_UPDATE_HEADER=1 cargo build`, and
//! `tests/header.rs` fails when it differs from the generated one (whose path it gets from
//! `LWOLF_GENERATED_HEADER`, set below).
//!
//! On Linux the shared library also gets its versioned soname, `liblwolf_auth.so.0`, and
//! cargo's output directory (`target/release`) gets a `liblwolf_auth.so.0` link beside the
//! `liblwolf_auth.so` cargo writes: a program linked with `-L target/release -llwolf_auth`
//! asks for the soname at run time, and must find it there.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=LWOLF_UPDATE_HEADER");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblwolf_auth.so.{major}");
        link_soname(&out_dir, &major);
    }

    let mut config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is not a valid cbindgen configuration");
    // The version as macros, for `#if` in C: cbindgen cannot evaluate `env!` in a const.
    let part = |name: &str| env::var(format!("CARGO_PKG_VERSION_{name}")).expect("version");
    config.after_includes = Some(format!(
        "\n/* This header's version, as lwolf_version() reports it at run time. */\n\
         #define LWOLF_VERSION_MAJOR {}\n#define LWOLF_VERSION_MINOR {}\n\
         #define LWOLF_VERSION_PATCH {}",
        part("MAJOR"),
        part("MINOR"),
        part("PATCH")
    ));
    // Parse src/ffi alone (following its `mod` items): the header depends on nothing else,
    // which is what makes `rerun-if-changed=src/ffi` exact.
    let header = out_dir.join("lwolf_auth.h");
    println!(
        "cargo:rustc-env=LWOLF_GENERATED_HEADER={}",
        header.display()
    );
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir.join("src/ffi/mod.rs"))
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => {
            // Most likely a syntax error in src/ffi, which rustc reports better than cbindgen:
            // do not fail here. Without a generated header, tests/header.rs fails.
            println!("cargo:warning=cbindgen could not generate lwolf_auth.h: {e}");
            let _ = std::fs::remove_file(&header);
            return;
        }
    };
    bindings.write_to_file(&header);

    if env::var_os("LWOLF_UPDATE_HEADER").is_some_and(|v| v == "1") {
        let committed = manifest_dir.join("include/lwolf_auth.h");
        std::fs::create_dir_all(committed.parent().expect("include/"))
            .expect("cannot create include/");
        std::fs::copy(&header, &committed).expect("cannot write include/lwolf_auth.h");
    }
}

/// Puts `liblwolf_auth.so.MAJOR -> liblwolf_auth.so` in cargo's output directory, which is
/// three levels above `OUT_DIR` (`<target>/<profile>/build/<pkg>-<hash>/out`). The link may
/// dangle until cargo writes the library. Only a relative link, only where the layout is
/// cargo's usual one, and never a failure: the library itself is not affected.
#[cfg(unix)]
fn link_soname(out_dir: &std::path::Path, major: &str) {
    let Some(build) = out_dir.parent().and_then(|pkg| pkg.parent()) else {
        return;
    };
    let Some(profile_dir) = build.parent().filter(|_| build.ends_with("build")) else {
        return;
    };
    let link = profile_dir.join(format!("liblwolf_auth.so.{major}"));
    if std::fs::read_link(&link)
        .is_ok_and(|target| target == std::path::Path::new("liblwolf_auth.so"))
    {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("liblwolf_auth.so", &link) {
        println!("cargo:warning=cannot link {}: {e}", link.display());
    }
}

#[cfg(not(unix))]
fn link_soname(_out_dir: &std::path::Path, _major: &str) {}
