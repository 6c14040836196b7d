//! The C++ API (`include/lwolf_auth.hpp`) and the CMake package, as C++ users meet them:
//! `examples-c/client.cpp` and `examples-c/test_cpp.cpp` built as C++17 and C++20 with
//! `-Wall -Wextra -Wpedantic -Werror`, run against a sandbox, once more under AddressSanitizer
//! and UndefinedBehaviorSanitizer and once under valgrind; and `make install` into a
//! temporary prefix, used by a CMake project through `find_package`.
//!
//! Needs a C++ compiler, make, cmake and valgrind: a missing one fails the test with what to
//! install (`.ci/run` installs them).

use lwolf_test_support::ffi_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ffi_support::{
    clean_command, expect_success, make_examples, repo_root, require_tool, run, sandbox_env,
    scratch_dir,
};
use lwolf_sandbox::Sandbox;

const LIMIT: Duration = Duration::from_secs(300);

/// Runs `program` (behind `prefix`, valgrind say) against a new sandbox; its stdout.
fn run_against_sandbox(program: &Path, prefix: &[&str]) -> String {
    let sandbox = Sandbox::start().expect("start the sandbox");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = clean_command(first);
            c.args(rest).arg(program);
            c
        }
        None => clean_command(program),
    };
    sandbox_env(&mut cmd, &sandbox);
    expect_success(&run(&mut cmd, LIMIT), &program.display().to_string())
}

fn check_test_cpp(stdout: &str) {
    let passed: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cpp checks: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    assert!(passed >= 38, "only {passed} checks ran:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn cpp_api_as_cpp17_and_cpp20() {
    require_tool("c++", "g++");
    let dir = make_examples(&["cpp"], "cpp-plain");
    for standard in ["cpp17", "cpp20"] {
        check_test_cpp(&run_against_sandbox(
            &dir.join(standard).join("test_cpp"),
            &[],
        ));
        let client = run_against_sandbox(&dir.join(standard).join("client"), &[]);
        for line in [
            "status: 200\n",
            "content-type: application/json\n",
            "streamed: 200, ",
        ] {
            assert!(client.contains(line), "{line:?} not in:\n{client}");
        }
    }
}

#[test]
fn cpp_api_under_sanitizers() {
    require_tool("c++", "g++");
    let dir = make_examples(&["cpp-asan"], "cpp-asan").join("asan");
    for standard in ["cpp17", "cpp20"] {
        check_test_cpp(&run_against_sandbox(
            &dir.join(standard).join("test_cpp"),
            &[],
        ));
    }
}

#[test]
fn cpp_api_under_valgrind() {
    require_tool("c++", "g++");
    let valgrind = require_tool("valgrind", "valgrind");
    let dir = make_examples(&["cpp"], "cpp-valgrind");
    let suppressions = format!(
        "--suppressions={}",
        repo_root().join("examples-c/valgrind.supp").display()
    );
    let valgrind = valgrind.to_string_lossy().into_owned();
    check_test_cpp(&run_against_sandbox(
        &dir.join("cpp17/test_cpp"),
        &[
            &valgrind,
            "--quiet",
            "--leak-check=full",
            "--error-exitcode=1",
            "--errors-for-leak-kinds=definite,possible",
            &suppressions,
        ],
    ));
}

const CMAKE_PROJECT: &str = r#"cmake_minimum_required(VERSION 3.14)
project(uses_lwolf C CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(lwolf_auth @WANT@ CONFIG REQUIRED)
add_executable(cpp_client client.cpp)
target_link_libraries(cpp_client PRIVATE lwolf_auth::lwolf_auth)
add_executable(c_static token.c)
target_link_libraries(c_static PRIVATE lwolf_auth::lwolf_auth_static)
"#;

/// Configures the project asking for version `want`; the output of cmake.
fn configure(cmake: &Path, project: &Path, prefix: &Path, want: &str) -> std::process::Output {
    std::fs::write(
        project.join("CMakeLists.txt"),
        CMAKE_PROJECT.replace("@WANT@", want),
    )
    .unwrap();
    let build = project.join(format!("build-{want}"));
    let mut cmd = clean_command(cmake);
    cmd.arg("-S")
        .arg(project)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()));
    run(&mut cmd, LIMIT)
}

#[test]
fn cmake_package_from_make_install() {
    require_tool("c++", "g++");
    let cmake = require_tool("cmake", "cmake");
    let prefix = scratch_dir("cmake-prefix");
    ffi_support::make_install(&prefix);
    let package = prefix.join("lib/cmake/lwolf_auth");
    assert!(package.join("lwolf_authConfig.cmake").is_file());
    assert!(package.join("lwolf_authConfigVersion.cmake").is_file());
    assert_eq!(
        std::fs::read(prefix.join("include/lwolf_auth.hpp")).unwrap(),
        std::fs::read(repo_root().join("include/lwolf_auth.hpp")).unwrap()
    );

    let project = scratch_dir("cmake-project");
    for file in ["client.cpp", "token.c"] {
        std::fs::copy(
            repo_root().join("examples-c").join(file),
            project.join(file),
        )
        .unwrap();
    }
    // The version file: 0.1 and 0.1.0 are this one; 0.2 and 1.0 are not (before 1.0 a minor
    // version may change the ABI).
    let version = lwolf_auth::VERSION;
    assert!(
        version.starts_with("0.1."),
        "update the versions below: {version}"
    );
    for refused in ["0.2", "1.0"] {
        let out = configure(&cmake, &project, &prefix, refused);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "find_package({refused}) was accepted"
        );
        assert!(stderr.contains(version), "{stderr}");
    }
    expect_success(
        &configure(&cmake, &project, &prefix, "0.1.0"),
        "cmake (0.1.0)",
    );
    expect_success(&configure(&cmake, &project, &prefix, "0.1"), "cmake (0.1)");
    let build = project.join("build-0.1");
    let mut cmd = clean_command(&cmake);
    cmd.arg("--build").arg(&build);
    expect_success(&run(&mut cmd, LIMIT), "cmake --build");

    let client = run_against_sandbox(&build.join("cpp_client"), &[]);
    assert!(client.contains("status: 200\n"), "{client}");
    let token = run_against_sandbox(&build.join("c_static"), &[]);
    assert!(token.contains("fingerprint: "), "{token}");
    // Shared and static as asked: readelf shows the one NEEDED and not the other.
    let needed = |program: &str| {
        let out = run(
            Command::new("readelf").arg("-d").arg(build.join(program)),
            LIMIT,
        );
        expect_success(&out, "readelf -d")
    };
    assert!(needed("cpp_client").contains("[liblwolf_auth.so.0]"));
    assert!(!needed("c_static").contains("liblwolf_auth"));
}
