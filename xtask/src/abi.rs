//! The ABI promise of `liblwolf_auth.so.0`, checked on every change.
//!
//! What is promised is the C header: its functions' signatures, the layouts of the structs
//! they take, and the status values. libabigail's `abidw` describes that promise from a
//! stub library gcc compiles with debug info from the header itself (one empty definition
//! per declared function, nothing of the Rust inside): the Rust library's own debug info
//! would show every change to a handle's private fields as an ABI change, though C only
//! ever holds a pointer to one. That the shipped library keeps the promise is checked
//! apart: it exports exactly the header's functions ([`exported_functions`]).
//!
//! `abi/liblwolf_auth.so.0.abi` is the committed description; `abidiff` compares the
//! header's description now with it (`abi/suppressions`: a size-prefixed struct may grow at
//! its end). The policy (docs/packages.md, "The ABI promise"): in 0.x, additions only; any other change moves the
//! soname's major.
//!
//! The status values are kept in `abi/status-values.txt`: C17 sees `lwolf_status` as a
//! `uint32_t`, so `abidw` never sees the enum; each committed value must stay, new ones may
//! follow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The committed description and its companions.
pub fn dir() -> PathBuf {
    crate::root().join("abi")
}

/// The soname of the library (major version 0).
pub const SONAME: &str = "liblwolf_auth.so.0";

/// The structs that start with their size and may grow at their end (left out of
/// `abidiff` by `abi/suppressions`, checked by [`grown_only_at_end`]).
pub const GROWABLE: &[&str] = &["lwolf_stats"];

/// What `abidiff` said of a change.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same ABI, or only additions.
    Compatible,
    /// A break, allowed because the soname's major moved.
    BreakWithNewSoname,
    /// A break under the same soname: refused.
    Incompatible(String),
}

/// The functions `header` declares (between its `extern "C"` braces), each as its
/// declaration without the `;`.
pub fn declarations(header: &str) -> Result<Vec<String>, String> {
    let body = header
        .split_once("extern \"C\" {")
        .and_then(|(_, rest)| rest.rsplit_once("}  // extern \"C\""))
        .map(|(body, _)| body)
        .ok_or("the header has no extern \"C\" block")?;
    let text = strip_comments(body);
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for statement in code.split(';') {
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        if statement.is_empty() {
            continue;
        }
        if function_name(&statement).is_none() {
            return Err(format!("not a function declaration: {statement}"));
        }
        out.push(statement);
    }
    Ok(out)
}

