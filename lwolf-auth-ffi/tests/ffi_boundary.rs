//! The C ABI's structural promises, checked from Rust:
//!
//! - every `extern "C" fn` in `the C crate's src/` is exactly one call of the panic-boundary helper
//!   (read from the sources, as rustls-ffi learnt to do), takes no Rust enum from C, and is
//!   declared in the header;
//! - a panic inside an exported function comes back as `LWOLF_ERR_INTERNAL` with a message;
//! - the token hot path (a cached token) allocates nothing, even right after a failure;
//! - tenant clients outlive their parent; messages never carry the secret or the token.

use lwolf_test_support::c_calls;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::path::Path;
use std::ptr;

use c_calls::{client, last_error, token};
use lwolf_auth_ffi::*;
use lwolf_sandbox::Sandbox;

// ---------------------------------------------------------------------------------------------
// Counting allocations made by this thread

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is.
        unsafe { System.realloc(p, layout, new_size) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        count_one();
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn sandbox_client(sandbox: &Sandbox, secret: &str) -> *mut lwolf_client {
    client(&[
        ("token_url", &sandbox.token_url()),
        ("api_base_url", &sandbox.api_base_url()),
        ("client_id", sandbox.client_id()),
        ("client_secret", secret),
    ])
}

// ---------------------------------------------------------------------------------------------
// The sources: every exported function goes through the boundary

/// The exported functions of `the C crate's src/`, each with its parameter list and body.
struct ExternFn {
    file: String,
    name: String,
    params: String,
    body: String,
}

/// `extern "C"` as it reads after [`blank_literals`] (which would blank the `C`).
const EXTERN_C: &str = "EXTERN_C__";

/// Replaces the contents of comments, string and char literals with spaces, so that braces
/// and parentheses in them do not count (byte offsets are kept). `extern "C"` outside them
/// becomes [`EXTERN_C`].
fn blank_literals(src: &str) -> String {
    assert_eq!(EXTERN_C.len(), "extern \"C\"".len());
    let src = src.replace("extern \"C\"", EXTERN_C);
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                out[i] = b' ';
                i += 1;
            }
            out[i] = b' ';
            out[i + 1] = b' ';
            i += 2;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                out[j] = b' ';
                j += 1;
            }
            i = j + close.len();
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out[i] = b' ';
                    i += 1;
                }
                out[i] = b' ';
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\'') -- not a lifetime ('a) or a label.
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for o in &mut out[i + 1..end] {
                        *o = b' ';
                    }
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The index of the bracket closing the one at `open`.
fn matching(src: &str, open: usize) -> usize {
    let (o, c) = match src.as_bytes()[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        other => panic!("not a bracket: {}", other as char),
    };
    let mut depth = 0;
    for (i, &ch) in src.as_bytes().iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unbalanced brackets");
}

/// The `pub unsafe extern "C" fn`s of one source file; an error for an `extern "C"` that is
/// not a `#[no_mangle] pub unsafe extern "C" fn` (a safe one would let safe Rust pass it a
/// dangling pointer), or for a `macro_rules!` (which could hide one from cbindgen and from
/// this test).
fn parse_extern_fns(file: &str, raw: &str) -> Result<Vec<ExternFn>, String> {
    let src = blank_literals(raw);
    if src.contains("macro_rules!") {
        return Err(format!("{file}: no macro_rules! in the C crate's src/"));
    }
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(at) = src[rest..].find(EXTERN_C) {
        let start = rest + at;
        let after = src[start + EXTERN_C.len()..].trim_start();
        // A function pointer type (`lwolf_write_fn`, a callback field): not an export.
        if after.starts_with("fn(") {
            rest = start + EXTERN_C.len();
            continue;
        }
        // The one foreign block: `pthread_atfork`, in fork.rs.
        if after.starts_with('{') && file == "fork.rs" {
            rest = start + EXTERN_C.len();
            continue;
        }
        if !after.starts_with("fn ") {
            return Err(format!("{file}: `extern \"C\"` not followed by `fn`"));
        }
        let name_start = start + src[start..].find("fn ").unwrap() + 3;
        let open_paren = name_start + src[name_start..].find('(').unwrap();
        let name = src[name_start..open_paren].trim().to_owned();
        let close_paren = matching(&src, open_paren);
        let open_brace = close_paren + src[close_paren..].find('{').unwrap();
        let close_brace = matching(&src, open_brace);
        // What stands between the previous item and this one: attributes and `pub`.
        let before = &src[..start];
        // A callback the C library calls (the fork handlers): private, `on_*`, and one call
        // of the callback boundary.
        let item_start = before.rfind(';').into_iter().chain(before.rfind('}')).max();
        if before[item_start.map_or(0, |i| i + 1)..].trim().is_empty() {
            let body = src[open_brace + 1..close_brace].trim();
            let one_call = body.starts_with("callback_boundary(")
                && matching(body, "callback_boundary(".len() - 1) == body.len() - 1;
            if !name.starts_with("on_") || !one_call {
                return Err(format!(
                    "{file}: {name}: a private extern fn must be an on_* callback whose body \
                     is one callback_boundary(...) call"
                ));
            }
            rest = close_brace;
            continue;
        }
        if !before.trim_end().ends_with("pub unsafe") {
            return Err(format!(
                "{file}: {name} is not `pub unsafe extern \"C\" fn`"
            ));
        }
        let item_start = before.rfind(';').into_iter().chain(before.rfind('}')).max();
        if !before[item_start.map_or(0, |i| i + 1)..].contains("#[no_mangle]") {
            return Err(format!("{file}: {name} is not #[no_mangle]"));
        }
        found.push(ExternFn {
            file: file.to_owned(),
            name,
            params: src[open_paren + 1..close_paren].to_owned(),
            body: src[open_brace + 1..close_brace].to_owned(),
        });
        rest = close_brace;
    }
    Ok(found)
}

/// Whether `f`'s body is exactly one call of the boundary helper, and its parameters take no
/// Rust enum from C.
fn check_boundary(f: &ExternFn) -> Result<(), String> {
    let body = f.body.trim();
    let Some(call) = ["ffi_boundary(", "ffi_boundary_keep_last_error("]
        .iter()
        .find(|p| body.starts_with(**p))
    else {
        return Err(format!(
            "{}: {} does not start with ffi_boundary(...):\n{body}",
            f.file, f.name
        ));
    };
    let close = matching(body, call.len() - 1);
    if !body[close + 1..].trim().is_empty() {
        return Err(format!(
            "{}: {} does more than the one ffi_boundary(...) call",
            f.file, f.name
        ));
    }
    if !f.name.starts_with("lwolf_") {
        return Err(format!("{}: {} lacks the lwolf_ prefix", f.file, f.name));
    }
    // Enums from C are integers: an out-of-range value in a Rust enum is undefined behaviour.
    if f.params.contains("lwolf_status") {
        return Err(format!(
            "{}: {} takes an lwolf_status from C; take a u32",
            f.file, f.name
        ));
    }
    Ok(())
}

/// Every exported function of the C crate (`src/`).
fn extern_fns() -> Vec<ExternFn> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 5,
        "src/ should hold lib, config, client, response, status"
    );
    let mut found = Vec::new();
    for path in entries {
        assert!(
            path.extension().is_some_and(|e| e == "rs"),
            "unexpected entry {} in src/ (this test reads flat .rs files only)",
            path.display()
        );
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read_to_string(&path).unwrap();
        found.extend(parse_extern_fns(&file, &raw).unwrap_or_else(|e| panic!("{e}")));
    }
    found
}

