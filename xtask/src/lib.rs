//! The workspace's own tasks (`cargo xtask <task>`): what is not `cargo build`. The program
//! is `main.rs`; this library holds what its tests check too.

use std::path::{Path, PathBuf};

pub mod abi;
pub mod header;

/// The workspace's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

/// The version of the products (`[workspace.package] version` of the root manifest).
pub fn version() -> String {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if let Some(v) = line.strip_prefix("version = \"").filter(|_| in_package) {
            return v.trim_end_matches('"').to_owned();
        }
    }
    panic!("no [workspace.package] version in Cargo.toml")
}