/// The name of the function a declaration declares.
pub fn function_name(declaration: &str) -> Option<&str> {
    let head = declaration.split('(').next()?;
    let name = head.rsplit([' ', '*']).next()?;
    name.starts_with("lwolf_").then_some(name)
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
            out.push('\n');
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The stub library's source: the header, and an empty body for each function.
pub fn stub_source(header: &str) -> Result<String, String> {
    let mut source = String::from("#include \"lwolf_auth.h\"\n\n");
    for declaration in declarations(header)? {
        let returns_void = declaration.starts_with("void ") && !declaration.starts_with("void *");
        let body = if returns_void { "{}" } else { "{ return 0; }" };
        source.push_str(&format!("{declaration} {body}\n"));
    }
    Ok(source)
}

/// The ABI description (`abidw`'s XML) of `header`, built as a library with `soname`, in
/// the scratch directory `work`.
pub fn describe(header: &str, soname: &str, work: &Path) -> Result<String, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    std::fs::write(work.join("lwolf_auth.h"), header).map_err(|e| e.to_string())?;
    std::fs::write(work.join("abi_stub.c"), stub_source(header)?).map_err(|e| e.to_string())?;
    run(Command::new("cc")
        .current_dir(work)
        .args(["-std=c17", "-g", "-O0", "-shared", "-fPIC", "-I."])
        .arg(format!("-Wl,-soname,{soname}"))
        .args(["-o", "stub.so", "abi_stub.c"]))?;
    let out = Command::new("abidw")
        .current_dir(work)
        .args([
            "--no-corpus-path",
            "--no-comp-dir-path",
            "--no-show-locs",
            "stub.so",
        ])
        .output()
        .map_err(|e| format!("abidw (Debian's abigail-tools): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "abidw failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// The soname an `abidw` description records.
pub fn soname_of(description: &str) -> Option<&str> {
    let at = description.find("soname='")? + "soname='".len();
    description[at..].split('\'').next()
}

/// `abidiff` of the committed description against the current one (files in `work`).
///
/// Its exit status is a bit set: 1 an error, 2 a usage error, 4 an ABI change, 8 an
/// incompatible change. A changed signature sets only 4, and so does an added function,
/// unless `--no-added-syms` leaves additions out: with it, any status but 0 is a break. With
/// the suppressions, a size-prefixed struct grown at its end is not a change.
pub fn compare(committed: &str, current: &str, work: &Path) -> Result<Verdict, String> {
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let (old, new) = (work.join("committed.abi"), work.join("current.abi"));
    std::fs::write(&old, committed).map_err(|e| e.to_string())?;
    std::fs::write(&new, current).map_err(|e| e.to_string())?;
    let out = Command::new("abidiff")
        .arg("--no-added-syms")
        .arg("--suppressions")
        .arg(dir().join("suppressions"))
        .arg(&old)
        .arg(&new)
        .output()
        .map_err(|e| format!("abidiff (Debian's abigail-tools): {e}"))?;
    let code = out.status.code().ok_or("abidiff was killed")?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    if code & 3 != 0 {
        return Err(format!(
            "abidiff failed ({code}): {}{report}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut breaks = if code == 0 { String::new() } else { report };
    for name in GROWABLE {
        if let Err(why) = grown_only_at_end(committed, current, name) {
            breaks.push_str(&why);
        }
    }
    if breaks.is_empty() {
        Ok(Verdict::Compatible)
    } else if soname_of(committed) != soname_of(current) {
        Ok(Verdict::BreakWithNewSoname)
    } else {
        Ok(Verdict::Incompatible(breaks))
    }
}

/// Whether struct `name`'s members in `committed` (offset, name, type) are the first ones
/// of it in `current`.
pub fn grown_only_at_end(committed: &str, current: &str, name: &str) -> Result<(), String> {
    let (old, new) = (members(committed, name)?, members(current, name)?);
    if new.len() >= old.len() && new[..old.len()] == old[..] {
        Ok(())
    } else {
        Err(format!(
            "struct {name} changed other than by fields added at its end:\n  was {old:?}\n  is  {new:?}\n"
        ))
    }
}

/// The members of struct `name` in an `abidw` description: (offset in bits, name, type).
fn members(description: &str, name: &str) -> Result<Vec<(String, String, String)>, String> {
    let start = description
        .find(&format!("<class-decl name='{name}'"))
        .ok_or_else(|| format!("struct {name} is not in the description"))?;
    let body = &description[start..];
    let body = &body[..body.find("</class-decl>").unwrap_or(body.len())];
    let attribute = |text: &str, key: &str| -> Option<String> {
        let at = text.find(&format!("{key}='"))? + key.len() + 2;
        text[at..].split('\'').next().map(str::to_owned)
    };
    let type_name = |id: &str| -> String {
        description
            .find(&format!("id='{id}'"))
            .and_then(|at| {
                let tag = description[..at].rfind('<')?;
                attribute(&description[tag..at], "name")
            })
            .unwrap_or_else(|| id.to_owned())
    };
    Ok(body
        .split("<data-member ")
        .skip(1)
        .filter_map(|member| {
            let offset = attribute(member, "layout-offset-in-bits")?;
            let var = &member[member.find("<var-decl")?..];
            Some((
                offset,
                attribute(var, "name")?,
                type_name(&attribute(var, "type-id")?),
            ))
        })
        .collect())
}

/// The status values (`LWOLF_* = N` of `enum lwolf_status`) of `header`.
pub fn status_values(header: &str) -> Result<Vec<(String, u32)>, String> {
    let body = header
        .split_once("enum lwolf_status")
        .and_then(|(_, rest)| rest.split_once('{'))
        .and_then(|(_, rest)| rest.split_once("};"))
        .map(|(body, _)| strip_comments(body))
        .ok_or("the header has no enum lwolf_status")?;
    body.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("a status without a value: {item}"))?;
            let value = value
                .trim()
                .parse()
                .map_err(|_| format!("not a number: {item}"))?;
            Ok((name.trim().to_owned(), value))
        })
        .collect()
}

/// The committed status values that `header` changed or dropped (new ones may be added).
pub fn status_changes(committed: &str, header: &str) -> Result<Vec<String>, String> {
    let now = status_values(header)?;
    let mut changes = Vec::new();
    for line in committed.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("abi/status-values.txt: {line}"))?;
        let value: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("abi/status-values.txt: {line}"))?;
        match now.iter().find(|(n, _)| n == name) {
            Some((_, v)) if *v == value => {}
            Some((_, v)) => changes.push(format!("{name} was {value}, is {v}")),
            None => changes.push(format!("{name} ({value}) is gone")),
        }
    }
    Ok(changes)
}

