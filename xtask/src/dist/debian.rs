//! Debian packages, named as Debian names a library's: `liblwolf-auth0` (the runtime, after
//! its soname), `liblwolf-auth-dev` (what builds against it) and `lwolf-cli` (the command),
//! built with `dpkg-deb` from trees laid out here. `Depends` comes from `dpkg-shlibdeps`;
//! the runtime carries `shlibs` and `symbols` so that packages built against it depend on
//! it properly, and an `ldconfig` trigger. `system-tests/tests/packages.rs` runs lintian.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::{root, version};

use super::linux::{lay_out_dev, lay_out_runtime, Built, Layout};
use super::{dist_dir, fresh_dir, install, run, write};

const ARCH: &str = "amd64";
const MULTIARCH: &str = "x86_64-linux-gnu";
const MAINTAINER: &str = "lwolf-auth maintainers <maintainers@lwolf-auth.example>";
const HOMEPAGE: &str = "https://github.com/lwolf-auth/lwolf-auth";
/// The Debian revision of these packages.
const REVISION: &str = "1";

pub fn packages(built: &Built) -> Result<Vec<PathBuf>, String> {
    let work = dist_dir().join(".debian");
    fresh_dir(&work)?;
    let version = format!("{}-{REVISION}", version());
    let libdir = format!("usr/lib/{MULTIARCH}");
    let layout = Layout {
        libdir: &libdir,
        includedir: "usr/include",
        fixed_prefix: Some("/usr"),
    };

    let runtime = work.join("liblwolf-auth0");
    lay_out_runtime(&runtime, &layout, built)?;
    docs(&runtime, "liblwolf-auth0", &version)?;
    let depends = shlib_depends(&work, &built.shared)?;
    control(
        &runtime,
        &format!(
            "Package: liblwolf-auth0\nSection: libs\nMulti-Arch: same\nDepends: {depends}\n\
             Description: OAuth tokens and API calls for the Lone Wolf APIs (library)\n\
             {LONG}\n .\n This package holds the shared library."
        ),
        &version,
    )?;
    let debian = runtime.join("DEBIAN");
    write(
        &debian.join("shlibs"),
        format!("liblwolf_auth 0 liblwolf-auth0 (>= {})\n", xtask::version()),
    )?;
    write(&debian.join("symbols"), symbols(&built.shared)?)?;
    write(&debian.join("triggers"), "activate-noawait ldconfig\n")?;

    let dev = work.join("liblwolf-auth-dev");
    lay_out_dev(&dev, &layout, built)?;
    docs(&dev, "liblwolf-auth-dev", &version)?;
    control(
        &dev,
        &format!(
            "Package: liblwolf-auth-dev\nSection: libdevel\nMulti-Arch: same\n\
             Depends: liblwolf-auth0 (= {version})\n\
             Description: OAuth tokens and API calls for the Lone Wolf APIs (development files)\n\
             {LONG}\n .\n This package holds the C and C++ headers, the static library, and \
             the\n pkg-config and CMake files (find_package(lwolf_auth CONFIG))."
        ),
        &version,
    )?;

    let cli = work.join("lwolf-cli");
    install(&built.cli, &cli.join("usr/bin/lwolf"), 0o755)?;
    man_page(&cli)?;
    docs(&cli, "lwolf-cli", &version)?;
    let depends = shlib_depends(&work, &built.cli)?;
    control(
        &cli,
        &format!(
            "Package: lwolf-cli\nSection: net\nMulti-Arch: foreign\nDepends: {depends}\n\
             Description: OAuth tokens and API calls for the Lone Wolf APIs (command line)\n\
             {LONG}\n .\n This package holds the lwolf command: tokens, API calls, the \
             client's\n counters, and a local stand-in gateway for trying things out."
        ),
        &version,
    )?;

    let mut debs = Vec::new();
    for (dir, name) in [
        (&runtime, "liblwolf-auth0"),
        (&dev, "liblwolf-auth-dev"),
        (&cli, "lwolf-cli"),
    ] {
        md5sums(dir)?;
        super::normalize_modes(dir)?;
        let deb = dist_dir().join(format!("{name}_{version}_{ARCH}.deb"));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(dir)
            .arg(&deb)
            .env("SOURCE_DATE_EPOCH", source_date_epoch()))?;
        debs.push(deb);
    }
    Ok(debs)
}

const LONG: &str = " lwolf-auth fetches OAuth 2.0 client-credentials tokens from the Lone\n \
    Wolf Technologies gateway, caches them in memory, on disk and in Redis,\n \
    refreshes them ahead of expiry, and sends Back Office and Transact API\n \
    calls with them, with bounded retries and renewals.";

