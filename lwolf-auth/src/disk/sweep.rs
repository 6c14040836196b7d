//! Leftovers in the cache directory, swept once per process: temp files of writers that
//! died between create and rename, lock and renewal files of entries that are gone (a
//! rotated secret leaves its old ones behind), and the plain-text `.json` files of the
//! versions before entries were sealed.
//!
//! Only names the library makes are ever touched: `<32 hex>.token`, `.lock`, `.json`,
//! `.renewed`, `<32 hex>.<16 hex>.renewed` and `<32 hex>.<pid>-<n>-<hex>.tmp`. A directory that also
//! holds the user's own files (a `cache_dir` pointed at `~/.ssh` by mistake) keeps them.

use std::path::Path;
use std::time::Duration;

use super::lock;
use super::sys::SafeDir;
use crate::log;
use crate::secret::shown;

/// A temp file older than this is a dead writer's: a live one renames within milliseconds.
const STALE_TMP: Duration = Duration::from_secs(60);
/// A lock or renewal file unused for this long, with no entry beside it, is stray.
const STALE_LOCK: Duration = Duration::from_secs(600);

/// What the sweep makes of one of the library's names.
#[derive(Debug, PartialEq)]
enum Kind<'a> {
    Token,
    Lock(&'a str),
    Renewed(&'a str),
    Tmp,
    /// An older version's entry: the token in plain text.
    Json,
}

/// Removes what is stray in `dir` (at `path`); failures are only logged (a sweep is never
/// needed).
pub(super) fn leftovers(dir: &SafeDir, path: &Path) {
    let entries = dir.entries();
    let has_entry = |stem: &str| {
        entries
            .iter()
            .any(|e| e.name.len() == 38 && e.name.starts_with(stem) && e.name.ends_with(".token"))
    };
    let mut removed = 0usize;
    for entry in entries.iter().filter(|e| e.is_file) {
        let stray = match kind(&entry.name) {
            Some(Kind::Tmp) => entry.age > STALE_TMP,
            Some(Kind::Json) => true,
            Some(Kind::Renewed(stem)) => entry.age > STALE_LOCK && !has_entry(stem),
            Some(Kind::Lock(stem)) if entry.age > STALE_LOCK && !has_entry(stem) => {
                removed += usize::from(remove_unheld_lock(dir, &entry.name));
                continue;
            }
            _ => false,
        };
        if stray && dir.remove(&entry.name).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log::debug!(
            "swept {removed} stray file(s) from the token cache directory {}",
            shown(path)
        );
    }
}

/// The tag of an API origin in a `.renewed` file's name: 16 hex digits of its SHA-256.
pub(super) fn origin_tag(origin: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, origin.as_bytes());
    crate::token::hex(&digest.as_ref()[..8])
}

/// Whether `name` is one the library makes.
#[cfg(test)]
pub(super) fn is_own_name(name: &str) -> bool {
    kind(name).is_some()
}

fn kind(name: &str) -> Option<Kind<'_>> {
    let (stem, rest) = name.split_once('.')?;
    if !is_hex(stem, 32) {
        return None;
    }
    match rest {
        "token" => Some(Kind::Token),
        "lock" => Some(Kind::Lock(stem)),
        "json" => Some(Kind::Json),
        _ => {
            // `<stem>.renewed`: an older version's, of every API at once.
            if rest == "renewed" {
                return Some(Kind::Renewed(stem));
            }
            if let Some(tag) = rest.strip_suffix(".renewed") {
                return is_hex(tag, 16).then_some(Kind::Renewed(stem));
            }
            // <pid>-<n>-<hex>.tmp
            let mut parts = rest.strip_suffix(".tmp")?.split('-');
            let (pid, n, random) = (parts.next()?, parts.next()?, parts.next()?);
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let ok = parts.next().is_none()
                && digits(pid)
                && digits(n)
                && !random.is_empty()
                && random.len() <= 8
                && random.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then_some(Kind::Tmp)
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes a lock file no one holds, under its own lock: a process that opened it before
/// the removal finds, once it holds the lock, that the file is gone, and opens a new one
/// (`lock::take`), so two processes never hold locks on different files of one entry.
fn remove_unheld_lock(dir: &SafeDir, name: &str) -> bool {
    let Ok(file) = dir.open_file(name) else {
        return false;
    };
    match lock::try_take(file) {
        Some(held) if lock::is_still_at(dir, &held, name) => dir.remove(name).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_librarys_own_names_are_recognised() {
        let stem = "0123456789abcdef0123456789abcdef";
        assert_eq!(kind(&format!("{stem}.token")), Some(Kind::Token));
        assert_eq!(kind(&format!("{stem}.lock")), Some(Kind::Lock(stem)));
        assert_eq!(
            kind(&format!("{stem}.0011223344556677.renewed")),
            Some(Kind::Renewed(stem))
        );
        assert_eq!(kind(&format!("{stem}.42-0-deadbeef.tmp")), Some(Kind::Tmp));
        for theirs in [
            "id_rsa.tmp",
            "notes.tmp",
            "a.b.tmp",
            "x.json",
            "known_hosts",
            &format!("{stem}.swp.tmp"),
            &format!("{stem}.1-2.tmp"),
            &format!("{stem}x.token"),
        ] {
            assert_eq!(kind(theirs), None, "{theirs}");
        }
    }
}
