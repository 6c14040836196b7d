//! Every command README.md, docs/ and examples-c/README.md show, run as written on a copy of the
//! tree as a fresh clone has it (`target/tmp/readme-clone`: the files git tracks, and new
//! ones it does not ignore), with a sandbox standing in for the gateway:
//!
//! - the C example saved as `prog.c`, built and run dynamically, statically, and installed
//!   under a prefix of the user's own with pkg-config (both ways);
//! - the C++ example and its CMakeLists.txt, built with find_package against that prefix,
//!   shared and static;
//! - examples-c's build and run lines;
//! - the command-line session, each `$` line's output compared with the README's, numbers,
//!   tokens, times and paths aside;
//! - the quickstart; the test command is the one `.ci/run` runs.
//!
//! `fenced_commands_are_all_run` fails when a README gains a command block no test runs.
//! Needs bash, a C and C++ compiler, make, cmake, pkg-config and curl: a missing one fails the test.

use lwolf_test_support::ffi_support;
use lwolf_test_support::temp_dir;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use ffi_support::{clean_command, expect_success, repo_root, require_tool, run};
use temp_dir::TempDir;

/// Long enough for the first run's release builds on two cores.
const LIMIT: Duration = Duration::from_secs(1200);

/// One fenced block of a Markdown file.
struct Block {
    lang: String,
    text: String,
    /// The line of its opening fence, for messages.
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(block), Some(_)) => out.push(block),
            (Some(mut block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    out
}

fn readme(name: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(repo_root().join(name)).unwrap();
    blocks(&text)
}

/// The `n`-th block of `lang` in `file`.
fn block(file: &str, lang: &str, n: usize) -> Block {
    readme(file)
        .into_iter()
        .filter(|b| b.lang == lang)
        .nth(n)
        .unwrap_or_else(|| panic!("{file} has no {lang} block number {n}"))
}

/// The blocks of commands (`sh`, `console`) and which test runs each, by file and order.
const RUN_BLOCKS: &[(&str, &str, usize, &str)] = &[
    ("README.md", "sh", 0, "top_commands"),
    (
        "README.md",
        "sh",
        1,
        "packages::the_readme_install_commands_work",
    ),
    ("docs/c.md", "sh", 0, "c_example_three_ways"),
    ("docs/c.md", "sh", 1, "cpp_and_cmake"),
    ("docs/keys.md", "sh", 0, "private_key_jwt_commands"),
    ("docs/keys.md", "sh", 1, "dpop_commands"),
    ("docs/cli.md", "sh", 0, "cli_session"),
    ("docs/cli.md", "console", 0, "cli_session"),
    (
        "docs/many-processes-and-hosts.md",
        "console",
        0,
        "many_hosts_session",
    ),
    ("examples-c/README.md", "sh", 0, "examples_c_commands"),
    ("examples-c/README.md", "console", 0, "examples_c_commands"),
];

/// The Markdown files whose command blocks must all be run: the README, every page of
/// docs/, and examples-c's README.
fn documents() -> Vec<String> {
    let mut files = vec!["README.md".to_owned(), "examples-c/README.md".to_owned()];
    let mut pages: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

#[test]
fn fenced_commands_are_all_run() {
    let mut expected: HashSet<(String, String, usize)> = RUN_BLOCKS
        .iter()
        .map(|(file, lang, n, _)| (file.to_string(), lang.to_string(), *n))
        .collect();
    for file in documents() {
        let file = file.as_str();
        let mut count = std::collections::HashMap::new();
        for b in readme(file) {
            if !matches!(b.lang.as_str(), "sh" | "console" | "bash" | "shell") {
                continue;
            }
            let n = count.entry(b.lang.clone()).or_insert(0usize);
            assert!(
                expected.remove(&(file.to_owned(), b.lang.clone(), *n)),
                "{file}:{}: a {} block that no test in system-tests/tests/readme.rs runs; add it \
                 to RUN_BLOCKS",
                b.line,
                b.lang
            );
            *n += 1;
        }
    }
    assert!(expected.is_empty(), "blocks listed but gone: {expected:?}");
}

/// The copy of the tree, refreshed once per test run. Its `target/` is kept, so only the
/// first run builds from nothing; files are rewritten only when they changed (their times
/// are what cargo's fingerprints compare), and files git no longer lists are removed.
fn clone_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let git = require_tool("git", "git");
        let out = run(
            Command::new(git).current_dir(repo_root()).args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ]),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "git ls-files failed: this test needs the git checkout"
        );
        let files: HashSet<PathBuf> = out
            .stdout
            .split(|&b| b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| PathBuf::from(String::from_utf8_lossy(f).into_owned()))
            .filter(|f| repo_root().join(f).is_file())
            .collect();
        let dir = ffi_support::target_tmp().join("readme-clone");
        std::fs::create_dir_all(&dir).unwrap();
        remove_unlisted(&dir, &dir, &files);
        for file in &files {
            let (from, to) = (repo_root().join(file), dir.join(file));
            let bytes = std::fs::read(&from).unwrap();
            if std::fs::read(&to).ok().as_deref() != Some(&bytes[..]) {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::write(&to, &bytes).unwrap();
                std::fs::set_permissions(&to, std::fs::metadata(&from).unwrap().permissions())
                    .unwrap();
            }
        }
        dir
    })
}

