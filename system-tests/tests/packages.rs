//! The release artifacts of `target/dist/` (made by `cargo xtask dist`, which `cargo xtask
//! test` runs first), each installed as its users install it, away from cargo and the
//! source tree (a PATH without cargo, a working directory outside the tree, nothing of
//! `target/` on a library path), against the sandbox:
//!
//! - the Linux archive, unpacked elsewhere: a C program through pkg-config and a C++ one
//!   through CMake's `find_package`, shared and static;
//! - the Debian packages: `dpkg-deb --info`/`--contents`, lintian, and the same programs
//!   built against the `-dev` package unpacked in a throwaway root and run against the
//!   runtime package's library; the CLI package's `lwolf`;
//! - the Python wheel and sdist, the npm package and the Go module: in `packages_*` of
//!   `python.rs`, `node.rs` and `go.rs`' neighbours below.

use lwolf_test_support::ffi_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ffi_support::{clean_command, expect_success, repo_root, require_tool, run, sandbox_env};
use lwolf_sandbox::Sandbox;

const LIMIT: Duration = Duration::from_secs(300);
const VERSION: &str = lwolf_auth::VERSION;

/// An artifact of `target/dist/`; it must have been made.
fn artifact(name: &str) -> PathBuf {
    let path = repo_root().join("target/dist").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask dist` (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A scratch directory outside the source tree (under the system's temporary directory),
/// so nothing can be found by walking up from it.
fn outside(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lwolf-packages-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PATH on which cargo, rustc and rustup are out of reach: the system's directories,
/// behind one whose `cargo`, `rustc` and `rustup` fail saying so (Debian's own cargo, for
/// the Windows build, is in /usr/bin).
fn path_without_cargo() -> String {
    use std::os::unix::fs::PermissionsExt;
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = outside("no-cargo");
        for tool in ["cargo", "rustc", "rustup"] {
            let path = dir.join(tool);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho '{tool} is out of reach in this test' >&2\nexit 127\n"),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    });
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        dir.display()
    )
}

/// A command run in `dir`, with a PATH without cargo and the sandbox's settings.
fn user_command(program: impl AsRef<std::ffi::OsStr>, dir: &Path, sandbox: &Sandbox) -> Command {
    let mut cmd = clean_command(program);
    cmd.current_dir(dir)
        .env("PATH", path_without_cargo())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("LWOLF_AUTH_LIB");
    sandbox_env(&mut cmd, sandbox);
    cmd
}

fn ok(cmd: &mut Command, what: &str) -> String {
    expect_success(&run(cmd, LIMIT), what)
}

/// Builds `examples-c/token.c` with pkg-config (shared and `--static`) and
/// `examples-c/client.cpp` with CMake, against the package found through `pc_path` and
/// `prefix`; runs each, with `env` added, against a sandbox. `sysroot`: the root pkg-config
/// prefixes its paths with (a package unpacked elsewhere).
fn build_and_run(
    work: &Path,
    pc_path: &Path,
    sysroot: Option<&Path>,
    prefix: &Path,
    env: &[(&str, &Path)],
) {
    require_tool("cc", "gcc");
    let cmake = require_tool("cmake", "cmake");
    let sandbox = Sandbox::start().expect("start the sandbox");
    for file in ["token.c", "client.cpp"] {
        std::fs::copy(repo_root().join("examples-c").join(file), work.join(file)).unwrap();
    }
    let pkg_config = |args: &[&str]| {
        let mut cmd = user_command("pkg-config", work, &sandbox);
        cmd.env("PKG_CONFIG_PATH", pc_path).args(args);
        if let Some(root) = sysroot {
            // The root's /usr/include and /usr/lib are not the system's: keep them.
            cmd.env("PKG_CONFIG_SYSROOT_DIR", root)
                .env("PKG_CONFIG_ALLOW_SYSTEM_CFLAGS", "1")
                .env("PKG_CONFIG_ALLOW_SYSTEM_LIBS", "1");
        }
        ok(&mut cmd, "pkg-config")
    };
    for (name, flags) in [
        (
            "token_shared",
            pkg_config(&["--cflags", "--libs", "lwolf_auth"]),
        ),
        (
            "token_static",
            pkg_config(&["--static", "--cflags", "--libs", "lwolf_auth"]),
        ),
    ] {
        let mut cc = user_command("cc", work, &sandbox);
        cc.args(["token.c", "-o", name])
            .args(flags.split_whitespace());
        ok(&mut cc, &format!("cc {name}"));
        let mut program = user_command(work.join(name), work, &sandbox);
        for (key, value) in env {
            program.env(key, value);
        }
        let out = ok(&mut program, name);
        assert!(out.contains("fingerprint: "), "{name}: {out}");
        let needed = ok(
            Command::new("readelf").arg("-d").arg(work.join(name)),
            "readelf",
        );
        assert_eq!(
            needed.contains("[liblwolf_auth.so.0]"),
            name == "token_shared",
            "{name}: {needed}"
        );
    }
    std::fs::write(
        work.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.14)\nproject(uses_lwolf C CXX)\n\
         set(CMAKE_CXX_STANDARD 17)\nfind_package(lwolf_auth 0.1 CONFIG REQUIRED)\n\
         add_executable(cpp_client client.cpp)\n\
         target_link_libraries(cpp_client PRIVATE lwolf_auth::lwolf_auth)\n\
         add_executable(c_static token.c)\n\
         target_link_libraries(c_static PRIVATE lwolf_auth::lwolf_auth_static)\n",
    )
    .unwrap();
    let build = work.join("build");
    ok(
        user_command(&cmake, work, &sandbox)
            .args(["-S", ".", "-B"])
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())),
        "cmake",
    );
    ok(
        user_command(&cmake, work, &sandbox)
            .arg("--build")
            .arg(&build),
        "cmake --build",
    );
    for (program, expect) in [
        ("cpp_client", "status: 200\n"),
        ("c_static", "fingerprint: "),
    ] {
        let mut cmd = user_command(build.join(program), work, &sandbox);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let out = ok(&mut cmd, program);
        assert!(out.contains(expect), "{program}: {out}");
    }
}

#[test]
fn the_linux_archive_works_wherever_it_is_unpacked() {
    let name = format!("lwolf-auth-{VERSION}-linux-x64");
    let tarball = artifact(&format!("{name}.tar.gz"));
    let work = outside("archive");
    ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&work),
        "tar -x",
    );
    // Moved after unpacking: nothing may remember where it was.
    let moved = work.join("moved");
    std::fs::rename(work.join(&name), &moved).unwrap();
    for file in [
        "bin/lwolf",
        "include/lwolf_auth.h",
        "include/lwolf_auth.hpp",
        "lib/liblwolf_auth.a",
        "lib/liblwolf_auth.so",
        "lib/liblwolf_auth.so.0",
        "lib/pkgconfig/lwolf_auth.pc",
        "lib/cmake/lwolf_auth/lwolf_authConfig.cmake",
        "lib/cmake/lwolf_auth/lwolf_authConfigVersion.cmake",
    ] {
        assert!(moved.join(file).exists(), "the archive has no {file}");
    }
    // No path of the build machine is shipped (panic locations are remapped).
    let home_cargo = format!(
        "{}/.cargo/registry",
        std::env::var("HOME").unwrap_or_default()
    );
    for file in ["lib/liblwolf_auth.so.0", "bin/lwolf", "lib/liblwolf_auth.a"] {
        let bytes = std::fs::read(moved.join(file)).unwrap();
        for path in [repo_root().to_str().unwrap(), home_cargo.as_str()] {
            assert!(
                !bytes.windows(path.len()).any(|w| w == path.as_bytes()),
                "{file} holds the build machine's path {path}"
            );
        }
    }
    let pc = std::fs::read_to_string(moved.join("lib/pkgconfig/lwolf_auth.pc")).unwrap();
    assert!(!pc.contains(repo_root().to_str().unwrap()), "{pc}");
    let project = work.join("project");
    std::fs::create_dir_all(&project).unwrap();
    build_and_run(&project, &moved.join("lib/pkgconfig"), None, &moved, &[]);

    let sandbox = Sandbox::start().expect("start the sandbox");
    let out = ok(
        user_command(moved.join("bin/lwolf"), &work, &sandbox).args(["token", "--json"]),
        "lwolf token --json",
    );
    assert!(out.contains("\"fingerprint\""), "{out}");
}

/// `dpkg-deb -f <deb> <field>`.
fn field(deb: &Path, name: &str) -> String {
    ok(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(name),
        "dpkg-deb -f",
    )
    .trim()
    .to_owned()
}

fn contents(deb: &Path) -> String {
    ok(
        Command::new("dpkg-deb").arg("--contents").arg(deb),
        "dpkg-deb --contents",
    )
}

fn deb(package: &str) -> PathBuf {
    artifact(&format!("{package}_{VERSION}-1_amd64.deb"))
}

#[test]
fn the_debian_packages_say_what_they_hold_and_need() {
    require_tool("dpkg-deb", "dpkg");
    let runtime = deb("liblwolf-auth0");
    let dev = deb("liblwolf-auth-dev");
    let cli = deb("lwolf-cli");
    ok(
        Command::new("dpkg-deb").arg("--info").arg(&runtime),
        "dpkg-deb --info",
    );

    assert_eq!(field(&runtime, "Package"), "liblwolf-auth0");
    assert_eq!(field(&runtime, "Multi-Arch"), "same");
    assert_eq!(field(&runtime, "Section"), "libs");
    let depends = field(&runtime, "Depends");
    assert!(depends.contains("libc6 (>= 2."), "{depends}");
    let files = contents(&runtime);
    assert!(files.contains("./usr/lib/x86_64-linux-gnu/liblwolf_auth.so.0 -> liblwolf_auth.so."));
    assert!(files.contains(&format!(
        "./usr/lib/x86_64-linux-gnu/liblwolf_auth.so.{VERSION}"
    )));
    assert!(
        !files.contains(".h\n") && !files.contains("liblwolf_auth.a"),
        "{files}"
    );
    let control = work_control(&runtime);
    let shlibs = std::fs::read_to_string(control.join("shlibs")).unwrap();
    assert_eq!(
        shlibs,
        format!("liblwolf_auth 0 liblwolf-auth0 (>= {VERSION})\n")
    );
    let symbols = std::fs::read_to_string(control.join("symbols")).unwrap();
    assert!(symbols.starts_with("liblwolf_auth.so.0 liblwolf-auth0 #MINVER#\n"));
    let header = std::fs::read_to_string(repo_root().join("include/lwolf_auth.h")).unwrap();
    let declared = xtask::abi::declared_functions(&header).unwrap();
    let listed: std::collections::BTreeSet<String> = symbols
        .lines()
        .filter_map(|l| l.strip_prefix(' ')?.split('@').next().map(str::to_owned))
        .collect();
    assert_eq!(
        listed, declared,
        "the symbols file lists the header's functions"
    );
    assert!(std::fs::read_to_string(control.join("triggers"))
        .unwrap()
        .contains("ldconfig"));

    assert_eq!(field(&dev, "Package"), "liblwolf-auth-dev");
    assert_eq!(field(&dev, "Multi-Arch"), "same");
    assert_eq!(
        field(&dev, "Depends"),
        format!("liblwolf-auth0 (= {VERSION}-1)")
    );
    let files = contents(&dev);
    for file in [
        "./usr/include/lwolf_auth.h",
        "./usr/include/lwolf_auth.hpp",
        "./usr/lib/x86_64-linux-gnu/liblwolf_auth.a",
        "./usr/lib/x86_64-linux-gnu/liblwolf_auth.so -> liblwolf_auth.so.0",
        "./usr/lib/x86_64-linux-gnu/pkgconfig/lwolf_auth.pc",
        "./usr/lib/x86_64-linux-gnu/cmake/lwolf_auth/lwolf_authConfig.cmake",
    ] {
        assert!(
            files.contains(file),
            "the -dev package has no {file}:\n{files}"
        );
    }

    assert_eq!(field(&cli, "Package"), "lwolf-cli");
    assert_eq!(field(&cli, "Multi-Arch"), "foreign");
    let files = contents(&cli);
    assert!(files.contains("./usr/bin/lwolf\n"), "{files}");
    assert!(files.contains("./usr/share/man/man1/lwolf.1.gz"), "{files}");
}

/// The control files of `deb`, extracted into a scratch directory.
fn work_control(deb: &Path) -> PathBuf {
    let dir = outside(&format!(
        "control-{}",
        deb.file_name().unwrap().to_string_lossy()
    ));
    ok(
        Command::new("dpkg-deb").arg("--control").arg(deb).arg(&dir),
        "dpkg-deb --control",
    );
    dir
}

#[test]
fn lintian_finds_no_errors_in_the_debian_packages() {
    let lintian = require_tool("lintian", "lintian");
    for package in ["liblwolf-auth0", "liblwolf-auth-dev", "lwolf-cli"] {
        let out = run(
            Command::new(&lintian)
                .args(["--no-tag-display-limit", "--display-info"])
                .arg(deb(package)),
            LIMIT,
        );
        let report = String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian {package}:\n{report}");
        // Lintian's status is 0 or, with only warnings and notes, 0 as well; 1 is an error,
        // 2 a failure to run.
        assert!(
            out.status.code() == Some(0),
            "lintian {package} ({}): {report}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        println!("lintian {package}:\n{report}");
    }
}

#[test]
fn a_program_builds_against_the_dev_package_and_runs_on_the_runtime() {
    require_tool("dpkg-deb", "dpkg");
    let work = outside("debian");
    let root = work.join("root");
    for package in ["liblwolf-auth0", "liblwolf-auth-dev", "lwolf-cli"] {
        ok(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb(package))
                .arg(&root),
            "dpkg-deb -x",
        );
    }
    let libdir = root.join("usr/lib/x86_64-linux-gnu");
    let project = work.join("project");
    std::fs::create_dir_all(&project).unwrap();
    build_and_run(
        &project,
        &libdir.join("pkgconfig"),
        Some(&root),
        &root.join("usr"),
        // Installed, the library is on the system's path; unpacked here, it is not.
        &[("LD_LIBRARY_PATH", &libdir)],
    );
    let sandbox = Sandbox::start().expect("start the sandbox");
    let out = ok(
        user_command(root.join("usr/bin/lwolf"), &work, &sandbox).args(["token", "--json"]),
        "lwolf token --json",
    );
    assert!(out.contains("\"fingerprint\""), "{out}");
}

/// `pip install` of the venv `bin`, quiet and offline: what to install is the caller's.
fn pip_install(bin: &Path) -> Command {
    let mut cmd = clean_command(bin.join("pip"));
    cmd.args([
        "install",
        "--quiet",
        "--no-index",
        "--disable-pip-version-check",
    ]);
    cmd
}

/// A fresh venv in `dir` with `packages` installed from the wheelhouse `cargo xtask test`
/// fills (no index, no network); its `bin/`.
fn fresh_venv(dir: &Path, packages: &[&str]) -> PathBuf {
    let python = require_tool("python3", "python3");
    let wheelhouse = std::env::var_os("LWOLF_WHEELHOUSE")
        .map(PathBuf::from)
        .filter(|w| w.is_dir())
        .expect("LWOLF_WHEELHOUSE, a directory of wheels: `cargo xtask test` fills and sets it");
    let venv = dir.join("venv");
    ok(
        clean_command(&python).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    let bin = venv.join("bin");
    if !packages.is_empty() {
        ok(
            pip_install(&bin)
                .arg("--find-links")
                .arg(&wheelhouse)
                .args(packages),
            "pip install (from the wheelhouse)",
        );
    }
    bin
}

/// What the installed Python package is asked to do, from outside the tree: a token, a
/// GET, `RequestsAuth` with requests, and a log record through `logging`.
const PYTHON_USER: &str = r#"
import logging, os, lwolf_auth, requests
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
lwolf_auth.logger.addHandler(Keep())
lwolf_auth.logger.setLevel(logging.DEBUG)
print("library", lwolf_auth.library_path())
here = os.path.dirname(lwolf_auth.__file__)
print("typed", all(os.path.exists(os.path.join(here, f)) for f in ("py.typed", "__init__.pyi")))
with lwolf_auth.Client.from_env() as client:
    print("token", len(client.token()) > 20)
    print("get", client.get("/v1/offices").status_code)
    url = os.environ["LWOLF_API_BASE_URL"] + "/v1/offices"
    print("requests", requests.get(url, auth=lwolf_auth.RequestsAuth(client), timeout=30).status_code)
print("logged", any("token" in r for r in records))
"#;

fn check_python_user(stdout: &str, venv_bin: &Path) {
    let library = stdout
        .lines()
        .find_map(|l| l.strip_prefix("library "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let venv = venv_bin.parent().unwrap();
    assert!(
        library.starts_with(venv.to_str().unwrap()),
        "loaded {library}, not the library in the venv"
    );
    for line in [
        "typed True",
        "token True",
        "get 200",
        "requests 200",
        "logged True",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

fn run_python_user(work: &Path, bin: &Path) {
    let sandbox = Sandbox::start().expect("start the sandbox");
    let out = ok(
        user_command(bin.join("python"), work, &sandbox).args(["-c", PYTHON_USER]),
        "the installed Python package",
    );
    check_python_user(&out, bin);
}

#[test]
fn the_wheel_is_manylinux_and_works_without_cargo() {
    let glibc = xtask_glibc();
    let name = format!("lwolf_auth-{VERSION}-py3-none-manylinux_2_{glibc}_x86_64.whl");
    let wheel = artifact(&name);
    // auditwheel reads the wheel's library and says which policy it meets.
    let auditwheel = require_tool("auditwheel", "auditwheel (pip, in target/venv)");
    let report = ok(
        Command::new(auditwheel).arg("show").arg(&wheel),
        "auditwheel show",
    );
    let flat = report.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("manylinux_2_{glibc}_x86_64")),
        "auditwheel does not agree with the tag:\n{report}"
    );
    let work = outside("wheel");
    let bin = fresh_venv(&work, &["requests"]);
    ok(
        pip_install(&bin)
            .arg(&wheel)
            .env("PATH", path_without_cargo()),
        "pip install the wheel",
    );
    run_python_user(&work, &bin);
}

/// The glibc the wheel's tag names: the newest `GLIBC_2.N` the built library asks for.
fn xtask_glibc() -> u32 {
    let shared = repo_root().join(format!("target/dist/.build/liblwolf_auth.so.{VERSION}"));
    let out = ok(Command::new("objdump").arg("-T").arg(&shared), "objdump -T");
    out.split("GLIBC_2.")
        .skip(1)
        .filter_map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .max()
        .expect("the library needs some glibc")
}

#[test]
fn the_windows_wheel_holds_the_dll() {
    let wheel = artifact(&format!("lwolf_auth-{VERSION}-py3-none-win_amd64.whl"));
    let listing = ok(
        Command::new("python3")
            .args(["-m", "zipfile", "-l"])
            .arg(&wheel),
        "python3 -m zipfile -l",
    );
    assert!(listing.contains("lwolf_auth/lwolf_auth.dll"), "{listing}");
    assert!(!listing.contains(".so "), "{listing}");
    let tags = ok(
        Command::new("unzip").arg("-p").arg(&wheel).arg("*/WHEEL"),
        "unzip -p WHEEL",
    );
    assert!(tags.contains("Tag: py3-none-win_amd64"), "{tags}");
    assert!(tags.contains("Root-Is-Purelib: false"), "{tags}");
}

#[test]
fn the_sdist_builds_the_library_where_no_wheel_fits() {
    let sdist = artifact(&format!("lwolf_auth-{VERSION}.tar.gz"));
    let work = outside("sdist");
    let bin = fresh_venv(&work, &["setuptools", "wheel", "requests"]);
    // cargo builds the library from the sdist's rust/, offline (the registry cache has the
    // locked crates), into a target directory of the workspace's so that the dependencies
    // built for the tests are reused.
    let cargo = ffi_support::cargo();
    let path = format!(
        "{}:{}",
        cargo.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    ok(
        pip_install(&bin)
            .arg("--no-build-isolation")
            .arg(&sdist)
            .current_dir(&work)
            .env("PATH", path)
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TARGET_DIR", repo_root().join("target/sdist-build")),
        "pip install the sdist",
    );
    run_python_user(&work, &bin);
}

const GO_MODULE: &str = "github.com/lwolf-auth/lwolf-auth/bindings/go";

const GO_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"

	lwolfauth "github.com/lwolf-auth/lwolf-auth/bindings/go"
)

func main() {
	client, err := lwolfauth.FromEnv(nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer client.Close()
	token, err := client.Token()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("token", len(token) > 20)
	resp, err := client.Get("/v1/offices")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("get", resp.Status)
}
"#;

#[test]
fn the_go_module_builds_from_a_proxy_with_no_library_installed() {
    let go = require_tool("go", "golang-go");
    let proxy = artifact("goproxy");
    let work = outside("go");
    let app = work.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.go"), GO_PROGRAM).unwrap();
    let sandbox = Sandbox::start().expect("start the sandbox");
    let go_command = |args: &[&str]| {
        let mut cmd = user_command(&go, &app, &sandbox);
        cmd.args(args)
            .env("GOPATH", work.join("gopath"))
            .env("GOMODCACHE", work.join("gopath/pkg/mod"))
            .env("GOCACHE", work.join("gocache"))
            .env("GOPROXY", format!("file://{}", proxy.display()))
            // Only the proxy: no checksum database (it is not on the network here).
            .env("GONOSUMDB", "github.com/lwolf-auth")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "1")
            .env_remove("CGO_LDFLAGS")
            .env_remove("CGO_CFLAGS");
        cmd
    };
    ok(
        &mut go_command(&["mod", "init", "example.com/app"]),
        "go mod init",
    );
    ok(
        &mut go_command(&["get", &format!("{GO_MODULE}@v{VERSION}")]),
        "go get",
    );
    ok(&mut go_command(&["build", "-o", "app", "."]), "go build");
    let needed = ok(
        Command::new("readelf").arg("-d").arg(app.join("app")),
        "readelf",
    );
    assert!(!needed.contains("liblwolf_auth"), "{needed}");
    let out = ok(
        &mut user_command(app.join("app"), &app, &sandbox),
        "the Go program",
    );
    assert!(out.contains("token true"), "{out}");
    assert!(out.contains("get 200"), "{out}");
}

/// What a Node user does with the installed package: the Promise forms (a token, a GET), a
/// blocking one, and an error with its status.
const NODE_USER: &str = r#"
const { Client, LwolfError, Status, libraryPath } = require('lwolf-auth');
(async () => {
  console.log('library', libraryPath());
  const client = Client.fromEnv();
  console.log('token', (await client.token()).length > 20);
  console.log('tokenSync', client.tokenSync().length > 20);
  console.log('get', (await client.get('/v1/offices')).status);
  const wrong = Client.fromEnv({ client_secret: 'not-the-secret' });
  try {
    await wrong.token();
    console.log('error none');
  } catch (e) {
    console.log('error', e instanceof LwolfError, e.status === Status.ERR_INVALID_CREDENTIALS);
  }
  client.close();
  wrong.close();
})().catch((e) => { console.log('failed', e); process.exit(1); });
"#;

#[test]
fn the_npm_package_installs_and_works_without_cargo() {
    let node = require_tool("node", "nodejs");
    let npm = require_tool("npm", "npm");
    let tarball = artifact(&format!("lwolf-auth-{VERSION}.tgz"));
    let work = outside("npm");
    std::fs::write(
        work.join("package.json"),
        "{\"name\":\"app\",\"private\":true}\n",
    )
    .unwrap();
    let sandbox = Sandbox::start().expect("start the sandbox");
    // koffi, the one dependency, from a stand-in registry on loopback (no network).
    let registry = npm_registry(&work);
    ok(
        user_command(&npm, &work, &sandbox)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg(&tarball)
            .env("npm_config_registry", format!("{}/", registry.url()))
            .env("npm_config_cache", work.join("npm-cache")),
        "npm install the package",
    );
    let installed = work.join("node_modules/lwolf-auth");
    assert!(
        installed.join("index.d.ts").is_file(),
        "no TypeScript types"
    );
    let manifest = std::fs::read_to_string(installed.join("package.json")).unwrap();
    assert!(manifest.contains("\"types\": \"index.d.ts\""), "{manifest}");
    let out = ok(
        user_command(&node, &work, &sandbox).args(["-e", NODE_USER]),
        "the installed npm package",
    );
    let library = out
        .lines()
        .find_map(|l| l.strip_prefix("library "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        Path::new(library),
        installed.join("prebuilds/linux-x64/liblwolf_auth.so"),
        "{out}"
    );
    for line in ["token true", "tokenSync true", "get 200", "error true true"] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

/// The commands of README.md's install block (its second `sh` block), without comments.
fn readme_install_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(2)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md's second sh block");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `line` run by bash in `dir`, as a user types it, with `env` set.
fn run_line(line: &str, dir: &Path, sandbox: &Sandbox, env: &[(&str, String)]) -> String {
    let mut cmd = user_command("bash", dir, sandbox);
    cmd.args(["-c", line]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    ok(&mut cmd, line)
}

/// A stand-in for the npm registry on loopback: the packuments and tarballs of lwolf-auth (the
/// artifact) and koffi (from npm's cache), as registry.npmjs.org would serve them.
fn npm_registry(work: &Path) -> lwolf_test_support::common::Server {
    use lwolf_test_support::common::{Action, Server};
    let npm = require_tool("npm", "npm");
    let packs = work.join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    // koffi's tarball, from the cache `npm ci` of bindings/node filled (offline).
    ok(
        Command::new(&npm)
            .args(["pack", "--offline", "--quiet", "--pack-destination"])
            .arg(&packs)
            .arg(format!("koffi@{}", koffi_version())),
        "npm pack koffi (from npm's cache)",
    );
    std::fs::copy(
        artifact(&format!("lwolf-auth-{VERSION}.tgz")),
        packs.join(format!("lwolf-auth-{VERSION}.tgz")),
    )
    .unwrap();
    let server = Server::new(Action::status(404));
    let base = server.url();
    let packages: Vec<(String, String, Vec<u8>)> = [
        ("lwolf-auth", VERSION.to_owned()),
        ("koffi", koffi_version()),
    ]
    .into_iter()
    .map(|(name, version)| {
        let tarball = std::fs::read(packs.join(format!("{name}-{version}.tgz"))).unwrap();
        (name.to_owned(), version, tarball)
    })
    .collect();
    let manifests: Vec<(String, serde_json::Value)> = packages
        .iter()
        .map(|(name, version, _)| {
            let dir = work.join(format!("manifest-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            ok(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(packs.join(format!("{name}-{version}.tgz")))
                    .arg("-C")
                    .arg(&dir)
                    .arg("package/package.json"),
                "tar -x package.json",
            );
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("package/package.json")).unwrap())
                    .unwrap();
            manifest["dist"] = serde_json::json!({
                "tarball": format!("{base}/{name}/-/{name}-{version}.tgz"),
            });
            let packument = serde_json::json!({
                "name": name,
                "dist-tags": { "latest": version },
                "versions": { version.clone(): manifest },
            });
            (name.clone(), packument)
        })
        .collect();
    server.push_n(
        Action::dynamic(move |req| {
            let path = req.path.trim_start_matches('/');
            for (name, packument) in &manifests {
                if path == name {
                    return Action::json(200, packument.to_string());
                }
            }
            for (name, version, tarball) in &packages {
                if path == format!("{name}/-/{name}-{version}.tgz") {
                    return Action::body(200, tarball.clone());
                }
            }
            Action::status(404)
        }),
        64,
    );
    server
}

/// The koffi version bindings/node pins.
fn koffi_version() -> String {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("bindings/node/package.json")).unwrap(),
    )
    .unwrap();
    manifest["dependencies"]["koffi"]
        .as_str()
        .expect("bindings/node pins koffi")
        .to_owned()
}

/// README.md's install commands, each run as written, with the registries they reach once
/// the artifacts are published stood in for by `target/dist/`: pip's index by
/// `PIP_FIND_LINKS`, npm's registry by a server on loopback, Go's proxy by `GOPROXY=file://`.
/// Each installed package is then used against the sandbox.
#[test]
fn the_readme_install_commands_work() {
    let commands = readme_install_commands();
    let dist = repo_root().join("target/dist");
    let sandbox = Sandbox::start().expect("start the sandbox");
    let mut ran = 0;
    for line in &commands {
        assert!(
            !line.contains("0.1.0") || VERSION == "0.1.0",
            "README.md's install block names 0.1.0; this is {VERSION}"
        );
        let tool = line.split_whitespace().next().unwrap();
        match tool {
            "pip" => {
                let work = outside("readme-pip");
                let bin = fresh_venv(&work, &["requests"]);
                let wheelhouse = std::env::var("LWOLF_WHEELHOUSE").unwrap();
                let path = format!("{}:{}", bin.display(), path_without_cargo());
                run_line(
                    line,
                    &work,
                    &sandbox,
                    &[
                        ("PATH", path),
                        ("PIP_NO_INDEX", "1".into()),
                        ("PIP_FIND_LINKS", format!("{} {wheelhouse}", dist.display())),
                        ("PIP_DISABLE_PIP_VERSION_CHECK", "1".into()),
                    ],
                );
                run_python_user(&work, &bin);
            }
            "npm" => {
                let work = outside("readme-npm");
                let registry = npm_registry(&work);
                let project = work.join("app");
                std::fs::create_dir_all(&project).unwrap();
                std::fs::write(
                    project.join("package.json"),
                    "{\"name\":\"app\",\"private\":true}\n",
                )
                .unwrap();
                run_line(
                    line,
                    &project,
                    &sandbox,
                    &[
                        ("npm_config_registry", format!("{}/", registry.url())),
                        (
                            "npm_config_cache",
                            work.join("npm-cache").display().to_string(),
                        ),
                        ("npm_config_audit", "false".into()),
                        ("npm_config_fund", "false".into()),
                        ("npm_config_update_notifier", "false".into()),
                    ],
                );
                let node = require_tool("node", "nodejs");
                let out = ok(
                    user_command(&node, &project, &sandbox).args(["-e", NODE_USER]),
                    "the npm package installed by name",
                );
                for expect in ["token true", "get 200", "error true true"] {
                    assert!(out.contains(expect), "{out}");
                }
            }
            "go" => {
                let go = require_tool("go", "golang-go");
                let work = outside("readme-go");
                let app = work.join("app");
                std::fs::create_dir_all(&app).unwrap();
                std::fs::write(app.join("main.go"), GO_PROGRAM).unwrap();
                let env = [
                    ("GOPATH", work.join("gopath").display().to_string()),
                    ("GOCACHE", work.join("gocache").display().to_string()),
                    ("GOPROXY", format!("file://{}/goproxy", dist.display())),
                    ("GONOSUMDB", "github.com/lwolf-auth".into()),
                    ("GOFLAGS", "-mod=mod".into()),
                    ("GOTOOLCHAIN", "local".into()),
                    ("CGO_ENABLED", "1".into()),
                ];
                let go = go.display().to_string();
                run_line(
                    &format!("{go} mod init example.com/app"),
                    &app,
                    &sandbox,
                    &env,
                );
                let path = format!(
                    "{}:{}",
                    Path::new(&go).parent().unwrap().display(),
                    path_without_cargo()
                );
                let mut env_with_path = env.to_vec();
                env_with_path.push(("PATH", path));
                run_line(line, &app, &sandbox, &env_with_path);
                run_line("go build -o app .", &app, &sandbox, &env_with_path);
                let out = ok(
                    &mut user_command(app.join("app"), &app, &sandbox),
                    "the Go program",
                );
                assert!(out.contains("get 200"), "{out}");
            }
            "tar" => {
                let work = outside("readme-tar");
                let name = format!("lwolf-auth-{VERSION}-linux-x64");
                std::fs::copy(
                    dist.join(format!("{name}.tar.gz")),
                    work.join(format!("{name}.tar.gz")),
                )
                .unwrap();
                run_line(line, &work, &sandbox, &[]);
                let out = ok(
                    user_command(work.join(&name).join("bin/lwolf"), &work, &sandbox).arg("token"),
                    "lwolf token from the archive",
                );
                assert!(out.trim().len() > 20, "{out}");
            }
            other => panic!("README.md's install block has a command no test knows: {other}"),
        }
        ran += 1;
    }
    assert_eq!(ran, 4, "README.md's install block: {commands:?}");
}
