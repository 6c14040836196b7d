//! The Windows SDK (`target/dist/windows-x64/`, made by `cargo xtask windows`, which
//! `cargo xtask test` runs first) as Windows developers use it, under Wine 8.0 against the
//! sandbox on this machine (Wine's processes share its loopback):
//!
//! - the C examples built with `x86_64-w64-mingw32-gcc` against the import library
//!   (`liblwolf_auth.dll.a`, the DLL beside the program) and against the static library with
//!   the system libraries the SDK lists, each checking what it got;
//! - the C++ API's tests built with mingw's g++ (both thread models);
//! - `lwolf.exe token --json` and `lwolf.exe get`;
//! - the DLL's exports (only `lwolf_*`) and version resource.
//!
//! Wine is not Windows: what passes here is the library's own behaviour on the Win32 API as
//! Wine implements it.

use lwolf_test_support::ffi_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use ffi_support::{expect_success, repo_root, run};
use lwolf_sandbox::Sandbox;
use lwolf_test_support::wine::{dist, windows_path, wine, wine_ok, LIMIT};

const STATIC_LIBS: &[&str] = &[
    "-lbcrypt",
    "-ladvapi32",
    "-lkernel32",
    "-lntdll",
    "-luserenv",
    "-lws2_32",
    "-ldbghelp",
];

/// The C examples, built once: `dynamic/` (import library, the DLL copied beside them) and
/// `static/`.
fn c_builds() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dist = dist();
        let dir = ffi_support::scratch_dir("windows-c");
        for kind in ["dynamic", "static"] {
            std::fs::create_dir_all(dir.join(kind)).unwrap();
        }
        std::fs::copy(
            dist.join("bin/lwolf_auth.dll"),
            dir.join("dynamic/lwolf_auth.dll"),
        )
        .unwrap();
        for name in ["token", "request", "stream", "threads", "transact", "log"] {
            let source = repo_root().join(format!("examples-c/{name}.c"));
            let compile = |out: &Path| {
                let mut cmd = Command::new("x86_64-w64-mingw32-gcc");
                cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1"])
                    .arg("-I")
                    .arg(dist.join("include"))
                    .arg(&source)
                    .arg("-o")
                    .arg(out)
                    // winpthreads linked in: the programs need no DLL but ours.
                    .args([
                        "-static-libgcc",
                        "-Wl,-Bstatic",
                        "-lpthread",
                        "-Wl,-Bdynamic",
                    ]);
                cmd
            };
            let mut dynamic = compile(&dir.join(format!("dynamic/{name}.exe")));
            dynamic.arg("-L").arg(dist.join("lib")).arg("-llwolf_auth");
            expect_success(&run(&mut dynamic, LIMIT), &format!("mingw gcc {name}.c"));
            let mut fixed = compile(&dir.join(format!("static/{name}.exe")));
            fixed
                .arg(dist.join("lib/liblwolf_auth.a"))
                .args(STATIC_LIBS);
            expect_success(
                &run(&mut fixed, LIMIT),
                &format!("mingw gcc {name}.c (static)"),
            );
        }
        dir
    })
}

fn run_examples(kind: &str) {
    let dir = c_builds().join(kind);
    let sandbox = Sandbox::start().unwrap();
    let token = wine_ok(&dir.join("token.exe"), &[], &sandbox);
    let fingerprint = token
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in:\n{token}"));
    assert_eq!(fingerprint.trim_end().len(), 12, "{token}");

    let ok = wine_ok(
        &dir.join("request.exe"),
        &["GET", "/v1/transactions"],
        &sandbox,
    );
    assert!(ok.starts_with("status: 200"), "{ok}");
    let missing = wine_ok(
        &dir.join("request.exe"),
        &["GET", "/v1/transactions/none"],
        &sandbox,
    );
    assert!(missing.starts_with("status: 404"), "{missing}");

    let stream = wine_ok(&dir.join("stream.exe"), &[], &sandbox);
    for line in [
        "status: 200",
        "same body: yes",
        "stopped: LWOLF_ERR_ABORTED",
        "shared token: yes",
    ] {
        assert!(stream.contains(line), "{line:?} not in:\n{stream}");
    }

    let transact = wine_ok(
        &dir.join("transact.exe"),
        &["/v1/transactions", "2"],
        &sandbox,
    );
    assert_eq!(
        transact.matches("status: 200 request id: ").count(),
        2,
        "{transact}"
    );

    let log = wine_ok(&dir.join("log.exe"), &[], &sandbox);
    assert!(log.contains("records after off: 0"), "{log}");
    assert!(!log.contains(sandbox.client_secret()), "{log}");

    // A fresh sandbox: the threads' token requests alone.
    let sandbox = Sandbox::start().unwrap();
    let threads = wine_ok(&dir.join("threads.exe"), &[], &sandbox);
    assert!(threads.contains("failures: 0"), "{threads}");
    assert!(threads.contains("same token everywhere: yes"), "{threads}");
    assert_eq!(sandbox.token_requests(), 1);
}