/// Removes what is under `dir` but not in `keep` (paths relative to `root`), but `target/`.
fn remove_unlisted(root: &Path, dir: &Path, keep: &HashSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        if relative == Path::new("target") {
            continue;
        }
        if path.is_dir() && !path.is_symlink() {
            remove_unlisted(root, &path, keep);
            if std::fs::read_dir(&path).unwrap().next().is_none() {
                let _ = std::fs::remove_dir(&path);
            }
        } else if !keep.contains(&relative) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A shell as a new user has it: in the clone, with `home` as `$HOME`, and none of the
/// developer's `LWOLF_*`, cache or pkg-config settings. Cargo and rustup keep finding their
/// own homes (the toolchain and the crates already fetched).
fn user_shell(home: &Path) -> Command {
    let real_home = std::env::var_os("HOME").map(PathBuf::from);
    let tool_home = |var: &str, dir: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| real_home.as_ref().map(|h| h.join(dir)))
    };
    let mut cmd = clean_command("bash");
    cmd.current_dir(clone_dir())
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("PKG_CONFIG_PATH")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        if let Some(path) = tool_home(var, dir) {
            cmd.env(var, path);
        }
    }
    cmd
}

/// Runs `script` with `bash -e` in a user shell; a detached sandbox it started is killed at
/// the end whatever happens.
fn run_script(home: &Path, script: &str) -> Output {
    let path = home.join("readme-block.sh");
    let text = format!(
        "trap 'test -n \"${{LWOLF_SANDBOX_PID:-}}\" && kill \"$LWOLF_SANDBOX_PID\" 2>/dev/null; true' EXIT\n\
         set -e\n{script}"
    );
    std::fs::write(&path, text).unwrap();
    run(user_shell(home).arg(&path), LIMIT)
}

/// `readelf -d` of a program: what it needs at run time, and its run path.
fn dynamic_section(program: &Path) -> String {
    let readelf = require_tool("readelf", "binutils");
    let out = run(Command::new(readelf).arg("-d").arg(program), LIMIT);
    expect_success(&out, "readelf -d")
}

