//! Leftovers in the cache directory, swept once per process: temp files of writers that
//! died between create and rename, lock and renewal files of entries that are gone (a
//! rotated secret leaves its old ones behind), and the plain-text `.json` files of the
//! versions before entries were sealed.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{sys, TOKEN_SUFFIX};
use crate::log;

/// A temp file older than this is a dead writer's: a live one renames within milliseconds.
const STALE_TMP: Duration = Duration::from_secs(60);
/// A lock or renewal file unused for this long, with no entry beside it, is stray.
const STALE_LOCK: Duration = Duration::from_secs(600);

/// Removes what is stray in `dir`; failures are only logged (a sweep is never needed).
pub(super) fn leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut removed = 0usize;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Only regular files of ours: never through a link, never a directory.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        let (stem, suffix) = name.split_once('.').unwrap_or((name, ""));
        let stray = match suffix {
            _ if suffix.ends_with("tmp") => age > STALE_TMP,
            // An older version's entry: the token in plain text.
            "json" => is_entry_stem(stem),
            "renewed" => is_entry_stem(stem) && age > STALE_LOCK && !has_entry(dir, stem),
            "lock" if is_entry_stem(stem) && age > STALE_LOCK && !has_entry(dir, stem) => {
                remove_unheld_lock(&path);
                continue;
            }
            _ => false,
        };
        if stray && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log::debug!(
            "swept {removed} stray file(s) from the token cache directory {}",
            dir.display()
        );
    }
}

/// Whether `stem` is the 32 hex digits this crate names its files with.
fn is_entry_stem(stem: &str) -> bool {
    stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit())
}

fn has_entry(dir: &Path, stem: &str) -> bool {
    dir.join(format!("{stem}{TOKEN_SUFFIX}")).exists()
}

/// Removes a lock file no one holds, under its own lock: a process that opened it before
/// the removal finds, once it holds the lock, that the file is gone, and opens a new one
/// (`DiskCache::lock`), so two processes never hold locks on different files of one entry.
fn remove_unheld_lock(path: &Path) {
    let Ok(file) = sys::open_no_follow(path) else {
        return;
    };
    if file.try_lock().is_ok() && sys::is_still_at(&file, path) {
        let _ = fs::remove_file(path);
    }
}