#[test]
fn c_examples_with_the_import_library_under_wine() {
    run_examples("dynamic");
}

#[test]
fn c_examples_linked_statically_under_wine() {
    run_examples("static");
}

/// The C++ API's tests, built with mingw's g++ in both thread models: Debian's default
/// (win32, which has no `std::mutex`) and posix.
#[test]
fn the_cpp_api_under_wine() {
    let dist = dist();
    for compiler in ["x86_64-w64-mingw32-g++", "x86_64-w64-mingw32-g++-posix"] {
        let dir = ffi_support::scratch_dir(&format!("windows-{compiler}"));
        std::fs::copy(dist.join("bin/lwolf_auth.dll"), dir.join("lwolf_auth.dll")).unwrap();
        // The posix model's C++ runtime imports winpthreads' DLL even when linked -static:
        // it ships beside the program, as mingw users ship it.
        std::fs::copy(
            "/usr/x86_64-w64-mingw32/lib/libwinpthread-1.dll",
            dir.join("libwinpthread-1.dll"),
        )
        .expect("mingw-w64's libwinpthread-1.dll");
        let program = dir.join("test_cpp.exe");
        let mut cmd = Command::new(compiler);
        cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1"])
            .arg("-I")
            .arg(dist.join("include"))
            .arg(repo_root().join("examples-c/test_cpp.cpp"))
            .arg("-o")
            .arg(&program)
            // The C++ runtime linked in; the DLL's import library named by its path (under
            // -static, -llwolf_auth would find the static library first).
            .arg("-static")
            .arg(dist.join("lib/liblwolf_auth.dll.a"));
        expect_success(&run(&mut cmd, LIMIT), &format!("{compiler} test_cpp.cpp"));
        let sandbox = Sandbox::start().unwrap();
        let out = wine_ok(&program, &[], &sandbox);
        assert!(out.contains(", 0 failed"), "{compiler}: {out}");
    }
}

/// The SDK's CMake package, as a Windows project finds it: `find_package(lwolf_auth CONFIG)`
/// with the unzipped folder on `CMAKE_PREFIX_PATH`, built with mingw (cross) and run under
/// Wine, once against the DLL and once against the static library.
#[test]
fn find_package_in_a_windows_cmake_project() {
    ffi_support::require_tool("cmake", "cmake");
    let dist = dist();
    let project = ffi_support::scratch_dir("windows-cmake");
    std::fs::copy(
        repo_root().join("examples-c/client.cpp"),
        project.join("client.cpp"),
    )
    .unwrap();
    std::fs::write(
        project.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\n\
         project(app CXX)\n\
         set(CMAKE_CXX_STANDARD 17)\n\
         find_package(lwolf_auth 0.1 CONFIG REQUIRED)\n\
         add_executable(app client.cpp)\n\
         target_link_libraries(app PRIVATE lwolf_auth::lwolf_auth)\n\
         add_executable(app_static client.cpp)\n\
         target_link_libraries(app_static PRIVATE lwolf_auth::lwolf_auth_static)\n",
    )
    .unwrap();
    let build = project.join("build");
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(&build)
        .arg("-DCMAKE_SYSTEM_NAME=Windows")
        .arg("-DCMAKE_CXX_COMPILER=x86_64-w64-mingw32-g++")
        .arg(format!("-DCMAKE_PREFIX_PATH={}", dist.display()))
        // The C++ runtime linked in, so that the programs need no DLL but ours.
        .arg("-DCMAKE_EXE_LINKER_FLAGS=-static-libgcc -static-libstdc++");
    expect_success(&run(&mut configure, LIMIT), "cmake (configure)");
    let mut make = Command::new("cmake");
    make.arg("--build").arg(&build);
    expect_success(&run(&mut make, LIMIT), "cmake --build");
    std::fs::copy(
        dist.join("bin/lwolf_auth.dll"),
        build.join("lwolf_auth.dll"),
    )
    .unwrap();
    let sandbox = Sandbox::start().unwrap();
    for program in ["app.exe", "app_static.exe"] {
        let out = wine_ok(&build.join(program), &[], &sandbox);
        assert!(out.contains("status: 200"), "{program}: {out}");
    }
}