#[test]
fn c_example_three_ways() {
    for (tool, package) in [
        ("cc", "gcc"),
        ("make", "make"),
        ("pkg-config", "pkg-config"),
    ] {
        require_tool(tool, package);
    }
    let home = TempDir::new("readme-c");
    let dir = clone_dir();
    // "Save it as prog.c at the top of this tree".
    let c = block("docs/c.md", "c", 0);
    std::fs::write(dir.join("prog.c"), &c.text).unwrap();
    let commands = block("docs/c.md", "sh", 0);
    let stdout = expect_success(
        &run_script(home.path(), &commands.text),
        "docs/c.md's C block",
    );

    // Each of the four programs made its request and printed the answer.
    let answers = stdout.lines().filter(|l| l.starts_with("200 {")).count();
    assert_eq!(answers, 4, "{stdout}");
    // And each reached the Transact stand-in with the subscription key (403 without it).
    let transact = stdout.lines().filter(|l| *l == "transact 200").count();
    assert_eq!(transact, 4, "{stdout}");

    let needs = |name: &str| dynamic_section(&dir.join(name));
    let dynamic = needs("prog");
    assert!(dynamic.contains("[liblwolf_auth.so.0]"), "{dynamic}");
    let installed = needs("prog-installed");
    assert!(installed.contains("[liblwolf_auth.so.0]"), "{installed}");
    // The run path, from the relocatable .pc (`${pcfiledir}/..`), leads to the library.
    let libdir = home.path().join(".local/lib").canonicalize().unwrap();
    let run_path = installed
        .lines()
        .find(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|p| p.split(']').next())
        .unwrap_or_else(|| panic!("no run path: {installed}"));
    assert!(
        run_path
            .split(':')
            .any(|p| Path::new(p).canonicalize().is_ok_and(|p| p == libdir)),
        "no run path to {}: {installed}",
        libdir.display()
    );
    for name in ["prog-static", "prog-installed-static"] {
        let section = needs(name);
        assert!(!section.contains("liblwolf_auth"), "{name}: {section}");
    }

    // Without credentials the example says why it cannot start.
    let out = run(
        user_shell(home.path()).args(["-c", "./prog"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "lwolf: configuration error: client_id is required"
    );
}

#[test]
fn private_key_jwt_commands() {
    require_tool("openssl", "openssl");
    let home = TempDir::new("readme-jwt");
    let commands = block("docs/keys.md", "sh", 0);
    let stdout = expect_success(
        &run_script(home.path(), &commands.text),
        "docs/keys.md's private_key_jwt block",
    );
    let dir = clone_dir();
    // The JWK line and the PEM, of an RSA key.
    let public = std::fs::read_to_string(dir.join("lwolf-key.pub")).unwrap();
    let jwk: serde_json::Value = serde_json::from_str(public.lines().next().unwrap()).unwrap();
    assert_eq!(jwk["kty"], "RSA", "{public}");
    assert!(
        jwk["kid"].as_str().is_some_and(|k| k.len() == 43),
        "{public}"
    );
    assert!(public.contains("-----BEGIN PUBLIC KEY-----"), "{public}");
    // `lwolf token --json` got a token from the sandbox with the assertion alone.
    let token_line = stdout
        .lines()
        .find(|l| l.starts_with("{\"token\""))
        .unwrap_or_else(|| panic!("no token JSON in:\n{stdout}"));
    assert!(token_line.contains("\"fingerprint\""), "{token_line}");
    // And the quickstart ran against it from the environment.
    assert!(
        stdout.contains("Using the gateway from the environment"),
        "{stdout}"
    );
    for file in ["lwolf-key.pem", "lwolf-key.pub", "lwolf-public.pem"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
}

#[test]
fn dpop_commands() {
    require_tool("openssl", "openssl");
    let home = TempDir::new("readme-dpop");
    let commands = block("docs/keys.md", "sh", 1);
    let stdout = expect_success(
        &run_script(home.path(), &commands.text),
        "docs/keys.md's DPoP block",
    );
    let token_line = stdout
        .lines()
        .find(|l| l.starts_with("{\"token\""))
        .unwrap_or_else(|| panic!("no token JSON in:\n{stdout}"));
    assert!(
        token_line.contains("\"token_type\":\"DPoP\""),
        "{token_line}"
    );
    // The quickstart against the sandbox from the environment, with a DPoP-bound token.
    assert!(
        stdout.contains("Using the gateway from the environment"),
        "{stdout}"
    );
    assert!(stdout.contains("  type         DPoP"), "{stdout}");
    let _ = std::fs::remove_file(clone_dir().join("dpop-key.pem"));
}

#[test]
fn cpp_and_cmake() {
    for (tool, package) in [("c++", "g++"), ("make", "make"), ("cmake", "cmake")] {
        require_tool(tool, package);
    }
    let home = TempDir::new("readme-cpp");
    let dir = clone_dir();
    // "Save the program as cpp-example/prog.cpp and this as cpp-example/CMakeLists.txt".
    let example = dir.join("cpp-example");
    let _ = std::fs::remove_dir_all(&example);
    std::fs::create_dir_all(&example).unwrap();
    std::fs::write(example.join("prog.cpp"), block("docs/c.md", "cpp", 0).text).unwrap();
    std::fs::write(
        example.join("CMakeLists.txt"),
        block("docs/c.md", "cmake", 0).text,
    )
    .unwrap();
    let commands = block("docs/c.md", "sh", 1);
    let stdout = expect_success(
        &run_script(home.path(), &commands.text),
        "docs/c.md's C++ and CMake block",
    );
    // Both programs made their request and named the token by its fingerprint.
    let answers = stdout
        .lines()
        .filter(|l| *l == "200 application/json")
        .count();
    assert_eq!(answers, 2, "{stdout}");
    let named = stdout.lines().filter(|l| l.starts_with("token ")).count();
    assert_eq!(named, 2, "{stdout}");
    let shared = dynamic_section(&example.join("build/prog"));
    assert!(shared.contains("[liblwolf_auth.so.0]"), "{shared}");
    let fixed = dynamic_section(&example.join("build/prog-static"));
    assert!(!fixed.contains("liblwolf_auth"), "{fixed}");
}

#[test]
fn examples_c_commands() {
    for (tool, package) in [("cc", "gcc"), ("make", "make")] {
        require_tool(tool, package);
    }
    let home = TempDir::new("readme-examples-c");
    let commands = block("examples-c/README.md", "sh", 0);
    let stdout = expect_success(
        &run_script(home.path(), &commands.text),
        "examples-c/README.md's commands",
    );
    assert!(stdout.contains("fingerprint: "), "{stdout}");
    assert!(stdout.contains("status: 200\n"), "{stdout}");
    assert!(stdout.contains("token requests: 1\n"), "{stdout}");
    check_session(
        home.path(),
        "",
        &block("examples-c/README.md", "console", 0),
    );
}

#[test]
fn cli_session() {
    require_tool("curl", "curl");
    let home = TempDir::new("readme-cli");
    let build = block("docs/cli.md", "sh", 0);
    check_session(
        home.path(),
        &build.text,
        &block("docs/cli.md", "console", 0),
    );
}

#[test]
fn many_hosts_session() {
    for (tool, package) in [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
    ] {
        require_tool(tool, package);
    }
    let home = TempDir::new("readme-hosts");
    let build = block("docs/cli.md", "sh", 0);
    check_session(
        home.path(),
        &build.text,
        &block("docs/many-processes-and-hosts.md", "console", 0),
    );
}

/// Runs `prologue`, then each `$ ` line of `session` in one shell, and compares what each
/// printed (stdout and stderr together) with the lines the README shows after it.
fn check_session(home: &Path, prologue: &str, session: &Block) {
    let steps = transcript(&session.text);
    let mut script = format!("{prologue}set +e\n");
    for (i, (command, _)) in steps.iter().enumerate() {
        script.push_str(&format!("printf '{MARK}{i}\\n'\n{{ {command}\n}} 2>&1\n"));
    }
    // Each step is judged by what it printed (a README shows `echo "exit $?"` where the
    // status matters); the session as a whole only has to get to its end.
    script.push_str("exit 0\n");
    let out = run_script(home, &script);
    let stdout = expect_success(&out, "the session");
    let mut got = stdout.split(MARK).skip(1);
    for (i, (command, expected)) in steps.iter().enumerate() {
        let printed = got.next().unwrap_or_default();
        let printed = printed.split_once('\n').map_or("", |(_, rest)| rest);
        let want: Vec<String> = expected.iter().map(|l| shape(l)).collect();
        let have: Vec<String> = printed.lines().map(shape).collect();
        assert_eq!(
            have, want,
            "line {} of the session, `$ {command}` (step {i}) printed:\n{printed}",
            session.line
        );
    }
}

const MARK: &str = "@@readme-step@@";

/// The `$ ` commands of a console block, each with the lines shown after it.
fn transcript(text: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_owned(), Vec::new())),
            None => steps
                .last_mut()
                .expect("a console block starts with a `$ ` line")
                .1
                .push(line.to_owned()),
        }
    }
    steps
}

