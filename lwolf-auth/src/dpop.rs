//! DPoP (RFC 9449): proofs that bind a token to a key this process holds, so that a token
//! that leaks (a log, a core dump, a crossed response) is useless anywhere else.
//!
//! One ES256 key per client (made when the client is, or read from `dpop_key_file`); a new
//! proof for every token request and API request; the last nonce each server gave, by
//! origin, sent back in the next proof.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use zeroize::Zeroizing;

use crate::credential::pem_private_key;
use crate::error::Error;
use crate::fork::{self, PerProcess};
use rustls_pki_types::PrivateKeyDer;

/// The key that signs the proofs, and the nonces servers gave.
pub(crate) struct DpopKey {
    key: EcdsaKeyPair,
    /// The proofs' header (`typ`, `alg`, the public `jwk`), base64url: the same for each.
    header: String,
    /// RFC 7638 thumbprint of the public JWK: what a bound token's `cnf.jkt` names.
    thumbprint: String,
    /// Made here (kept in memory only) rather than read from a file.
    generated: bool,
    /// The last `DPoP-Nonce` of each origin (`scheme://authority`).
    nonces: PerProcess<HashMap<String, String>>,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new P-256 key, in memory only.
    pub(crate) fn generate() -> Result<DpopKey, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::internal("cannot make a DPoP key"))?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| Error::internal("cannot load the DPoP key just made"))?;
        Ok(DpopKey::with(key, true))
    }

    /// The P-256 key in `path` (PEM PKCS#8 `PRIVATE KEY`). Every failure is
    /// [`Error::Config`], with no key material in the message.
    pub(crate) fn load(path: &Path) -> Result<DpopKey, Error> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|e| {
            Error::config(format!(
                "cannot read dpop_key_file {}: {}",
                crate::secret::shown(path),
                e.kind()
            ))
        })?);
        let unusable = |why: &str| {
            Error::config(format!(
                "dpop_key_file {}: {why}",
                crate::secret::shown(path)
            ))
        };
        let der = pem_private_key(&pem).map_err(unusable)?;
        let PrivateKeyDer::Pkcs8(pkcs8) = &*der else {
            return Err(unusable("not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)"));
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|_| unusable("not a P-256 (ES256) private key"))?;
        Ok(DpopKey::with(key, false))
    }

    fn with(key: EcdsaKeyPair, generated: bool) -> DpopKey {
        // The public key is the uncompressed point: 0x04, x, y (32 bytes each).
        let point = key.public_key().as_ref();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        );
        let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            members.as_bytes(),
        ));
        let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
        DpopKey {
            key,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            thumbprint,
            generated,
            nonces: PerProcess::new(HashMap::new(), fork::cloned),
        }
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether the key was made by this process (and so dies with it).
    pub(crate) fn generated(&self) -> bool {
        self.generated
    }

    /// A proof for `method` on `url` (its query and fragment left out), with `ath` for
    /// `access_token` and the last nonce the URL's origin gave, if any.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, Error> {
        let htu = url.split(['?', '#']).next().unwrap_or_default();
        let nonce = self.nonce_for(url);
        self.proof_with(
            method,
            htu,
            access_token,
            nonce.as_deref(),
            SystemTime::now(),
        )
    }

    fn proof_with(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, Error> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)
            .map_err(|_| Error::internal("no randomness for the DPoP proof's jti"))?;
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": htm,
            "htu": htu,
            "iat": now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        });
        if let Some(token) = access_token {
            let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            claims["ath"] = URL_SAFE_NO_PAD.encode(digest).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signed = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&rng, signed.as_bytes())
            .map_err(|_| Error::internal("signing the DPoP proof failed"))?;
        Ok(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Keeps the `DPoP-Nonce` a server at `url` gave (a header value: printable ASCII).
    pub(crate) fn remember_nonce(&self, url: &str, nonce: &str) {
        if nonce.is_empty() || nonce.len() > 512 || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
            return;
        }
        if let Some(origin) = origin_key(url) {
            self.nonces
                .get()
                .lock
                .lock()
                .insert(origin, nonce.to_owned());
        }
    }

    fn nonce_for(&self, url: &str) -> Option<String> {
        let origin = origin_key(url)?;
        self.nonces.get().lock.lock().get(&origin).cloned()
    }
}

/// A URL's origin, lower-cased: whose nonce is whose.
fn origin_key(url: &str) -> Option<String> {
    crate::url::origin_url(url).map(|o| o.to_ascii_lowercase())
}

/// Whether a 400 (token endpoint) or 401 (API) answer asks for a DPoP nonce: the error
/// `use_dpop_nonce`, in the JSON body or in `WWW-Authenticate`.
pub(crate) fn asks_for_nonce(body: &[u8], www_authenticate: Option<&str>) -> bool {
    let (error, _) = crate::token_response::error_fields_of(body, &str::to_owned);
    error.as_deref() == Some("use_dpop_nonce")
        || www_authenticate.is_some_and(|v| {
            v.trim_start()
                .get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case("dpop"))
                && v.contains("use_dpop_nonce")
        })
}
