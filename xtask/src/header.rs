//! `include/lwolf_auth.h`: what cbindgen makes of `lwolf-auth-ffi/src` (with the version as
//! macros), committed, and refreshed only by `cargo xtask header` (never by a build: a
//! build script must not write into the source tree, and users of the library do not need
//! cbindgen).

use std::path::PathBuf;

/// The committed header.
pub fn committed_path() -> PathBuf {
    crate::root().join("include/lwolf_auth.h")
}

/// The header as cbindgen makes it now.
pub fn generate() -> Result<String, String> {
    let ffi = crate::root().join("lwolf-auth-ffi");
    let mut config = cbindgen::Config::from_file(ffi.join("cbindgen.toml"))
        .map_err(|e| format!("cbindgen.toml: {e}"))?;
    // The version as macros, for `#if` in C: cbindgen cannot evaluate `env!` in a const.
    let version = crate::version();
    let mut parts = version.split('.');
    let mut part = || parts.next().unwrap_or("0").to_owned();
    let (major, minor, patch) = (part(), part(), part());
    config.after_includes = Some(format!(
        "\n/* This header's version, as lwolf_version() reports it at run time. */\n\
         #define LWOLF_VERSION_MAJOR {major}\n#define LWOLF_VERSION_MINOR {minor}\n\
         #define LWOLF_VERSION_PATCH {patch}"
    ));
    // The C crate's sources alone (following its `mod` items): the header depends on
    // nothing else.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(ffi.join("src/lib.rs"))
        .generate()
        .map_err(|e| format!("cbindgen: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Where `generated` and the committed header first differ, if they do.
pub fn first_difference(generated: &str, committed: &str) -> Option<String> {
    if generated == committed {
        return None;
    }
    Some(
        generated
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (g, c))| g != c)
            .map(|(i, (g, c))| format!("line {}:\n  generated: {g}\n  committed: {c}", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".into()),
    )
}