/// `DEBIAN/control`, with the fields every package shares and `Installed-Size`.
fn control(dir: &Path, fields: &str, version: &str) -> Result<(), String> {
    let control = format!(
        "{first}\nSource: lwolf-auth\nVersion: {version}\nArchitecture: {ARCH}\n\
         Maintainer: {MAINTAINER}\nInstalled-Size: {size}\nPriority: optional\n\
         Homepage: {HOMEPAGE}\n{rest}\n",
        first = fields.lines().next().unwrap_or_default(),
        rest = fields.lines().skip(1).collect::<Vec<_>>().join("\n"),
        size = installed_size(dir)?,
    );
    write(&dir.join("DEBIAN/control"), control)
}

/// `DEBIAN/md5sums` of the tree's files (symbolic links are not listed).
fn md5sums(dir: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).map_err(|e| format!("{}: {e}", at.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let meta = path.symlink_metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() && !path.ends_with("DEBIAN") {
                pending.push(path);
            } else if meta.is_file() && !path.starts_with(dir.join("DEBIAN")) {
                files.push(path.strip_prefix(dir).expect("under dir").to_owned());
            }
        }
    }
    files.sort();
    let out = Command::new("md5sum")
        .current_dir(dir)
        .args(&files)
        .output()
        .map_err(|e| format!("md5sum: {e}"))?;
    if !out.status.success() {
        return Err("md5sum failed".into());
    }
    write(&dir.join("DEBIAN/md5sums"), out.stdout)
}

/// The tree's size in KiB, as `Installed-Size` counts it.
fn installed_size(dir: &Path) -> Result<u64, String> {
    fn walk(dir: &Path, total: &mut u64) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                walk(&entry.path(), total)?;
            } else {
                *total += meta.len().div_ceil(1024).max(1);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(dir, &mut total).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(total)
}

/// `usr/share/doc/<package>/`: the copyright and Debian's changelog.
fn docs(dir: &Path, package: &str, version: &str) -> Result<(), String> {
    let doc = dir.join("usr/share/doc").join(package);
    install(
        &root().join("packaging/debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    let changelog = format!(
        "lwolf-auth ({version}) unstable; urgency=medium\n\n  * Release {}.\n\n \
         -- {MAINTAINER}  {date}\n",
        xtask::version(),
        date = changelog_date()?,
    );
    gzip(&changelog, &doc.join("changelog.Debian.gz"))
}

fn man_page(dir: &Path) -> Result<(), String> {
    let page = std::fs::read_to_string(root().join("packaging/debian/lwolf.1"))
        .map_err(|e| format!("packaging/debian/lwolf.1: {e}"))?;
    gzip(&page, &dir.join("usr/share/man/man1/lwolf.1.gz"))
}

/// `text` gzipped as Debian wants (best compression, no name or time inside).
fn gzip(text: &str, to: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut child = Command::new("gzip")
        .args(["-9", "-n"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("gzip: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "gzip failed".into())
}

/// The date of the last commit (the release's), else now: builds of one commit match.
fn source_date_epoch() -> String {
    Command::new("git")
        .current_dir(root())
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_default()
        })
}

fn changelog_date() -> Result<String, String> {
    let out = Command::new("date")
        .args(["-R", "-u", "-d"])
        .arg(format!("@{}", source_date_epoch()))
        .output()
        .map_err(|e| format!("date: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `Depends` of what `binary` links, from `dpkg-shlibdeps` (which reads the system's
/// shlibs and symbols files; it wants a `debian/control` to run in).
fn shlib_depends(work: &Path, binary: &Path) -> Result<String, String> {
    write(
        &work.join("debian/control"),
        "Source: lwolf-auth\n\nPackage: lwolf-auth-shlibdeps\nArchitecture: any\n",
    )?;
    let out = Command::new("dpkg-shlibdeps")
        .current_dir(work)
        .arg("-O")
        .arg(binary)
        .output()
        .map_err(|e| format!("dpkg-shlibdeps (Debian's dpkg-dev): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-shlibdeps {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "dpkg-shlibdeps found nothing {} depends on",
                binary.display()
            )
        })
}

/// `DEBIAN/symbols`: every exported function, as of this version (the first release).
fn symbols(library: &Path) -> Result<String, String> {
    let mut text = format!("{} liblwolf-auth0 #MINVER#\n", xtask::abi::SONAME);
    text.push_str("* Build-Depends-Package: liblwolf-auth-dev\n");
    for name in xtask::abi::exported_functions(library)? {
        text.push_str(&format!(" {name}@Base {}\n", xtask::version()));
    }
    Ok(text)
}
