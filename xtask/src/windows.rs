//! `cargo xtask windows`: the library and the CLI for `x86_64-pc-windows-gnu`, cross-built
//! on Debian, laid out as a Windows SDK in `target/dist/windows-x64/` and zipped beside it.
//!
//! rustup cannot add the Windows target offline; Debian's `rustc-web` (1.96) with its std
//! sources (`rust-web-src`) can, through `-Zbuild-std`. Its cargo and rustc are used for this
//! build alone (in `target/windows/`, so that the two toolchains never share build products);
//! mingw-w64 links; Wine runs what is built (`wine()`), in a prefix of the workspace's own
//! with a shim for the `bcryptprimitives.dll` that Wine 8.0 lacks and Rust's std imports
//! (Windows 10 and later have it).

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

/// The Rust target.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// What a static link of `liblwolf_auth.a` needs from Windows, as rustc prints it
/// (`--print native-static-libs`); the Windows tests link with exactly this.
pub const STATIC_LIBS: &str = "-lbcrypt -ladvapi32 -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp";

/// Debian's packages for the build and the tests (tool looked for, package).
pub const TOOLS: &[(&str, &str)] = &[
    ("/usr/bin/rustc", "rustc-web"),
    ("/usr/bin/cargo", "cargo-web"),
    ("/usr/lib/rustlib/src/rust/library/std", "rust-web-src"),
    ("/usr/bin/x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
    (
        "/usr/bin/x86_64-w64-mingw32-g++-posix",
        "g++-mingw-w64-x86-64",
    ),
    (
        "/usr/bin/x86_64-w64-mingw32-windres",
        "binutils-mingw-w64-x86-64",
    ),
    ("/usr/lib/wine/wine64", "wine64"),
    ("/usr/bin/wine", "wine"),
];

/// Where this build keeps its products (another toolchain's, apart from `target/`).
pub fn target_dir() -> PathBuf {
    root().join("target/windows")
}

/// The SDK's folder.
pub fn dist_dir() -> PathBuf {
    root().join("target/dist/windows-x64")
}

/// The Wine prefix the tests run in.
pub fn wine_prefix() -> PathBuf {
    target_dir().join("wine")
}

/// Debian's cargo, set up for the Windows target.
pub fn cargo() -> Command {
    let mut cmd = Command::new("/usr/bin/cargo");
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.current_dir(root())
        .env("PATH", format!("/usr/bin:{path}"))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        // -Zbuild-std on a stable compiler.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir())
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER",
            "x86_64-w64-mingw32-gcc",
        )
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_AR",
            "x86_64-w64-mingw32-ar",
        )
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER",
            "/usr/lib/wine/wine64",
        )
        .envs(wine_env())
        // rustup's proxies must not pick another toolchain for this cargo's rustc.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    cmd
}

/// What Wine needs to run quietly in the workspace's prefix.
pub fn wine_env() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("WINEPREFIX", wine_prefix()),
        ("WINEDEBUG", PathBuf::from("-all")),
        // No Mono or Gecko: nothing here needs them, and a new prefix would offer to fetch them.
        ("WINEDLLOVERRIDES", PathBuf::from("mscoree,mshtml=")),
    ]
}

/// The tools that are missing, as Debian packages.
pub fn missing() -> Vec<&'static str> {
    let mut packages: Vec<&str> = TOOLS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    packages.dedup();
    packages
}

/// The core library's tests that are not run for Windows, and why.
pub const LEFT_OUT: &[(&str, &str)] = &[
    (
        "no_caller_waits_for_a_refresh",
        "it bounds a wait by the wall clock, and Wine's scheduler is not Windows'",
    ),
    (
        "a_100_mib_body_streams_in_bounded_memory",
        "it measures memory through Linux's /proc",
    ),
    (
        "max_requests_per_second_paces_starts",
        "it counts arrivals per second at a loopback server, and Wine's sockets deliver \
         them in bunches (23 in one second once, with starts spaced 50 ms apart)",
    ),
];

/// The core library's tests (`lwolf-auth`), built for Windows and run under Wine, but for
/// [`LEFT_OUT`] (the Unix-only suites, `disk_cache` and `red_team`, hold none for Windows).
pub fn test_core() -> Result<(), String> {
    prepare_wine()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-Zbuild-std",
        "--target",
        TARGET,
        "-p",
        "lwolf-auth",
        "--no-fail-fast",
        "--",
    ]);
    for (name, _) in LEFT_OUT {
        cmd.args(["--skip", name]);
    }
    crate::run(&mut cmd)
}

