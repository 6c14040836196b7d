//! The C ABI as C users meet it: `examples-c/` compiled with `-Wall -Wextra -Wpedantic
//! -Werror` against the release library, linked dynamically and statically, run against an
//! in-process sandbox; once more under AddressSanitizer and once under valgrind (separate
//! builds); the header compiled as C99 and C++11; the static link line checked against
//! rustc's; and `make install` checked with pkg-config.
//!
//! Needs a C/C++ compiler, make, valgrind and pkg-config: a missing one fails the test with
//! what to install (`.ci/run` installs them).

use lwolf_test_support::{common, ffi_support};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ffi_support::{
    c_library, clean_command, expect_success, repo_root, require_tool, run, sandbox_env,
    scratch_dir, which,
};
use lwolf_sandbox::Sandbox;

const PROGRAM_LIMIT: Duration = Duration::from_secs(120);
const VALGRIND_LIMIT: Duration = Duration::from_secs(600);

fn require_c_tools() {
    require_tool("cc", "gcc");
    require_tool("c++", "g++");
    require_tool("make", "make");
}

/// Runs `make -C examples-c <target>` against the release library into `builddir`.
fn make(target: &str, builddir: &Path) {
    require_c_tools();
    let lib = c_library();
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(repo_root().join("examples-c"))
        .arg(target)
        .arg(format!("LIBDIR={}", lib.dir.display()))
        .arg(format!("BUILDDIR={}", builddir.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    expect_success(
        &run(&mut cmd, Duration::from_secs(600)),
        &format!("make {target}"),
    );
}

/// The plain build (dynamic, static, C++), made once per test run.
fn plain_build() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir("c-plain");
        make("all", &dir);
        dir
    })
}

/// Runs one compiled program against `sandbox`, with `prefix` (valgrind…) in front.
fn run_program(
    program: &Path,
    args: &[&str],
    sandbox: &Sandbox,
    prefix: &[&str],
    extra_env: &[(&str, &str)],
    limit: Duration,
) -> String {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = clean_command(first);
            c.args(rest).arg(program);
            c
        }
        None => clean_command(program),
    };
    cmd.args(args);
    sandbox_env(&mut cmd, sandbox);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let what = format!("{} {}", program.display(), args.join(" "));
    let started = Instant::now();
    let out = run(&mut cmd, limit);
    let stdout = expect_success(&out, &what);
    eprintln!("{what}: {:.1?}", started.elapsed());
    stdout
}