#[test]
fn every_extern_fn_body_is_one_boundary_call() {
    let fns = extern_fns();
    assert!(fns.len() >= 20, "found only {} extern fns", fns.len());
    for f in &fns {
        check_boundary(f).unwrap_or_else(|e| panic!("{e}"));
    }
    // Those that keep the last error are exactly the readers and the frees (a free between
    // a failure and `lwolf_last_error_message` must not lose the reason).
    let mut keepers: Vec<_> = fns
        .iter()
        .filter(|f| f.body.trim().starts_with("ffi_boundary_keep_last_error("))
        .map(|f| f.name.as_str())
        .collect();
    keepers.sort();
    assert_eq!(
        keepers,
        [
            "lwolf_client_free",
            "lwolf_config_free",
            "lwolf_last_error_code",
            "lwolf_last_error_http_status",
            "lwolf_last_error_message",
            "lwolf_last_error_transport_kind",
            "lwolf_request_free",
            "lwolf_response_free",
            "lwolf_status_name",
            "lwolf_version"
        ]
    );
}

/// The checker itself catches what it is for, and is not fooled by braces in strings.
#[test]
fn the_boundary_checker_catches_violations() {
    let check = |src: &str| -> Result<(), String> {
        let fns = parse_extern_fns("x.rs", src)?;
        assert_eq!(fns.len(), 1, "{src}");
        check_boundary(&fns[0])
    };
    let good = r#"
        /// Doc with a brace { and an `extern "C" fn` in it.
        #[no_mangle]
        pub unsafe extern "C" fn lwolf_ok(p: *const u8) -> lwolf_status {
            ffi_boundary(|| {
                let s = "}{ ) (";
                let c = '}';
                let _ = (s, c, p);
                Ok(lwolf_status::LWOLF_OK)
            })
        }"#;
    check(good).unwrap();
    let cases = [
        // Work before the boundary.
        "#[no_mangle]\npub unsafe extern \"C\" fn lwolf_a(p: *const u8) -> u16 {\n\
         let x = unsafe { *p }; ffi_boundary(|| Ok(x as u16)) }",
        // Work after it.
        "#[no_mangle]\npub unsafe extern \"C\" fn lwolf_b() -> u16 {\n\
         let v = ffi_boundary(|| Ok(1)); v + 1 }",
        // No boundary at all.
        "#[no_mangle]\npub unsafe extern \"C\" fn lwolf_c() -> u16 { 1 }",
        // A Rust enum read from C.
        "#[no_mangle]\npub unsafe extern \"C\" fn lwolf_d(s: lwolf_status) -> u16 {\n\
         ffi_boundary(|| Ok(s as u16)) }",
        // Not #[no_mangle].
        "pub unsafe extern \"C\" fn lwolf_e() -> u16 { ffi_boundary(|| Ok(1)) }",
        // Not pub.
        "#[no_mangle]\nunsafe extern \"C\" fn lwolf_f() -> u16 { ffi_boundary(|| Ok(1)) }",
        // Safe: callable from safe Rust with any pointer.
        "#[no_mangle]\npub extern \"C\" fn lwolf_g() -> u16 { ffi_boundary(|| Ok(1)) }",
        // A callback outside the callback boundary, or not named as one.
        "extern \"C\" fn on_fork() { crate::fork::before() }",
        "extern \"C\" fn on_fork() { callback_boundary(a); b() }",
        "extern \"C\" fn helper() { callback_boundary(crate::fork::before) }",
        // A foreign block outside fork.rs.
        "extern \"C\" { fn getpid() -> i32; }",
    ];
    for bad in cases {
        assert!(check(bad).is_err(), "not caught:\n{bad}");
    }
    assert!(parse_extern_fns("x.rs", "macro_rules! m { () => {} }").is_err());
}

