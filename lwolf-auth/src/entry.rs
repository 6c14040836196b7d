//! What the shared caches (`cache_dir`, `cache_url`) hold for one identity: an entry's name
//! and its sealed value. Nothing in either is readable without the credential.
//!
//! * The identity is the SHA-256 of what makes a token what it is: `token_url`,
//!   `client_id`, `audience`, `lwt_client_id`, and the DPoP key's thumbprint.
//! * Two keys come from HKDF-SHA256 of the credential (the secret, or a digest of the
//!   private key), with the identity in the expansion: the entry's AES-256-GCM key, and the
//!   HMAC-SHA256 key that names it. The name is the HMAC of the identity, so it shows
//!   neither the client id nor the secret, and a rotated secret names (and reads) another
//!   entry: the old one's token is never served to the new credential.
//! * A value is `version (1) | nonce (12) | AES-256-GCM(entry JSON) | tag (16)`, sealed with
//!   the version and the name as associated data: a value moved to another entry, cut,
//!   altered or of another version does not open, and is then treated as absent.

#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::secret::SecretString;
use crate::token::{AccessToken, TokenSource, TokenType};

/// The value format written, and the only one read.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// The largest value read (a token response is at most 64 KiB, and so is a token).
pub(crate) const MAX_VALUE_BYTES: usize = 80 * 1024;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// HKDF's salt: fixes what the keys are for, across versions of this crate.
const SALT: &[u8] = b"lwolf-auth shared token cache";

/// One identity's entry in the shared caches: its name and the key that seals its value.
pub(crate) struct EntryKey {
    /// HMAC-SHA256 of the identity, in hex (64 digits).
    name: String,
    aead: LessSafeKey,
    refresh_ratio: f64,
}

/// The entry's content, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry<T> {
    access_token: T,
    /// `DPoP` for a bound token, absent for a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    /// When the request that got it was sent, in Unix seconds (wall clock).
    obtained_at: f64,
    lifetime: f64,
}

impl EntryKey {
    /// The entry of `config`'s identity for `lwt_client_id`. `None` when its tokens must not
    /// be shared at all: DPoP-bound to a key this process made, which no other holds, or
    /// signed by a signer that gives no key to seal them with (see `credential`).
    pub(crate) fn new(config: &Config, lwt_client_id: Option<&str>) -> Option<EntryKey> {
        let dpop_key = match &config.dpop {
            Some(key) if key.generated() => return None,
            Some(key) => Some(key.thumbprint()),
            None => None,
        };
        let identity = identity(
            &config.token_url,
            &config.client_id,
            &config.audience,
            lwt_client_id,
            dpop_key,
        );
        Some(EntryKey::derive(
            config.credential.at_rest_seed()?,
            &identity,
            config.refresh_ratio,
        ))
    }

    fn derive(seed: &[u8], identity: &str, refresh_ratio: f64) -> EntryKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(seed);
        let info = |what: &'static [u8]| [what, b"\0", identity.as_bytes()];
        // Both expansions are of a fixed, valid length: they cannot fail.
        let aead_key: UnboundKey = prk
            .expand(&info(b"aes-256-gcm"), &aead::AES_256_GCM)
            .expect("HKDF expansion of 32 bytes")
            .into();
        let name_key: hmac::Key = prk
            .expand(&info(b"entry name"), hmac::HMAC_SHA256)
            .expect("HKDF expansion of 32 bytes")
            .into();
        let name = crate::token::hex(hmac::sign(&name_key, identity.as_bytes()).as_ref());
        EntryKey {
            name,
            aead: LessSafeKey::new(aead_key),
            refresh_ratio,
        }
    }

    /// The entry's name: 64 hex digits, the same in every process of the identity and
    /// credential.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `token`, sealed. `None` only if the system's random source fails.
    pub(crate) fn seal(&self, token: &AccessToken) -> Option<Vec<u8>> {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let entry = Entry {
            access_token: token.secret(),
            token_type: (token.token_type() == TokenType::Dpop).then(|| "DPoP".to_owned()),
            obtained_at: secs(token.obtained_at()),
            lifetime: token.lifetime().as_secs_f64(),
        };
        // Sized up front (JSON escaping at most sextuples a byte), so that the buffer never
        // reallocates and leaves a stray copy of the token behind.
        let capacity = HEADER_LEN + 128 + 6 * token.secret().len() + TAG_LEN;
        let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
        buf.push(FORMAT_VERSION);
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        buf.extend_from_slice(&nonce);
        serde_json::to_writer(&mut *buf, &entry).ok()?;
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                self.aad(),
                &mut buf[HEADER_LEN..],
            )
            .ok()?;
        buf.extend_from_slice(tag.as_ref());
        // Now ciphertext: no longer secret.
        Some(std::mem::take(&mut *buf))
    }

    /// The token `sealed` holds, as read from `source`; why not, when it does not open or
    /// what it holds is not a token.
    pub(crate) fn open(
        &self,
        sealed: &[u8],
        source: TokenSource,
    ) -> Result<AccessToken, &'static str> {
        if sealed.len() > MAX_VALUE_BYTES {
            return Err("it is too large");
        }
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err("it is truncated");
        }
        if sealed[0] != FORMAT_VERSION {
            return Err("it is of an unknown version");
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..HEADER_LEN]);
        let mut buf = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
        let plain = self
            .aead
            .open_in_place(Nonce::assume_unique_for_key(nonce), self.aad(), &mut buf)
            .map_err(|_| "it does not authenticate (another credential's, or altered)")?;
        let entry: Entry<String> = serde_json::from_slice(plain).map_err(|_| "it is malformed")?;
        // Moved, not copied, into a zeroing string.
        let value = SecretString::new(entry.access_token);
        if value.is_empty() || !value.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err("its token is malformed");
        }
        let valid_secs = |s: f64| (0.0..1e11).contains(&s);
        if !valid_secs(entry.obtained_at) || !valid_secs(entry.lifetime) || entry.lifetime == 0.0 {
            return Err("its times are malformed");
        }
        let token_type = match entry.token_type.as_deref() {
            None => TokenType::Bearer,
            Some("DPoP") => TokenType::Dpop,
            Some(_) => return Err("its token type is unknown"),
        };
        Ok(AccessToken::from_wall_clock(
            source,
            value,
            token_type,
            Duration::from_secs_f64(entry.lifetime),
            UNIX_EPOCH + Duration::from_secs_f64(entry.obtained_at),
            self.refresh_ratio,
            crate::jitter::fraction(),
        ))
    }

    fn aad(&self) -> Aad<[u8; 1 + 64]> {
        let mut aad = [0u8; 1 + 64];
        aad[0] = FORMAT_VERSION;
        aad[1..].copy_from_slice(self.name.as_bytes());
        Aad::from(aad)
    }
}