/// A line with what changes from run to run taken out: every run of word characters that
/// holds a digit (numbers, tokens, times, fingerprints, ports, paths with hashes) becomes `#`.
fn shape(line: &str) -> String {
    let wordy = |c: char| c.is_ascii_alphanumeric() || "_.:/+=-".contains(c);
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if wordy(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn shapes_hide_what_varies_and_keep_the_rest() {
    assert_eq!(shape("HTTP 200 OK"), "HTTP # OK");
    assert_eq!(shape("tenant       -"), "tenant       -");
    assert_eq!(
        shape("refresh_at   2026-11-29T23:39:48Z (in 21h11m)"),
        "refresh_at   # (in #)"
    );
    assert_ne!(shape("HTTP 200 OK"), shape("HTTP 200 Created"));
    let steps = transcript("$ a\nx\ny\n$ b\n");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        steps[0],
        ("a".to_owned(), vec!["x".to_owned(), "y".to_owned()])
    );
}

#[test]
fn top_commands() {
    let top = block("README.md", "sh", 0);
    let commands: Vec<&str> = top
        .text
        .lines()
        .filter_map(|l| l.split('#').next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands.len(), 2, "{}", top.text);
    // The test command is what CI runs (it cannot run itself from here).
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run does not run the README's test command `{}`",
        commands[1]
    );
    // The main job, on a machine with no credentials: the quickstart against the sandbox.
    let home = TempDir::new("readme-top");
    let stdout = expect_success(&run_script(home.path(), commands[0]), commands[0]);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("using a local sandbox"), "{stdout}");
    // Each call the quickstart shows was answered: plain, filtered, and Transact (which
    // needs the subscription key), on one token until invalidate() fetches the second.
    let missing: Vec<&str> = [
        "GET /v1/transactions -> 200 OK",
        "GET /v1/transactions?$filter=status eq 'closed'&$orderby=price desc -> 200 OK",
        "/transact-workflow/v1/transactions -> 200 OK (the same token",
        "The sandbox saw 2 token requests",
    ]
    .into_iter()
    .filter(|line| !stdout.contains(line))
    .collect();
    assert!(missing.is_empty(), "{missing:?} not in:\n{stdout}");
}