#[test]
fn lwolf_exe_under_wine() {
    let exe = dist().join("bin/lwolf.exe");
    let sandbox = Sandbox::start().unwrap();
    let token = wine_ok(&exe, &["--no-cache", "token", "--json"], &sandbox);
    let json: serde_json::Value = serde_json::from_str(token.trim()).expect("JSON");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["source"], "token endpoint");
    let got = run(
        &mut wine(&exe, &["--no-cache", "get", "/v1/offices"], &sandbox),
        LIMIT,
    );
    let body = expect_success(&got, "lwolf.exe get");
    assert!(body.contains("\"data\""), "{body}");
    assert!(
        String::from_utf8_lossy(&got.stderr).contains("HTTP 200"),
        "{got:?}"
    );

    // The secret in a file as a Windows user writes it: a C:-style path, Notepad's byte
    // order mark and CRLF.
    let dir = ffi_support::scratch_dir("windows-secret");
    let file = dir.join("secret.txt");
    std::fs::write(&file, format!("\u{feff}{}\r\n", sandbox.client_secret())).unwrap();
    let windows_path = windows_path(&file);
    let mut cmd = wine(&exe, &["--no-cache", "token"], &sandbox);
    cmd.env_remove("LWOLF_CLIENT_SECRET")
        .env("LWOLF_CLIENT_SECRET_FILE", &windows_path);
    let out = expect_success(&run(&mut cmd, LIMIT), "lwolf.exe token (secret file)");
    assert!(out.trim().len() > 20, "{out}");
}

/// Two Windows processes share one token through `cache_dir`: given as a Windows path, and
/// by default under `%LOCALAPPDATA%`.
#[test]
fn two_wine_processes_share_one_token_through_cache_dir() {
    let exe = dist().join("bin/lwolf.exe");
    let dir = ffi_support::scratch_dir("windows-cache");
    let windows_path = windows_path(&dir);
    let sandbox = Sandbox::start().unwrap();
    let token = |cache: Option<&str>| {
        let mut cmd = wine(&exe, &["token", "--json"], &sandbox);
        if let Some(cache) = cache {
            cmd.env("LWOLF_CACHE_DIR", cache);
        }
        let out = expect_success(&run(&mut cmd, LIMIT), "lwolf.exe token --json");
        serde_json::from_str::<serde_json::Value>(out.trim()).expect("JSON")
    };
    let first = token(Some(&windows_path));
    let second = token(Some(&windows_path));
    assert_eq!(first["token"], second["token"]);
    assert_eq!(first["source"], "token endpoint");
    assert_eq!(second["source"], "cache_dir");
    assert_eq!(sandbox.token_requests(), 1);
    // The file is there, and holds no token in the clear.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".token"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let saved = std::fs::read(files[0].path()).unwrap();
    let secret = first["token"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&saved).contains(secret));
    // The owner-only DACLs, as Wine can show them: it keeps no DACL on a Unix file system
    // but maps the one set to the file's mode, and nothing is left for others (Windows
    // itself shows them with icacls; Wine cannot).
    use std::os::unix::fs::PermissionsExt;
    for entry in std::iter::once(dir.clone())
        .chain(std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()))
    {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o007,
            0,
            "{} is open to others: {mode:o}",
            entry.display()
        );
    }

    // No LWOLF_CACHE_DIR: %LOCALAPPDATA%\lwolf-auth, shared the same way.
    let sandbox = Sandbox::start().unwrap();
    let mut info = wine(&exe, &["info"], &sandbox);
    let shown = expect_success(&run(&mut info, LIMIT), "lwolf.exe info");
    assert!(shown.contains("AppData\\Local\\lwolf-auth\\"), "{shown}");
    let again = run(&mut wine(&exe, &["info"], &sandbox), LIMIT);
    let again = expect_success(&again, "lwolf.exe info");
    assert!(again.contains("served_by    cache_dir"), "{again}");
    assert_eq!(sandbox.token_requests(), 1);
}

