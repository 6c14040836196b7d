//! The shared caches' sealed entries, read and written from the outside, by the format the
//! crate documents (src/entry.rs): a second implementation, so that a test proves the format
//! and not just that the crate agrees with itself.
//!
//! identity = SHA-256(token_url NUL client_id NUL audience NUL lwt_client_id)
//! prk      = HKDF-SHA256-Extract(salt "lwolf-auth shared token cache", credential)
//! key      = Expand(prk, "aes-256-gcm" NUL identity), 32 bytes
//! name     = hex HMAC-SHA256(Expand(prk, "entry name" NUL identity), identity)
//! value    = 0x01 | nonce(12) | AES-256-GCM(JSON, aad = 0x01 | name) | tag(16)

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf, hmac};

/// What names an entry: the identity's fields and the credential (the secret).
pub struct Who<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub lwt_client_id: Option<&'a str>,
    pub secret: &'a str,
}

pub struct Entry {
    pub name: String,
    key: LessSafeKey,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Entry {
    pub fn of(who: &Who<'_>) -> Entry {
        let identity = hex(digest::digest(
            &digest::SHA256,
            format!(
                "{}\0{}\0{}\0{}",
                who.token_url,
                who.client_id,
                who.audience,
                who.lwt_client_id.unwrap_or("")
            )
            .as_bytes(),
        )
        .as_ref());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"lwolf-auth shared token cache")
            .extract(who.secret.as_bytes());
        let info = |what: &'static [u8]| [what, b"\0", identity.as_bytes()];
        let key: UnboundKey = prk
            .expand(&info(b"aes-256-gcm"), &aead::AES_256_GCM)
            .unwrap()
            .into();
        let name_key: hmac::Key = prk
            .expand(&info(b"entry name"), hmac::HMAC_SHA256)
            .unwrap()
            .into();
        Entry {
            name: hex(hmac::sign(&name_key, identity.as_bytes()).as_ref()),
            key: LessSafeKey::new(key),
        }
    }

    fn aad(&self) -> Aad<Vec<u8>> {
        let mut aad = vec![1u8];
        aad.extend_from_slice(self.name.as_bytes());
        Aad::from(aad)
    }

    /// The JSON a value holds; `None` if it does not open.
    pub fn open(&self, value: &[u8]) -> Option<serde_json::Value> {
        if value.len() < 29 || value[0] != 1 {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&value[1..13]).ok()?;
        let mut buf = value[13..].to_vec();
        let plain = self.key.open_in_place(nonce, self.aad(), &mut buf).ok()?;
        serde_json::from_slice(plain).ok()
    }

    /// A value holding `json`.
    pub fn seal(&self, json: &serde_json::Value) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).unwrap();
        let mut buf = serde_json::to_vec(json).unwrap();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), self.aad(), &mut buf)
            .unwrap();
        let mut out = vec![1u8];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// `value` with its token obtained `age` ago.
    pub fn aged(&self, value: &[u8], age: Duration) -> Vec<u8> {
        let mut json = self.open(value).expect("the value does not open");
        let at = SystemTime::now() - age;
        json["obtained_at"] = at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64().into();
        self.seal(&json)
    }
}

/// The entries a test has made known, for [`entry_of_file`].
static KNOWN: Mutex<Vec<Arc<Entry>>> = Mutex::new(Vec::new());

/// Makes `who`'s entry known to [`entry_of_file`]; returns it.
pub fn register(who: &Who<'_>) -> Arc<Entry> {
    let entry = Arc::new(Entry::of(who));
    known().push(Arc::clone(&entry));
    entry
}

/// The known entry a cache file (`<first 32 digits of the name>.token`) belongs to.
pub fn entry_of_file(path: &Path) -> Arc<Entry> {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let found = known()
        .iter()
        .find(|e| e.name.starts_with(stem) && stem.len() == 32)
        .cloned();
    found.unwrap_or_else(|| panic!("{} is no known entry's file", path.display()))
}

/// The list, whichever test panicked while it held it.
fn known() -> std::sync::MutexGuard<'static, Vec<Arc<Entry>>> {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner())
}
