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
        Ok("windows") => version_resource(&out_dir),
        Ok("macos") => {
            link(&out_dir, "liblwolf_auth.dylib", "liblwolf_auth_ffi.dylib");
            link(&out_dir, "liblwolf_auth.a", "liblwolf_auth_ffi.a");
        }
        _ => {}
    }
}

/// The DLL's version resource (file and product version, product name), compiled with the
/// target's `windres` (`WINDRES`, else mingw's `x86_64-w64-mingw32-windres`) and linked in.
fn version_resource(out_dir: &Path) {
    let version = env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let mut parts: Vec<u32> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    parts.resize(4, 0);
    let numeric = parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rc = format!(
        "1 VERSIONINFO\n\
         FILEVERSION {numeric}\n\
         PRODUCTVERSION {numeric}\n\
         FILEOS 0x40004\n\
         FILETYPE 0x2\n\
         BEGIN\n\
         BLOCK \"StringFileInfo\"\n\
         BEGIN\n\
         BLOCK \"040904b0\"\n\
         BEGIN\n\
         VALUE \"CompanyName\", \"lwolf-auth\"\n\
         VALUE \"FileDescription\", \"lwolf-auth: OAuth tokens and API calls for the Lone Wolf APIs\"\n\
         VALUE \"FileVersion\", \"{version}\"\n\
         VALUE \"InternalName\", \"lwolf_auth\"\n\
         VALUE \"OriginalFilename\", \"lwolf_auth.dll\"\n\
         VALUE \"ProductName\", \"lwolf-auth\"\n\
         VALUE \"ProductVersion\", \"{version}\"\n\
         END\n\
         END\n\
         BLOCK \"VarFileInfo\"\n\
         BEGIN\n\
         VALUE \"Translation\", 0x409, 1200\n\
         END\n\
         END\n"
    );
    let rc_path = out_dir.join("version.rc");
    let obj = out_dir.join("version.o");
    std::fs::write(&rc_path, rc).expect("write version.rc");
    println!("cargo:rerun-if-env-changed=WINDRES");
    let windres = env::var("WINDRES").unwrap_or_else(|_| "x86_64-w64-mingw32-windres".into());
    let status = std::process::Command::new(&windres)
        .arg("--input-format=rc")
        .arg("--output-format=coff")
        .arg("-i")
        .arg(&rc_path)
        .arg("-o")
        .arg(&obj)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo:rustc-cdylib-link-arg={}", obj.display()),
        Ok(s) => panic!("{windres} failed ({s}) on the DLL's version resource"),
        Err(e) => panic!(
            "{windres} could not be run ({e}): the DLL's version resource needs it \
             (Debian: apt-get install binutils-mingw-w64-x86-64)"
        ),
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
