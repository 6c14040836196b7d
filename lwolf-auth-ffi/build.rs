//! What the C library needs of the build: on Linux, the versioned soname
//! (`liblwolf_auth.so.0`), and in cargo's output directory (`target/release`) the names C
//! users link with, beside what cargo writes for this crate (`liblwolf_auth_ffi.*`):
//! `liblwolf_auth.so`, `liblwolf_auth.so.0` and `liblwolf_auth.a`. A program linked with
//! `-L target/release -llwolf_auth` asks for the soname at run time, and finds it there.
//!
//! The header is not made here: `include/lwolf_auth.h` is committed, `cargo xtask header`
//! refreshes it, and a test fails when it differs from what cbindgen makes of `src/`.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    match env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblwolf_auth.so.{major}");
            let so = "liblwolf_auth_ffi.so";
            link(&out_dir, "liblwolf_auth.so", so);
            link(&out_dir, &format!("liblwolf_auth.so.{major}"), so);
            link(&out_dir, "liblwolf_auth.a", "liblwolf_auth_ffi.a");
        }
        Ok("macos") => {
            link(&out_dir, "liblwolf_auth.dylib", "liblwolf_auth_ffi.dylib");
            link(&out_dir, "liblwolf_auth.a", "liblwolf_auth_ffi.a");
        }
        _ => {}
    }
}

/// Puts `name -> target` in cargo's output directory, three levels above `OUT_DIR`
/// (`<target>/<profile>/build/<pkg>-<hash>/out`). The link may dangle until cargo writes
/// the library. Only a relative link, only where the layout is cargo's usual one, and never
/// a failure: the library itself is not affected.
#[cfg(unix)]
fn link(out_dir: &Path, name: &str, target: &str) {
    let Some(build) = out_dir.parent().and_then(|pkg| pkg.parent()) else {
        return;
    };
    let Some(profile_dir) = build.parent().filter(|_| build.ends_with("build")) else {
        return;
    };
    let link = profile_dir.join(name);
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(target)) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(target, &link) {
        println!("cargo:warning=cannot link {}: {e}", link.display());
    }
}

#[cfg(not(unix))]
fn link(_out_dir: &Path, _name: &str, _target: &str) {}