/// The status values as `abi/status-values.txt` holds them.
pub fn status_file(header: &str) -> Result<String, String> {
    Ok(status_values(header)?
        .iter()
        .map(|(name, value)| format!("{name} {value}\n"))
        .collect())
}

/// The functions a shared library exports (its defined dynamic symbols that are code).
pub fn exported_functions(library: &Path) -> Result<BTreeSet<String>, String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(library)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed", library.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (_, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "T" | "t" | "W" | "i").then(|| name.to_owned())
        })
        .collect())
}

/// The functions the header declares, by name.
pub fn declared_functions(header: &str) -> Result<BTreeSet<String>, String> {
    declarations(header)?
        .iter()
        .map(|d| {
            function_name(d)
                .map(str::to_owned)
                .ok_or_else(|| format!("no name in {d}"))
        })
        .collect()
}

/// Everything checked at once, for the committed header: the description against the
/// committed one, the status values, and (when given) the built library's exports.
pub fn check(library: Option<&Path>) -> Result<(), String> {
    let header = std::fs::read_to_string(crate::header::committed_path())
        .map_err(|e| format!("include/lwolf_auth.h: {e}"))?;
    let work = crate::root().join("target/abi");
    let current = describe(&header, SONAME, &work)?;
    let committed_path = dir().join(format!("{SONAME}.abi"));
    let committed = std::fs::read_to_string(&committed_path)
        .map_err(|e| format!("{}: {e}", committed_path.display()))?;
    if let Verdict::Incompatible(report) = compare(&committed, &current, &work)? {
        return Err(format!(
            "the header breaks the ABI of {SONAME} (docs/packages.md, The ABI promise):\n{report}"
        ));
    }
    let statuses = std::fs::read_to_string(dir().join("status-values.txt"))
        .map_err(|e| format!("abi/status-values.txt: {e}"))?;
    let changed = status_changes(&statuses, &header)?;
    if !changed.is_empty() {
        return Err(format!(
            "status values are part of the ABI: {}",
            changed.join("; ")
        ));
    }
    if let Some(library) = library {
        let exported = exported_functions(library)?;
        let declared = declared_functions(&header)?;
        if exported != declared {
            let extra: Vec<_> = exported.difference(&declared).collect();
            let missing: Vec<_> = declared.difference(&exported).collect();
            return Err(format!(
                "{} exports other functions than the header declares: exported only {extra:?}, \
                 declared only {missing:?}",
                library.display()
            ));
        }
    }
    Ok(())
}

/// Rewrites the committed description and status values from the header (after a release
/// that moved the soname, or to record additions).
pub fn update() -> Result<(), String> {
    let header = std::fs::read_to_string(crate::header::committed_path())
        .map_err(|e| format!("include/lwolf_auth.h: {e}"))?;
    let description = describe(&header, SONAME, &crate::root().join("target/abi"))?;
    std::fs::create_dir_all(dir()).map_err(|e| e.to_string())?;
    std::fs::write(dir().join(format!("{SONAME}.abi")), description).map_err(|e| e.to_string())?;
    std::fs::write(dir().join("status-values.txt"), status_file(&header)?)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