/// The README's test command on a machine of the kind it promises (Rust, gcc, Python with
/// pip, Node with npm) and nothing else: with cmake, Go, Redis, valgrind, pkg-config, g++ and
/// make taken off the PATH, `cargo xtask test` in the clean clone asks apt-get for them
/// before anything else (a stand-in apt-get records the call and refuses, so nothing is
/// installed and the run stops there), and `cargo xtask deps --check` names the one command
/// that would install them.
#[test]
fn a_fresh_machine_is_given_what_the_tests_need() {
    let home = TempDir::new("readme-fresh");
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let taken = [
        "cmake",
        "go",
        "gofmt",
        "redis-server",
        "redis-cli",
        "valgrind",
        "pkg-config",
        "c++",
        "g++",
        "make",
        "apt-get",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if taken.iter().any(|t| name == *t) || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), &link);
        }
    }
    let calls = home.path().join("apt-get.calls");
    std::fs::write(
        bin.join("apt-get"),
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1\" in update) exit 0;; esac\n\
             echo 'apt-get: not on this test machine' >&2\nexit 100\n",
            calls.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(bin.join("apt-get"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        bin.join("apt-get"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let command = block("README.md", "sh", 0)
        .text
        .lines()
        .filter_map(|l| l.split('#').next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .nth(1)
        .expect("the README's test command")
        .to_owned();
    let with_path = |cmd: &mut Command| {
        cmd.env("PATH", &bin);
    };
    let mut test = user_shell(home.path());
    test.args(["-c", &command]);
    with_path(&mut test);
    let out = run(&mut test, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{command} passed without the tools:\n{stderr}"
    );
    let asked = std::fs::read_to_string(&calls)
        .unwrap_or_else(|_| panic!("{command} never called apt-get:\n{stderr}"));
    let install = asked
        .lines()
        .find(|l| l.starts_with("install"))
        .unwrap_or_else(|| panic!("no apt-get install among {asked:?}"));
    for package in [
        "cmake",
        "golang-go",
        "redis-server",
        "valgrind",
        "pkg-config",
        "g++",
        "make",
    ] {
        assert!(
            install.split_whitespace().any(|w| w == package),
            "apt-get install lacks {package}: {install}"
        );
    }
    // Asked, it says what to install, and installs nothing.
    let mut check = user_shell(home.path());
    check.args(["-c", "cargo xtask deps --check"]);
    with_path(&mut check);
    let out = run(&mut check, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sudo apt-get update && sudo apt-get install -y")
            && stderr.contains("golang-go")
            && stderr.contains("redis-server"),
        "{stderr}"
    );
}

/// The Python example of docs/api-rules.md (a signer on `cryptography`, the Transact handle,
/// the request id, the stats), run as written against a sandbox that knows the key's public
/// half, with the bindings from the tree and the settings in `LWOLF_*`.
#[test]
fn python_example_of_the_api_rules() {
    let python = require_tool("python3", "python3");
    let lib = ffi_support::c_library();
    let keys = repo_root().join("test-support/keys");
    let public = std::fs::read_to_string(keys.join("rsa-public.pem")).unwrap();
    let sandbox = lwolf_sandbox::Sandbox::builder()
        .client_public_key(public)
        .start()
        .unwrap();
    let dir = TempDir::new("docs-python");
    std::fs::copy(keys.join("rsa-pkcs8.pem"), dir.join("signing-key.pem")).unwrap();
    let example = block("docs/api-rules.md", "python", 0);
    std::fs::write(dir.join("example.py"), &example.text).unwrap();
    let mut cmd = clean_command(python);
    cmd.current_dir(dir.path())
        .arg("example.py")
        .env("PYTHONPATH", repo_root().join("bindings/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LWOLF_AUTH_LIB", lib.dir.join("liblwolf_auth.so"))
        .env("LWOLF_TOKEN_URL", sandbox.token_url())
        .env("LWOLF_API_BASE_URL", sandbox.api_base_url())
        .env("LWOLF_TRANSACT_BASE_URL", sandbox.transact_base_url())
        .env("LWOLF_CLIENT_ID", sandbox.client_id())
        .env("LWOLF_SUBSCRIPTION_KEY", sandbox.subscription_key());
    let stdout = expect_success(
        &run(&mut cmd, Duration::from_secs(120)),
        "docs/api-rules.md's Python example",
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let (status, id) = lines[0].split_once(' ').unwrap();
    assert_eq!(status, "200", "{stdout}");
    assert_eq!(id.len(), 36, "a UUID: {stdout}");
    assert_eq!(lines[1], "1 token request(s)");
    assert_eq!(sandbox.tokens_issued(), 1);
}