#[test]
fn panics_are_caught_in_one_place_and_unsafe_stays_in_ffi() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let boundary = blank_literals(&std::fs::read_to_string(src.join("boundary.rs")).unwrap());
    assert_eq!(boundary.matches("catch_unwind(").count(), 1);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "boundary.rs" {
            let text = blank_literals(&std::fs::read_to_string(&path).unwrap());
            assert!(
                !text.contains("catch_unwind"),
                "{}: use ffi_boundary",
                path.display()
            );
        }
    }
    // catch_unwind only works with panic = "unwind" (the default): with "abort" a panic would
    // kill the host process (a Python interpreter, say) instead of becoming a status.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for manifest in ["Cargo.toml", "lwolf-auth-ffi/Cargo.toml"] {
        let text = std::fs::read_to_string(workspace.join(manifest)).unwrap();
        assert!(
            !text
                .lines()
                .any(|l| l.split('#').next().unwrap().contains("\"abort\"")),
            "{manifest} sets panic = \"abort\"; the C ABI needs unwinding to catch panics"
        );
    }
    // The Rust library keeps `unsafe` and `extern "C"` out, but for the one registration of
    // its fork handlers (src/fork/atfork.rs) and the Win32 calls std does not make on
    // Windows (src/win32/: the DACLs, the certificate store, the agent's named pipe).
    let core = workspace.join("lwolf-auth/src");
    let lib = std::fs::read_to_string(core.join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]") || lib.contains("#![forbid(unsafe_code)]"));
    let mut dirs = vec![core.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("fork/atfork.rs")
                && !path.starts_with(core.join("win32"))
            {
                let text = blank_literals(&std::fs::read_to_string(&path).unwrap());
                assert!(
                    !text.contains(EXTERN_C) && !text.contains("no_mangle"),
                    "{}: extern \"C\" belongs in the C crate",
                    path.display()
                );
                assert!(
                    !text.contains("allow(unsafe_code)"),
                    "{}: unsafe code belongs in the C crate",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn every_extern_fn_is_in_the_header() {
    let header = include_str!("../../include/lwolf_auth.h");
    let fns = extern_fns();
    for f in &fns {
        assert!(
            header.contains(&format!("{}(", f.name)),
            "{} is exported but not in include/lwolf_auth.h",
            f.name
        );
    }
    let declared = header
        .lines()
        .filter(|l| !l.starts_with('/') && !l.starts_with(' ') && !l.starts_with('#'))
        .filter(|l| !l.starts_with("typedef"))
        .filter(|l| l.contains("lwolf_") && l.contains('('))
        .count();
    assert_eq!(
        declared,
        fns.len(),
        "the header declares other functions than the C crate's src/"
    );
}

// ---------------------------------------------------------------------------------------------
// Behaviour through the exported functions

#[cfg(feature = "ffi-test-panic")]
#[test]
fn a_panic_becomes_internal_with_a_message() {
    let mut cfg = ptr::null_mut();
    assert_eq!(
        unsafe { lwolf_config_new(&mut cfg) },
        lwolf_status::LWOLF_OK
    );
    let status = unsafe { lwolf_config_set(cfg, c"__lwolf_test_panic".as_ptr(), c"1".as_ptr()) };
    assert_eq!(status, lwolf_status::LWOLF_ERR_INTERNAL);
    let message = last_error();
    assert!(message.starts_with("internal error: panic"), "{message}");
    assert!(message.contains("test panic requested"), "{message}");
    // The library carries on.
    c_calls::set(cfg, "client_id", "after-panic");
    assert_eq!(last_error(), "");
    unsafe { lwolf_config_free(cfg) };
}

#[cfg(not(feature = "ffi-test-panic"))]
#[test]
fn the_test_panic_key_is_unknown_without_the_feature() {
    let mut cfg = ptr::null_mut();
    assert_eq!(
        unsafe { lwolf_config_new(&mut cfg) },
        lwolf_status::LWOLF_OK
    );
    let status = unsafe { lwolf_config_set(cfg, c"__lwolf_test_panic".as_ptr(), c"1".as_ptr()) };
    assert_eq!(status, lwolf_status::LWOLF_ERR_INVALID_ARGUMENT);
    unsafe { lwolf_config_free(cfg) };
}

#[test]
fn token_hot_path_does_not_allocate() {
    let sandbox = Sandbox::start().unwrap();
    let client = sandbox_client(&sandbox, sandbox.client_secret());
    let before_fetch = allocations_on_this_thread();
    let first = token(client).unwrap();
    // The counter works: fetching a token does allocate.
    assert!(allocations_on_this_thread() > before_fetch);
    let mut buf = [0 as c_char; 4096];
    let mut len = 0usize;

    // Leave a failure behind first: clearing it on the next success must not allocate either.
    assert_eq!(
        unsafe { lwolf_client_token(client, buf.as_mut_ptr(), buf.len(), ptr::null_mut()) },
        lwolf_status::LWOLF_ERR_INVALID_ARGUMENT
    );
    assert!(!last_error().is_empty());

    let before = allocations_on_this_thread();
    for _ in 0..1000 {
        let status = unsafe { lwolf_client_token(client, buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(status, lwolf_status::LWOLF_OK);
    }
    let message = unsafe { lwolf_last_error_message() };
    let allocated = allocations_on_this_thread() - before;
    assert_eq!(
        allocated, 0,
        "the cached-token path allocated {allocated} times"
    );
    // SAFETY: NUL-terminated, valid until the next lwolf_ call on this thread.
    assert_eq!(unsafe { CStr::from_ptr(message) }.to_bytes(), b"");
    assert_eq!(len, first.len());
    assert_eq!(sandbox.token_requests(), 1);
    unsafe { lwolf_client_free(client) };
}

#[test]
fn tenant_clients_outlive_their_parent() {
    let sandbox = Sandbox::start().unwrap();
    let parent = sandbox_client(&sandbox, sandbox.client_secret());
    let mut tenant = ptr::null_mut();
    assert_eq!(
        unsafe { lwolf_client_for_tenant(parent, c"tenant-7".as_ptr(), &mut tenant) },
        lwolf_status::LWOLF_OK
    );
    let parent_token = token(parent).unwrap();
    unsafe { lwolf_client_free(parent) };
    let tenant_token = token(tenant).unwrap();
    assert_ne!(parent_token, tenant_token, "a tenant has its own token");
    let mut response = ptr::null_mut();
    assert_eq!(
        unsafe {
            lwolf_client_request(
                tenant,
                c"GET".as_ptr(),
                c"/v1/offices".as_ptr(),
                ptr::null(),
                0,
                &mut response,
            )
        },
        lwolf_status::LWOLF_OK
    );
    assert_eq!(unsafe { lwolf_response_status(response) }, 200);
    unsafe { lwolf_response_free(response) };
    unsafe { lwolf_client_free(tenant) };
}

#[test]
fn messages_never_carry_the_secret_or_the_token() {
    let sandbox = Sandbox::start().unwrap();
    let good = sandbox_client(&sandbox, sandbox.client_secret());
    let the_token = token(good).unwrap();
    let wrong_secret = "wrong-secret-that-must-not-leak";
    let bad = sandbox_client(&sandbox, wrong_secret);
    let (status, message) = token(bad).unwrap_err();
    assert_eq!(
        status,
        lwolf_status::LWOLF_ERR_INVALID_CREDENTIALS,
        "{message}"
    );
    assert!(message.contains("401"), "{message}");
    for leaked in [wrong_secret, sandbox.client_secret(), the_token.as_str()] {
        assert!(!message.contains(leaked), "{message}");
    }
    unsafe { lwolf_client_free(bad) };
    unsafe { lwolf_client_free(good) };
}

#[test]
fn out_parameters_are_untouched_on_failure() {
    let sentinel = 0x5a5a as *mut lwolf_client;
    let mut out = sentinel;
    let mut cfg = ptr::null_mut();
    assert_eq!(
        unsafe { lwolf_config_new(&mut cfg) },
        lwolf_status::LWOLF_OK
    );
    assert_eq!(
        unsafe { lwolf_client_new(cfg, &mut out) },
        lwolf_status::LWOLF_ERR_CONFIG
    );
    assert_eq!(out, sentinel);
    assert!(last_error().contains("client_id"), "{}", last_error());
    unsafe { lwolf_config_free(cfg) };
}