/// SHA-256 (hex) of the fields that make a token what it is, NUL-separated.
fn identity(
    token_url: &str,
    client_id: &str,
    audience: &str,
    lwt_client_id: Option<&str>,
    dpop_key: Option<&str>,
) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let parts = [token_url, client_id, audience, lwt_client_id.unwrap_or("")];
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(b"\0");
        }
        ctx.update(part.as_bytes());
    }
    if let Some(thumbprint) = dpop_key {
        ctx.update(b"\0dpop\0");
        ctx.update(thumbprint.as_bytes());
    }
    crate::token::hex(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Timing;

    fn key(secret: &str, lwt: Option<&str>) -> EntryKey {
        let config = Config::builder()
            .client_id("id")
            .client_secret(secret)
            .build()
            .unwrap();
        EntryKey::new(&config, lwt).unwrap()
    }

    fn token(value: &str) -> AccessToken {
        AccessToken::typed(
            value.into(),
            TokenType::Dpop,
            Duration::from_secs(3600),
            &Timing {
                sent: crate::clock::Mono::now(),
                sent_wall: SystemTime::now() - Duration::from_secs(100),
                refresh_ratio: 0.9,
                jitter: 0.0,
            },
        )
    }

    #[test]
    fn identity_separates_fields() {
        let a = identity("https://t", "id", "aud", None, None);
        assert_eq!(a.len(), 64);
        assert_eq!(a, identity("https://t", "id", "aud", None, None));
        assert_ne!(a, identity("https://t", "id", "aud", Some("x"), None));
        assert_ne!(a, identity("https://t", "id", "aud", None, Some("thumb")));
        // NUL separators: moving a character between fields changes the identity.
        assert_ne!(
            identity("https://t", "ida", "ud", None, None),
            identity("https://t", "id", "aud", None, None)
        );
    }

    #[test]
    fn names_follow_the_identity_and_the_credential() {
        let a = key("one", None);
        assert_eq!(a.name().len(), 64);
        assert_eq!(a.name(), key("one", None).name());
        assert_ne!(a.name(), key("two", None).name(), "a rotated secret");
        assert_ne!(a.name(), key("one", Some("tenant")).name());
        assert!(a.name().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn values_round_trip_and_nothing_else_opens() {
        let a = key("one", None);
        let sealed = a.seal(&token("tok-123")).unwrap();
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"), "in plain text");
        let opened = a.open(&sealed, TokenSource::CacheUrl).unwrap();
        assert_eq!(opened.secret(), "tok-123");
        assert_eq!(opened.token_type(), TokenType::Dpop);
        assert_eq!(opened.source(), TokenSource::CacheUrl);
        assert_eq!(opened.lifetime(), Duration::from_secs(3600));
        // Each seal has its own nonce.
        assert_ne!(sealed, a.seal(&token("tok-123")).unwrap());

        assert!(key("two", None)
            .open(&sealed, TokenSource::CacheUrl)
            .is_err());
        assert!(key("one", Some("t"))
            .open(&sealed, TokenSource::CacheUrl)
            .is_err());
        for cut in [0, 1, HEADER_LEN, sealed.len() - 1] {
            assert!(a.open(&sealed[..cut], TokenSource::CacheUrl).is_err());
        }
        for at in [0, 1, HEADER_LEN + 2, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert!(
                a.open(&altered, TokenSource::CacheUrl).is_err(),
                "byte {at}"
            );
        }
        assert!(a
            .open(
                &vec![FORMAT_VERSION; MAX_VALUE_BYTES + 1],
                TokenSource::CacheUrl
            )
            .is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_open(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            versioned: bool,
        ) {
            let mut bytes = bytes;
            if versioned && !bytes.is_empty() {
                bytes[0] = FORMAT_VERSION;
            }
            proptest::prop_assert!(key("one", None).open(&bytes, TokenSource::CacheUrl).is_err());
        }

        #[test]
        fn any_flipped_bit_is_refused(at in 0usize..4096, bit in 0u8..8) {
            let k = key("one", None);
            let mut sealed = k.seal(&token("tok-prop")).unwrap();
            let at = at % sealed.len();
            sealed[at] ^= 1 << bit;
            proptest::prop_assert!(k.open(&sealed, TokenSource::CacheUrl).is_err());
        }
    }
}
