//! The Go module as a module proxy serves it (`GOPROXY=file://…/goproxy`): `@v/list`,
//! `.info`, `.mod` and `.zip`. The zip is the binding with the header (`include/`) and, for
//! linux/amd64, the static library (`lib/linux_amd64/`), so that `go get` and `go build`
//! need no library installed, as confluent-kafka-go bundles librdkafka. Its
//! `link_system.go` is replaced by the two files below.

use std::path::PathBuf;
use std::process::Command;

use xtask::{root, version};

use super::linux::{Built, STATIC_LIBS};
use super::{dist_dir, fresh_dir, install, run, write};

/// The module's path (bindings/go/go.mod).
pub const MODULE: &str = "github.com/lwolf-auth/lwolf-auth/bindings/go";

const LINK_BUNDLED: &str = "//go:build !lwolf_dynamic

package lwolfauth

// The static build of liblwolf_auth this module carries for linux/amd64 (the file name
// limits it to that platform). `-tags lwolf_dynamic` links the system's instead.

// #cgo LDFLAGS: ${SRCDIR}/lib/linux_amd64/liblwolf_auth.a @STATIC_LIBS@
import \"C\"
";

const LINK_SYSTEM: &str = "//go:build !(linux && amd64) || lwolf_dynamic

package lwolfauth

// The system's liblwolf_auth (an installed library, or one CGO_LDFLAGS points at): on
// platforms this module carries no static build for, or with `-tags lwolf_dynamic`.

// #cgo LDFLAGS: -llwolf_auth
import \"C\"
";

pub fn proxy(built: &Built) -> Result<PathBuf, String> {
    let version = format!("v{}", version());
    let work = dist_dir().join(".go");
    fresh_dir(&work)?;
    let module_dir = work.join(format!("{MODULE}@{version}"));
    let files = super::python::tracked(&["bindings/go"])?;
    for file in files.iter().filter(|f| !f.ends_with("link_system.go")) {
        let relative = file.strip_prefix("bindings/go/").expect("under it");
        install(&root().join(file), &module_dir.join(relative), 0o644)?;
    }
    write(&module_dir.join("link_system.go"), LINK_SYSTEM)?;
    write(
        &module_dir.join("link_bundled_linux_amd64.go"),
        LINK_BUNDLED.replace("@STATIC_LIBS@", STATIC_LIBS),
    )?;
    install(
        &root().join("include/lwolf_auth.h"),
        &module_dir.join("include/lwolf_auth.h"),
        0o644,
    )?;
    install(
        &built.archive,
        &module_dir.join("lib/linux_amd64/liblwolf_auth.a"),
        0o644,
    )?;

    super::normalize_modes(&module_dir)?;
    let proxy = dist_dir().join("goproxy");
    fresh_dir(&proxy)?;
    let at_v = proxy.join(MODULE).join("@v");
    write(&at_v.join("list"), format!("{version}\n"))?;
    let go_mod = std::fs::read(root().join("bindings/go/go.mod")).map_err(|e| e.to_string())?;
    write(&at_v.join(format!("{version}.mod")), go_mod)?;
    write(
        &at_v.join(format!("{version}.info")),
        format!(
            "{{\"Version\":\"{version}\",\"Time\":\"{}\"}}\n",
            commit_time()
        ),
    )?;
    // Python's zipfile (on every machine these run on), with the module@version/ prefix
    // every entry of a module zip has.
    let zip = at_v.join(format!("{version}.zip"));
    run(Command::new("python3")
        .current_dir(&work)
        .args([
            "-c",
            "import sys, os, zipfile\n\
             top, out = sys.argv[1], sys.argv[2]\n\
             with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   for d, _, fs in sorted(os.walk(top)):\n\
             \x20       for f in sorted(fs):\n\
             \x20           p = os.path.join(d, f)\n\
             \x20           z.write(p, p)\n",
        ])
        .arg(format!("{MODULE}@{version}"))
        .arg(&zip))?;
    Ok(proxy)
}

/// The last commit's time in RFC 3339 (the version's time in `.info`).
fn commit_time() -> String {
    Command::new("git")
        .current_dir(root())
        .args(["log", "-1", "--format=%cI"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "2026-01-01T00:00:00Z".into())
}