/// Runs every example and C test from `dir` and checks what they print.
fn run_suite(dir: &Path, prefix: &[&str], extra_env: &[(&str, &str)], limit: Duration) {
    let sandbox = Sandbox::start().expect("start the sandbox");
    let go = |name: &str, args: &[&str]| {
        run_program(&dir.join(name), args, &sandbox, prefix, extra_env, limit)
    };

    let misuse = go("test_misuse", &[]);
    assert!(misuse.contains(", 0 failed"), "{misuse}");

    let token = go("token", &[]);
    let fingerprint = token
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in:\n{token}"));
    assert_eq!(fingerprint.len(), 12, "{token}");
    assert!(
        fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    assert!(token.contains("expires at: "), "{token}");
    assert!(token.contains("token length: "), "{token}");

    let ok = go("request", &["GET", "/v1/transactions"]);
    assert!(ok.starts_with("status: 200\n"), "{ok}");
    assert!(ok.contains("content-type: application/json"), "{ok}");
    let missing = go("request", &["GET", "/v1/transactions/does-not-exist"]);
    assert!(missing.starts_with("status: 404\n"), "{missing}");

    let stream = go("stream", &[]);
    // send_to: the body went to the callback; the response handed back keeps none of it.
    assert!(stream.contains(" pieces, 0 kept\n"), "{stream}");
    for line in [
        "status: 200\n",
        "same body: yes\n",
        "stopped: LWOLF_ERR_ABORTED\n",
        "shared token: yes\n",
    ] {
        assert!(stream.contains(line), "{line:?} not in:\n{stream}");
    }

    // A fresh sandbox, so that the count is the threads' alone.
    let sandbox = Sandbox::start().expect("start the sandbox");
    let threads = run_program(
        &dir.join("threads"),
        &[],
        &sandbox,
        prefix,
        extra_env,
        limit,
    );
    assert!(threads.contains("failures: 0\n"), "{threads}");
    assert!(threads.contains("same token everywhere: yes"), "{threads}");
    assert!(threads.contains("token requests: 1\n"), "{threads}");
    assert_eq!(sandbox.token_requests(), 1);

    check_transact(dir, prefix, extra_env, limit);
}

/// The Transact handle's rules, request ids and stats through `transact.c`.
fn check_transact(dir: &Path, prefix: &[&str], extra_env: &[(&str, &str)], limit: Duration) {
    let program = dir.join("transact");
    let sandbox = Sandbox::start().expect("start the sandbox");
    let answered = run_program(
        &program,
        &["/v1/transactions", "2"],
        &sandbox,
        prefix,
        extra_env,
        limit,
    );
    let ids: Vec<&str> = answered
        .lines()
        .filter_map(|l| l.strip_prefix("status: 200 request id: "))
        .collect();
    assert_eq!(ids.len(), 2, "{answered}");
    assert!(ids.iter().all(|id| id.len() == 36), "{answered}");
    assert_ne!(ids[0], ids[1], "each call has its own id");
    assert!(answered.contains("api_requests: 2\n"), "{answered}");
    assert!(!answered.contains("token_expires_at_ms: 0\n"), "{answered}");

    // A refused subscription key: 200 answers 403, not one more token.
    let mut env = extra_env.to_vec();
    env.push(("LWOLF_SUBSCRIPTION_KEY", "not-the-sandbox-key"));
    let refused = run_program(
        &program,
        &["/v1/transactions", "200"],
        &sandbox,
        prefix,
        &env,
        limit,
    );
    assert_eq!(refused.matches("status: 403 ").count(), 200, "{refused}");
    assert!(refused.contains("renewals_declined: 200\n"), "{refused}");
    assert!(refused.contains("forced_renewals: 0\n"), "{refused}");
    assert!(refused.contains("token_requests: 1\n"), "{refused}");
    assert_eq!(
        sandbox.token_requests(),
        2,
        "one token for each of the two runs"
    );

    // A Transact API that answers 401 to everything: at most one renewal in 30 s.
    let api = common::Server::new(common::Action::json(401, r#"{"code":"invalid_token"}"#));
    let base = format!("{}/transact-workflow", api.url());
    let mut env = extra_env.to_vec();
    env.push(("LWOLF_TRANSACT_BASE_URL", &base));
    let sandbox = Sandbox::start().expect("start the sandbox");
    let unauthorized = run_program(
        &program,
        &["/v1/transactions", "200"],
        &sandbox,
        prefix,
        &env,
        limit,
    );
    assert_eq!(
        unauthorized.matches("status: 401 ").count(),
        200,
        "{unauthorized}"
    );
    assert!(
        sandbox.token_requests() <= 2,
        "{}",
        sandbox.token_requests()
    );
    assert!(
        unauthorized.contains("forced_renewals: 1\n"),
        "{unauthorized}"
    );
}

#[test]
fn examples_and_tests_linked_dynamically() {
    let dir = plain_build().join("dynamic");
    run_suite(
        &dir,
        &[],
        &[("LWOLF_EXPECT_TEST_PANIC", "1")],
        PROGRAM_LIMIT,
    );
}

#[test]
fn examples_and_tests_linked_statically() {
    let dir = plain_build().join("static");
    // Statically linked: no liblwolf_auth.so is needed at run time.
    if which("readelf").is_some() {
        let out = run(
            Command::new("readelf").arg("-d").arg(dir.join("token")),
            PROGRAM_LIMIT,
        );
        let dynamic = expect_success(&out, "readelf -d");
        assert!(!dynamic.contains("liblwolf_auth"), "{dynamic}");
    }
    run_suite(
        &dir,
        &[],
        &[("LWOLF_EXPECT_TEST_PANIC", "1")],
        PROGRAM_LIMIT,
    );
}

/// `signer.c`: private_key_jwt signed by OpenSSL's libcrypto, the key never given to the
/// library; the sandbox verifies the assertions against the public half.
#[test]
fn a_c_signer_on_openssl_gets_tokens_the_sandbox_verifies() {
    require_c_tools();
    assert!(
        Path::new("/usr/include/openssl/evp.h").exists(),
        "OpenSSL's headers are not installed, and this test needs them \
         (on Debian/Ubuntu: apt-get install libssl-dev; cargo xtask test does this)"
    );
    let dir = scratch_dir("c-signer");
    make("signer", &dir);
    let program = dir.join("dynamic/signer");
    let keys = repo_root().join("test-support/keys");
    let public = std::fs::read_to_string(keys.join("rsa-public.pem")).unwrap();
    let sandbox = Sandbox::builder()
        .client_public_key(public)
        .start()
        .unwrap();
    let signer_env = [
        ("LWOLF_CLIENT_SECRET", ""),
        ("LWOLF_PRIVATE_KEY_ID", "vault-key-1"),
    ];
    for alg in ["RS256", "RS384", "PS256"] {
        let mut env = signer_env.to_vec();
        env.push(("LWOLF_ASSERTION_ALG", alg));
        let key = keys.join("rsa-pkcs8.pem");
        let out = run_program(
            &program,
            &[key.to_str().unwrap()],
            &sandbox,
            &[],
            &env,
            PROGRAM_LIMIT,
        );
        assert!(out.contains("token_requests: 1\n"), "{alg}: {out}");
    }
    assert_eq!(sandbox.tokens_issued(), 3);

    // A signer that refuses: that token request fails, naming the value; nothing is sent.
    let mut cmd = clean_command(&program);
    cmd.arg("--fail");
    ffi_support::sandbox_env(&mut cmd, &sandbox);
    cmd.envs(signer_env);
    let out = run(&mut cmd, PROGRAM_LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("LWOLF_ERR_CONFIG"), "{stderr}");
    assert!(stderr.contains("the signer returned 7"), "{stderr}");
    assert_eq!(sandbox.token_requests(), 3);

    // Another key than the registered one: the sandbox refuses the signature.
    let mut cmd = clean_command(&program);
    cmd.arg(keys.join("rsa3072-pkcs8.pem"));
    ffi_support::sandbox_env(&mut cmd, &sandbox);
    cmd.envs(signer_env);
    let out = run(&mut cmd, PROGRAM_LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LWOLF_ERR_INVALID_CREDENTIALS"), "{stderr}");
}

/// With no settings at all, each example says which one is missing: a `*_free` between the
/// failure and `lwolf_last_error_message` does not clear the message.
#[test]
fn examples_say_why_they_cannot_start() {
    for build in ["dynamic", "static"] {
        for (name, args) in [
            ("token", &[][..]),
            ("request", &["GET", "/v1/offices"][..]),
            ("stream", &[][..]),
            ("threads", &[][..]),
            ("transact", &["/v1/transactions"][..]),
        ] {
            let program = plain_build().join(build).join(name);
            let out = run(clean_command(&program).args(args), PROGRAM_LIMIT);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{name} ({build}) succeeded: {stderr}"
            );
            assert!(
                stderr.contains("LWOLF_ERR_CONFIG: configuration error: client_id is required"),
                "{name} ({build}) did not say why: {stderr:?}"
            );
        }
    }
}

#[test]
fn header_compiles_as_cxx_and_links() {
    let program = plain_build().join("dynamic/header_cpp");
    let out = run(&mut clean_command(&program), PROGRAM_LIMIT);
    let stdout = expect_success(&out, "header_cpp");
    assert!(
        stdout.starts_with("LWOLF_ERR_INVALID_ARGUMENT: "),
        "{stdout}"
    );
}

/// The header on its own, in every language mode the contract names, warnings as errors.
#[test]
fn header_compiles_alone_in_c_and_cxx_modes() {
    require_c_tools();
    let dir = scratch_dir("header-alone");
    let include = repo_root().join("include");
    let source = dir.join("use_header.c");
    std::fs::write(
        &source,
        "#include \"lwolf_auth.h\"\n#include \"lwolf_auth.h\" /* the guard holds */\n\
         int main(void) { lwolf_status s = LWOLF_OK; lwolf_token_info i; (void)i;\n\
         return (int)s + (lwolf_version() == 0); }\n",
    )
    .unwrap();
    let modes: &[(&str, &[&str])] = &[
        (
            "cc",
            &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"],
        ),
        (
            "cc",
            &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"],
        ),
        (
            "c++",
            &["-x", "c++", "-std=c++11", "-Wall", "-Wextra", "-Werror"],
        ),
        (
            "c++",
            &[
                "-x",
                "c++",
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Werror",
            ],
        ),
    ];
    for (compiler, flags) in modes {
        let mut cmd = Command::new(compiler);
        cmd.args(*flags)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(&include)
            .arg(&source);
        expect_success(
            &run(&mut cmd, PROGRAM_LIMIT),
            &format!("{compiler} {flags:?}"),
        );
    }
}

#[test]
fn under_address_sanitizer() {
    let dir = scratch_dir("c-asan");
    make("asan", &dir);
    // ASan and LeakSanitizer: any error or leak makes the program exit non-zero.
    run_suite(
        &dir.join("asan/dynamic"),
        &[],
        &[
            ("LWOLF_EXPECT_TEST_PANIC", "1"),
            (
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:exitcode=23",
            ),
        ],
        PROGRAM_LIMIT,
    );
}

#[test]
fn under_valgrind() {
    let valgrind = require_tool("valgrind", "valgrind");
    // The plain (non-ASan) dynamic build: the two tools do not mix.
    let dir = plain_build().join("dynamic");
    let valgrind = valgrind.to_string_lossy().into_owned();
    // One known, bounded report is suppressed: see the file for why.
    let suppressions = format!(
        "--suppressions={}",
        repo_root().join("examples-c/valgrind.supp").display()
    );
    run_suite(
        &dir,
        &[
            &valgrind,
            "--quiet",
            "--leak-check=full",
            "--error-exitcode=1",
            "--errors-for-leak-kinds=definite,possible",
            &suppressions,
        ],
        &[("LWOLF_EXPECT_TEST_PANIC", "1")],
        VALGRIND_LIMIT,
    );
}

/// The static link line that examples-c/Makefile, examples-c/README.md and the installed
/// pkg-config file give is the one rustc prints for this crate.
#[test]
fn static_link_line_matches_rustc() {
    let lib = c_library();
    eprintln!(
        "native-static-libs: {} (library build: {:.1?})",
        lib.native_static_libs, lib.build_time
    );
    let makefile = std::fs::read_to_string(repo_root().join("examples-c/Makefile")).unwrap();
    let in_makefile = makefile
        .lines()
        .find_map(|l| l.strip_prefix("STATIC_LIBS := "))
        .expect("STATIC_LIBS in examples-c/Makefile")
        .trim();
    assert_eq!(
        in_makefile, lib.native_static_libs,
        "examples-c/Makefile's STATIC_LIBS is not what rustc prints; update it, \
         examples-c/README.md and the top-level Makefile"
    );
    let top = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    let in_pc = top
        .lines()
        .find_map(|l| l.strip_prefix("STATIC_LIBS := "))
        .expect("STATIC_LIBS in Makefile")
        .trim();
    assert_eq!(
        in_pc, lib.native_static_libs,
        "the top-level Makefile's STATIC_LIBS"
    );
    for readme in ["docs/c.md", "examples-c/README.md"] {
        let text = std::fs::read_to_string(repo_root().join(readme)).unwrap();
        assert!(
            text.contains(&format!("liblwolf_auth.a {}", lib.native_static_libs)),
            "{readme} does not show the link line `liblwolf_auth.a {}`",
            lib.native_static_libs
        );
    }
}

/// `make install PREFIX=…` lays out the header, both libraries (the shared one with its
/// soname links) and a pkg-config file, and a program builds and runs from that alone.
#[test]
fn make_install_and_pkg_config() {
    require_c_tools();
    let pkg_config = require_tool("pkg-config", "pkg-config");
    let lib = c_library();
    let prefix = scratch_dir("install-prefix");
    ffi_support::make_install(&prefix);

    let version = lwolf_auth::VERSION;
    let libdir = prefix.join("lib");
    assert!(prefix.join("include/lwolf_auth.h").is_file());
    assert!(libdir.join("liblwolf_auth.a").is_file());
    assert!(libdir.join(format!("liblwolf_auth.so.{version}")).is_file());
    let link = |name: &str| std::fs::read_link(libdir.join(name)).unwrap();
    assert_eq!(
        link("liblwolf_auth.so.0"),
        Path::new(&format!("liblwolf_auth.so.{version}"))
    );
    assert_eq!(link("liblwolf_auth.so"), Path::new("liblwolf_auth.so.0"));
    let installed_header = std::fs::read(prefix.join("include/lwolf_auth.h")).unwrap();
    let header = std::fs::read(repo_root().join("include/lwolf_auth.h")).unwrap();
    assert!(
        installed_header == header,
        "the installed header differs from include/"
    );

    let pkg = |args: &[&str]| {
        let mut cmd = clean_command(&pkg_config);
        cmd.args(args)
            .arg("lwolf_auth")
            .env("PKG_CONFIG_PATH", libdir.join("pkgconfig"));
        expect_success(
            &run(&mut cmd, PROGRAM_LIMIT),
            &format!("pkg-config {args:?}"),
        )
    };
    assert_eq!(pkg(&["--modversion"]).trim(), version);
    let flags = pkg(&["--cflags", "--libs"]);
    assert!(flags.contains("-llwolf_auth"), "{flags}");
    let static_flags = pkg(&["--static", "--libs"]);
    assert!(
        static_flags.contains(&lib.native_static_libs),
        "{static_flags}"
    );

    // Build token.c from the installed files alone, as a user would.
    let program = prefix.join("token");
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-pthread",
    ])
    .arg(repo_root().join("examples-c/token.c"))
    .arg("-o")
    .arg(&program)
    // No rpath of our own: the .pc file's must be enough to run from this prefix.
    .args(flags.split_whitespace());
    expect_success(
        &run(&mut cc, PROGRAM_LIMIT),
        "cc token.c with pkg-config flags",
    );
    if which("readelf").is_some() {
        let out = run(
            Command::new("readelf").arg("-d").arg(&program),
            PROGRAM_LIMIT,
        );
        let dynamic = expect_success(&out, "readelf -d");
        assert!(dynamic.contains("[liblwolf_auth.so.0]"), "{dynamic}");
    }
    let sandbox = Sandbox::start().expect("start the sandbox");
    let stdout = run_program(&program, &[], &sandbox, &[], &[], PROGRAM_LIMIT);
    assert!(stdout.contains("fingerprint: "), "{stdout}");
}
