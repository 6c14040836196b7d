//! The npm package: the binding with the library for linux-x64 and win32-x64 in
//! `prebuilds/<platform>-<arch>/`, which `index.js` loads before looking anywhere else (but
//! `LWOLF_AUTH_LIB`), packed by `npm pack` as the registry would serve it.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

use super::linux::Built;
use super::{dist_dir, fresh_dir, install, run};

pub fn package(built: &Built, windows_dll: &Path) -> Result<PathBuf, String> {
    let work = dist_dir().join(".node");
    fresh_dir(&work)?;
    let source = work.join("package");
    for file in ["index.js", "index.d.ts", "package.json"] {
        install(
            &root().join("bindings/node").join(file),
            &source.join(file),
            0o644,
        )?;
    }
    install(&root().join("README.md"), &source.join("README.md"), 0o644)?;
    let prebuilds = source.join("prebuilds");
    install(
        &built.shared,
        &prebuilds.join("linux-x64/liblwolf_auth.so"),
        0o755,
    )?;
    install(
        windows_dll,
        &prebuilds.join("win32-x64/lwolf_auth.dll"),
        0o755,
    )?;
    super::normalize_modes(&source)?;
    run(Command::new("npm")
        .current_dir(&source)
        .args(["pack", "--quiet", "--pack-destination"])
        .arg(dist_dir()))?;
    let tarball = dist_dir().join(format!("lwolf-auth-{}.tgz", version()));
    if tarball.is_file() {
        Ok(tarball)
    } else {
        Err(format!("npm pack wrote no {}", tarball.display()))
    }
}