/// Builds the DLL, the import libraries, the static library and `lwolf.exe` into
/// `target/dist/windows-x64/`, and the zip of it.
pub fn build() -> Result<PathBuf, String> {
    let missing = missing();
    if !missing.is_empty() {
        return Err(format!(
            "the Windows build needs Debian's {} (cargo xtask deps installs them as root)",
            missing.join(" ")
        ));
    }
    prepare_wine()?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-Zbuild-std",
        "--target",
        TARGET,
        "-p",
        "lwolf-auth-ffi",
        "-p",
        "lwolf-cli",
    ]);
    crate::run(&mut build)?;
    assemble()
}

/// The Wine prefix, made once, with the test-only `bcryptprimitives.dll` shim.
pub fn prepare_wine() -> Result<(), String> {
    let prefix = wine_prefix();
    let system32 = prefix.join("drive_c/windows/system32");
    let shim = system32.join("bcryptprimitives.dll");
    if shim.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(target_dir()).map_err(|e| e.to_string())?;
    let mut boot = Command::new("/usr/lib/wine/wine64");
    boot.args(["wineboot", "-i"]).envs(wine_env());
    // wineboot's status says little; the prefix's system32 says whether it worked.
    let _ = boot.status();
    if !system32.is_dir() {
        return Err(format!("wineboot made no prefix in {}", prefix.display()));
    }
    let source = target_dir().join("bcryptprimitives.c");
    std::fs::write(&source, BCRYPTPRIMITIVES_SHIM).map_err(|e| e.to_string())?;
    crate::run(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-O2", "-shared", "-o"])
            .arg(&shim)
            .arg(&source)
            .arg("-lbcrypt"),
    )
}

/// `ProcessPrng`, which Rust's std imports from `bcryptprimitives.dll`, over `BCryptGenRandom`:
/// for Wine 8.0 only (Windows 10 and later have the DLL).
const BCRYPTPRIMITIVES_SHIM: &str = r#"#include <windows.h>
#include <bcrypt.h>
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG c = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, c, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += c;
        len -= c;
    }
    return TRUE;
}
"#;

fn assemble() -> Result<PathBuf, String> {
    let built = target_dir().join(TARGET).join("release");
    let dist = dist_dir();
    let _ = std::fs::remove_dir_all(&dist);
    for dir in ["bin", "lib/cmake/lwolf_auth", "include"] {
        std::fs::create_dir_all(dist.join(dir)).map_err(|e| e.to_string())?;
    }
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, dist.join(to))
            .map(drop)
            .map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(&built.join("lwolf_auth_ffi.dll"), "bin/lwolf_auth.dll")?;
    copy(&built.join("lwolf.exe"), "bin/lwolf.exe")?;
    copy(&built.join("liblwolf_auth_ffi.a"), "lib/liblwolf_auth.a")?;
    copy(&root().join("include/lwolf_auth.h"), "include/lwolf_auth.h")?;
    copy(
        &root().join("include/lwolf_auth.hpp"),
        "include/lwolf_auth.hpp",
    )?;
    for exe in ["bin/lwolf_auth.dll", "bin/lwolf.exe"] {
        crate::run(
            Command::new("x86_64-w64-mingw32-strip")
                .arg("--strip-unneeded")
                .arg(dist.join(exe)),
        )?;
    }
    // The import libraries, made from what the DLL exports under its shipped name.
    let exports = exports(&dist.join("bin/lwolf_auth.dll"))?;
    if let Some(other) = exports.iter().find(|e| !e.starts_with("lwolf_")) {
        return Err(format!("the DLL exports {other}: only lwolf_* may be"));
    }
    let def = format!("LIBRARY lwolf_auth.dll\nEXPORTS\n{}\n", exports.join("\n"));
    let def_path = dist.join("lib/lwolf_auth.def");
    std::fs::write(&def_path, def).map_err(|e| e.to_string())?;
    for implib in ["lib/liblwolf_auth.dll.a", "lib/lwolf_auth.lib"] {
        crate::run(
            Command::new("x86_64-w64-mingw32-dlltool")
                .args(["-m", "i386:x86-64", "-D", "lwolf_auth.dll", "-d"])
                .arg(&def_path)
                .arg("-l")
                .arg(dist.join(implib)),
        )?;
    }
    std::fs::write(
        dist.join("lib/lwolf_auth-static-libs.txt"),
        format!("{STATIC_LIBS}\n"),
    )
    .map_err(|e| e.to_string())?;
    let cmake = dist.join("lib/cmake/lwolf_auth");
    let libs: Vec<&str> = STATIC_LIBS.split(' ').map(|l| &l[2..]).collect();
    std::fs::write(
        cmake.join("lwolf_authConfig.cmake"),
        CMAKE_CONFIG.replace("@STATIC_LIBS@", &libs.join(";")),
    )
    .map_err(|e| e.to_string())?;
    let (major, minor) = {
        let v = version();
        let mut parts = v.split('.');
        (
            parts.next().unwrap_or("0").to_owned(),
            parts.next().unwrap_or("0").to_owned(),
        )
    };
    let config_version =
        std::fs::read_to_string(root().join("cmake/lwolf_authConfigVersion.cmake.in"))
            .map_err(|e| e.to_string())?
            .replace("@VERSION@", &version())
            .replace("@MAJOR@", &major)
            .replace("@MINOR@", &minor);
    std::fs::write(cmake.join("lwolf_authConfigVersion.cmake"), config_version)
        .map_err(|e| e.to_string())?;
    std::fs::write(dist.join("README.txt"), README).map_err(|e| e.to_string())?;
    zip(&dist)?;
    println!("== wrote {}", dist.display());
    Ok(dist)
}