/// `ca_system=on`: a root installed in the Windows certificate store (as an administrator
/// installs a TLS-inspecting proxy's) is trusted; without it, the same server is refused.
#[test]
fn ca_system_trusts_the_windows_certificate_store() {
    use lwolf_test_support::common::{issue_tokens, Server, TestPki};
    let exe = dist().join("bin/lwolf.exe");
    let dir = ffi_support::scratch_dir("windows-ca-system");
    let pki = TestPki::new();
    let server = Server::new_tls(issue_tokens("win", 3600), pki.server_config.clone());
    // The test's own throwaway CA, added to the prefix's Root store by a program of ours.
    let certadd = dir.join("certadd.exe");
    let mut cc = Command::new("x86_64-w64-mingw32-gcc");
    cc.args(["-O1", "-o"])
        .arg(&certadd)
        .arg(repo_root().join("system-tests/tests/windows_certadd.c"))
        .arg("-lcrypt32");
    expect_success(&run(&mut cc, LIMIT), "mingw gcc certadd.c");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let sandbox = Sandbox::start().unwrap();
    let windows_ca = windows_path(&ca);
    let added = wine_ok(&certadd, &[&windows_ca], &sandbox);
    assert!(added.contains("added"), "{added}");

    let token = |ca_system: Option<&str>| {
        let mut cmd = wine(&exe, &["--no-cache", "token"], &sandbox);
        cmd.env("LWOLF_TOKEN_URL", server.token_url());
        if let Some(v) = ca_system {
            cmd.env("LWOLF_CA_SYSTEM", v);
        }
        run(&mut cmd, LIMIT)
    };
    let refused = token(None);
    assert_eq!(refused.status.code(), Some(8), "{refused:?}");
    assert_eq!(server.token_requests(), 0);
    let trusted = token(Some("on"));
    let out = expect_success(&trusted, "lwolf.exe token with ca_system=on");
    assert!(out.starts_with("TKN-win-"), "{out}");
}

#[test]
fn the_dll_exports_only_lwolf_and_says_its_version() {
    let dll = dist().join("bin/lwolf_auth.dll");
    let dump: Output = Command::new("x86_64-w64-mingw32-objdump")
        .arg("-p")
        .arg(&dll)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    let table = text
        .split("[Ordinal/Name Pointer] Table")
        .nth(1)
        .expect("an export table");
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(names.len() > 40, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("lwolf_")), "{names:?}");
    // Every function of the header is exported.
    let header = std::fs::read_to_string(repo_root().join("include/lwolf_auth.h")).unwrap();
    for declared in header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("lwolf_"))
        .filter(|w| header.contains(&format!(" {w}(")) || header.contains(&format!("*{w}(")))
    {
        assert!(names.contains(&declared), "{declared} is not exported");
    }
    // The version resource: UTF-16 strings in the DLL.
    let bytes = std::fs::read(&dll).unwrap();
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    for s in [
        "ProductName",
        "lwolf-auth",
        "FileVersion",
        lwolf_auth::VERSION,
    ] {
        let needle = utf16(s);
        assert!(
            bytes.windows(needle.len()).any(|w| w == needle),
            "{s} is not in the version resource"
        );
    }
}

/// The zip a Windows user downloads holds the folder, byte for byte (nothing else), and the
/// program unzipped from it runs.
#[test]
fn the_zip_holds_the_sdk_and_its_program_runs() {
    let dist = dist();
    let zip = dist.with_file_name(format!("lwolf-auth-{}-windows-x64.zip", xtask::version()));
    assert!(zip.is_file(), "{} is missing", zip.display());
    let unzipped = ffi_support::scratch_dir("windows-zip");
    let compared = expect_success(
        &run(
            Command::new("python3").args([
                "-c",
                "import filecmp, os, sys, zipfile\n\
                 zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])\n\
                 got = sys.argv[2] + '/windows-x64'\n\
                 def files(top):\n    \
                     return sorted(os.path.relpath(os.path.join(d, f), top)\n        \
                         for d, _, fs in os.walk(top) for f in fs)\n\
                 a, b = files(sys.argv[3]), files(got)\n\
                 assert a == b, (a, b)\n\
                 same = [f for f in a if filecmp.cmp(os.path.join(sys.argv[3], f), os.path.join(got, f), shallow=False)]\n\
                 assert same == a, sorted(set(a) - set(same))\n\
                 print(len(a))",
            ])
            .arg(&zip)
            .arg(&unzipped)
            .arg(&dist),
            LIMIT,
        ),
        "the zip against the folder",
    );
    assert!(
        compared.trim().parse::<usize>().unwrap() >= 10,
        "{compared}"
    );
    let exe = unzipped.join("windows-x64/bin/lwolf.exe");
    let sandbox = Sandbox::start().unwrap();
    let token = wine_ok(&exe, &["--no-cache", "token", "--json"], &sandbox);
    let json: serde_json::Value = serde_json::from_str(token.trim()).expect("JSON");
    assert_eq!(json["token_type"], "Bearer");
}
