//! Runs the Node binding's tests (`bindings/node`, `npm test`: node:test against the sandbox
//! example, which the tests start) on the release library. Installs its one dependency,
//! koffi, with `npm ci` when `node_modules` does not match the lock file; a failed install
//! fails the test.

use lwolf_test_support::ffi_support;

use std::process::Command;
use std::time::Duration;

use ffi_support::{c_library, clean_command, expect_success, repo_root, require_tool, run};

#[test]
fn node_binding_tests() {
    let npm = require_tool("npm", "npm");
    require_tool("node", "nodejs");
    let dir = repo_root().join("bindings/node");
    let lock =
        std::fs::read(dir.join("package-lock.json")).expect("bindings/node/package-lock.json");
    let stamp = dir.join("node_modules/.lwolf-installed-from");
    let digest = format!(
        "{:x}",
        lock.iter()
            .fold(0u64, |h, &b| h.wrapping_mul(1_099_511_628_211)
                ^ u64::from(b))
    );
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(digest.as_str()) {
        let mut install = Command::new(&npm);
        install
            .current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
        expect_success(
            &run(&mut install, Duration::from_secs(600)),
            "npm ci in bindings/node",
        );
        std::fs::write(&stamp, &digest).unwrap();
    }
    let sandbox = ffi_support::sandbox_binary();
    let lib = c_library();
    let mut cmd = clean_command(&npm);
    cmd.current_dir(&dir)
        .arg("test")
        .env("LWOLF_AUTH_LIB", lib.dir.join("liblwolf_auth.so"))
        .env("LWOLF_SANDBOX_BIN", &sandbox);
    let out = run(&mut cmd, Duration::from_secs(300));
    let stdout = expect_success(&out, "npm test in bindings/node");
    let count = |what: &str| -> usize {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {what} "))?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {what}` line:\n{stdout}"))
    };
    assert!(count("pass") >= 5, "{stdout}");
    assert_eq!(count("fail"), 0, "{stdout}");
    assert_eq!(count("skipped"), 0, "{stdout}");
}
