//! Runs the Go binding's tests (`bindings/go`, `go test ./...` against the sandbox example,
//! which the tests start) on the release library, with no network (`GOPROXY=off`: the
//! package has no dependency beyond the standard library and cgo).

use lwolf_test_support::ffi_support;

use std::time::Duration;

use ffi_support::{c_library, clean_command, expect_success, repo_root, require_tool, run};

#[test]
fn go_binding_tests() {
    let go = require_tool("go", "golang-go");
    require_tool("cc", "gcc");
    let lib = c_library();
    let dir = repo_root().join("bindings/go");
    let libdir = lib.dir.display();
    let mut cmd = clean_command(&go);
    cmd.current_dir(&dir)
        .args(["test", "-count=1", "-v", "./..."])
        .env("CGO_ENABLED", "1")
        .env("CGO_LDFLAGS", format!("-L{libdir} -Wl,-rpath,{libdir}"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("LWOLF_SANDBOX_BIN", ffi_support::sandbox_binary());
    let out = run(&mut cmd, Duration::from_secs(600));
    let stdout = expect_success(&out, "go test ./... in bindings/go");
    let passed = stdout.lines().filter(|l| l.starts_with("--- PASS")).count();
    assert!(passed >= 6, "only {passed} Go tests passed:\n{stdout}");
    assert!(
        !stdout.contains("--- FAIL") && !stdout.contains("--- SKIP"),
        "{stdout}"
    );

    let mut vet = clean_command(&go);
    vet.current_dir(&dir)
        .args(["vet", "./..."])
        .env("CGO_LDFLAGS", format!("-L{libdir}"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local");
    expect_success(&run(&mut vet, Duration::from_secs(300)), "go vet ./...");
    let gofmt = go.with_file_name("gofmt");
    let mut fmt = clean_command(&gofmt);
    fmt.current_dir(&dir).args(["-l", "."]);
    let unformatted = expect_success(&run(&mut fmt, Duration::from_secs(60)), "gofmt -l");
    assert_eq!(unformatted.trim(), "", "not gofmt-formatted");
}