/// The names the DLL exports, from its export table.
fn exports(dll: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("x86_64-w64-mingw32-objdump")
        .arg("-p")
        .arg(dll)
        .output()
        .map_err(|e| format!("objdump: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let table = text
        .split("[Ordinal/Name Pointer] Table")
        .nth(1)
        .ok_or("the DLL has no export table")?;
    let names: Vec<String> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    if names.is_empty() {
        return Err("the DLL exports nothing".into());
    }
    Ok(names)
}

/// `target/dist/lwolf-auth-<version>-windows-x64.zip` of the folder, with Python's zipfile
/// (Python is on every machine these tests run on).
fn zip(dist: &Path) -> Result<(), String> {
    let zip = dist.with_file_name(format!("lwolf-auth-{}-windows-x64.zip", version()));
    let _ = std::fs::remove_file(&zip);
    crate::run(
        Command::new("python3")
            .current_dir(dist.parent().expect("target/dist"))
            .args(["-m", "zipfile", "-c"])
            .arg(&zip)
            .arg("windows-x64"),
    )
}

/// The CMake package, relocatable: every path is relative to the file itself.
const CMAKE_CONFIG: &str = r#"# lwolf_authConfig.cmake (Windows): what find_package(lwolf_auth CONFIG) reads.
#
#   find_package(lwolf_auth 0.1 CONFIG REQUIRED)   # CMAKE_PREFIX_PATH=<the unzipped folder>
#   target_link_libraries(app PRIVATE lwolf_auth::lwolf_auth)          # bin/lwolf_auth.dll
#   target_link_libraries(app PRIVATE lwolf_auth::lwolf_auth_static)   # lib/liblwolf_auth.a (mingw)
#
# The DLL's import library is lwolf_auth.lib with MSVC, liblwolf_auth.dll.a with mingw. Copy
# bin/lwolf_auth.dll next to the program (Windows looks there first).

get_filename_component(_lwolf_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET lwolf_auth::lwolf_auth)
  add_library(lwolf_auth::lwolf_auth SHARED IMPORTED)
  if(MSVC)
    set(_lwolf_implib "${_lwolf_prefix}/lib/lwolf_auth.lib")
  else()
    set(_lwolf_implib "${_lwolf_prefix}/lib/liblwolf_auth.dll.a")
  endif()
  set_target_properties(lwolf_auth::lwolf_auth PROPERTIES
    IMPORTED_LOCATION "${_lwolf_prefix}/bin/lwolf_auth.dll"
    IMPORTED_IMPLIB "${_lwolf_implib}"
    INTERFACE_INCLUDE_DIRECTORIES "${_lwolf_prefix}/include")
endif()

if(NOT TARGET lwolf_auth::lwolf_auth_static)
  add_library(lwolf_auth::lwolf_auth_static STATIC IMPORTED)
  set_target_properties(lwolf_auth::lwolf_auth_static PROPERTIES
    IMPORTED_LOCATION "${_lwolf_prefix}/lib/liblwolf_auth.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "${_lwolf_prefix}/include"
    INTERFACE_LINK_LIBRARIES "@STATIC_LIBS@")
endif()
"#;

const README: &str = "lwolf-auth for Windows x64\r
\r
bin\\lwolf_auth.dll     the library (copy it next to your .exe)\r
bin\\lwolf.exe          the command line\r
include\\lwolf_auth.h   the C API; lwolf_auth.hpp the C++17 API\r
lib\\lwolf_auth.lib     import library for MSVC (link.exe)\r
lib\\liblwolf_auth.dll.a import library for mingw-w64 (gcc, clang)\r
lib\\lwolf_auth.def     the DLL's exports\r
lib\\liblwolf_auth.a    static library for mingw-w64; link it with the libraries in\r
                       lib\\lwolf_auth-static-libs.txt\r
lib\\cmake\\lwolf_auth   find_package(lwolf_auth CONFIG)\r
\r
MSVC:   cl app.c /I include lib\\lwolf_auth.lib\r
mingw:  x86_64-w64-mingw32-gcc app.c -I include -L lib -llwolf_auth\r
static: x86_64-w64-mingw32-gcc app.c -I include lib\\liblwolf_auth.a -lbcrypt -ladvapi32 -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp\r
";
