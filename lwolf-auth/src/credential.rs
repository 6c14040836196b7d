//! What authenticates the client at the token endpoint: a shared secret, or a private key
//! that signs a short-lived JWT assertion (RFC 7523, `private_key_jwt`), so that nothing
//! secret leaves the process.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::secret::SecretString;
use crate::token_response::sanitize_to;

/// How long an assertion is valid: Auth0 allows 5 minutes and recommends 1.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The signature algorithm of a `private_key_jwt` assertion: what the gateway accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, 32-byte salt).
    Ps256,
}

impl AssertionAlg {
    /// The JOSE name: `RS256`, `RS384`, `PS256`.
    pub fn name(self) -> &'static str {
        match self {
            AssertionAlg::Rs256 => "RS256",
            AssertionAlg::Rs384 => "RS384",
            AssertionAlg::Ps256 => "PS256",
        }
    }

    /// The algorithm named `name` (as the configuration key takes it).
    pub fn from_name(name: &str) -> Option<AssertionAlg> {
        [
            AssertionAlg::Rs256,
            AssertionAlg::Rs384,
            AssertionAlg::Ps256,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    fn encoding(self) -> &'static dyn signature::RsaEncoding {
        match self {
            AssertionAlg::Rs256 => &signature::RSA_PKCS1_SHA256,
            AssertionAlg::Rs384 => &signature::RSA_PKCS1_SHA384,
            AssertionAlg::Ps256 => &signature::RSA_PSS_SHA256,
        }
    }
}

/// The client's credential, as the token request uses it.
#[derive(Clone)]
pub(crate) enum Credential {
    Secret(SecretString),
    PrivateKeyJwt(Arc<AssertionSigner>),
}

impl Credential {
    /// What the shared caches' keys are derived from (`crate::entry`): the secret, or a
    /// digest of the private key. Secret either way: the cache keys must not be derivable
    /// from anything public.
    pub(crate) fn at_rest_seed(&self) -> Option<&[u8]> {
        match self {
            Credential::Secret(s) => Some(s.expose().as_bytes()),
            Credential::PrivateKeyJwt(k) => k.at_rest_seed(),
        }
    }

    /// The secret, if this is one.
    pub(crate) fn secret(&self) -> Option<&SecretString> {
        match self {
            Credential::Secret(s) => Some(s),
            Credential::PrivateKeyJwt(_) => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(s) => f.debug_tuple("Secret").field(s).finish(),
            Credential::PrivateKeyJwt(k) => f.debug_tuple("PrivateKeyJwt").field(k).finish(),
        }
    }
}

/// What signs `private_key_jwt` assertions for the library, when the key is kept where the
/// library never sees it: an HSM, a cloud KMS, a TPM. The library builds the assertion's
/// header and claims and asks only for the signature of their signing input.
///
/// ```
/// use lwolf_auth::{AssertionAlg, Signer};
/// struct Kms; // a client of the key's vault
/// impl Signer for Kms {
///     fn sign(&self, alg: AssertionAlg, input: &[u8]) -> Result<Vec<u8>, String> {
///         // RS256/RS384: RSASSA-PKCS1-v1_5; PS256: RSASSA-PSS; the raw signature bytes.
///         Err(format!("{} of {} bytes: no vault here", alg.name(), input.len()))
///     }
/// }
/// let config = lwolf_auth::Config::builder()
///     .client_id("my-client")
///     .signer(std::sync::Arc::new(Kms))
///     .private_key_id("key-2026")          // required with a signer: the assertion's kid
///     .build()
///     .unwrap();
/// ```
pub trait Signer: Send + Sync {
    /// The signature of `input` (the assertion's `header.claims`, base64url) for `alg`:
    /// RSASSA-PKCS1-v1_5 with SHA-256 or SHA-384 (`RS256`, `RS384`) or RSASSA-PSS with
    /// SHA-256 (`PS256`), as raw bytes. An error fails that token request with
    /// [`Error::Config`] naming it; it is never retried at once.
    fn sign(&self, alg: AssertionAlg, input: &[u8]) -> Result<Vec<u8>, String>;
}

/// The key that signs: read from a file, or kept by a [`Signer`].
enum SigningKey {
    File(Box<RsaKeyPair>),
    External(Arc<dyn Signer>),
}

/// Signs `private_key_jwt` assertions with an RSA key read from a PEM file, or with a
/// [`Signer`].
pub(crate) struct AssertionSigner {
    key: SigningKey,
    alg: AssertionAlg,
    kid: Option<String>,
    audience: String,
    /// SHA-256 of the key's DER: the private key's stand-in for `Credential::at_rest_seed`
    /// (ring keeps the key itself out of reach). For a [`Signer`]: SHA-256 of its
    /// signature of a fixed text (deterministic for RS256 and RS384, and made only with the
    /// key), worked out when a shared cache first needs it; `None` where it cannot be had
    /// (PS256 is randomized, or the signer failed): tokens are then not shared.
    at_rest_seed: once_cell::sync::OnceCell<Option<Zeroizing<[u8; 32]>>>,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("audience", &self.audience)
            .field(
                "key",
                &match &self.key {
                    SigningKey::File(key) => {
                        format!("RSA {} bits, redacted", key.public().modulus_len() * 8)
                    }
                    SigningKey::External(_) => "kept by a signer".to_owned(),
                },
            )
            .finish()
    }
}

impl AssertionSigner {
    /// Reads the RSA key at `path` (PEM: PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    /// Every failure is [`Error::Config`], and no message holds key material.
    pub(crate) fn load(
        path: &Path,
        alg: AssertionAlg,
        kid: Option<String>,
        audience: String,
    ) -> Result<AssertionSigner, Error> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|e| {
            Error::config(format!(
                "cannot read private_key_file {}: {}",
                crate::secret::shown(path),
                e.kind()
            ))
        })?);
        let unusable = |why: &str| {
            Error::config(format!(
                "private_key_file {}: {why}",
                crate::secret::shown(path)
            ))
        };
        let der = pem_private_key(&pem).map_err(unusable)?;
        let key = match &*der {
            PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
            _ => return Err(unusable("not an RSA private key (PKCS#8 or PKCS#1 PEM)")),
        }
        .map_err(|e| {
            unusable(&format!(
                "not a usable RSA private key ({}; 2048 to 8192 bits)",
                rejected(&e)
            ))
        })?;
        let mut at_rest_seed = Zeroizing::new([0u8; 32]);
        at_rest_seed.copy_from_slice(
            ring::digest::digest(&ring::digest::SHA256, der.secret_der()).as_ref(),
        );
        Ok(AssertionSigner {
            key: SigningKey::File(Box::new(key)),
            alg,
            kid,
            audience,
            at_rest_seed: once_cell::sync::OnceCell::with_value(Some(at_rest_seed)),
        })
    }

    /// A signer whose key the library never sees; `kid` names it (required: it is part of
    /// the token's identity).
    pub(crate) fn external(
        signer: Arc<dyn Signer>,
        alg: AssertionAlg,
        kid: String,
        audience: String,
    ) -> AssertionSigner {
        AssertionSigner {
            key: SigningKey::External(signer),
            alg,
            kid: Some(kid),
            audience,
            at_rest_seed: once_cell::sync::OnceCell::new(),
        }
    }

    /// The seed of the shared caches' keys (see the field); `None`: nothing is shared.
    fn at_rest_seed(&self) -> Option<&[u8]> {
        self.at_rest_seed
            .get_or_init(|| {
                let SigningKey::External(signer) = &self.key else {
                    return None;
                };
                if self.alg == AssertionAlg::Ps256 {
                    return None;
                }
                let text = format!(
                    "lwolf-auth shared cache key v1\0{}",
                    self.kid.as_deref().unwrap_or_default()
                );
                match signer.sign(self.alg, text.as_bytes()) {
                    Ok(signature) if !signature.is_empty() => {
                        let mut seed = Zeroizing::new([0u8; 32]);
                        seed.copy_from_slice(
                            ring::digest::digest(&ring::digest::SHA256, &signature).as_ref(),
                        );
                        Some(seed)
                    }
                    _ => {
                        crate::log::warn!(
                            "the signer gave no key to seal shared tokens with; tokens of this \
                             client are not shared through cache_dir or cache_url"
                        );
                        None
                    }
                }
            })
            .as_deref()
            .map(|seed| &seed[..])
    }

    /// A new assertion for `client_id`, issued at `now`: `exp` is 60 s later and `jti` 128
    /// random bits, new for every call.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Zeroizing<String>, Error> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)
            .map_err(|_| Error::internal("no randomness for the assertion's jti"))?;
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({ "alg": self.alg.name(), "typ": "JWT" });
        if let Some(kid) = &self.kid {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": self.audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let mut jwt = Zeroizing::new(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ));
        let sig = match &self.key {
            SigningKey::File(key) => {
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(self.alg.encoding(), &rng, jwt.as_bytes(), &mut sig)
                    .map_err(|_| Error::internal("signing the assertion failed"))?;
                sig
            }
            SigningKey::External(signer) => {
                let sig = signer.sign(self.alg, jwt.as_bytes()).map_err(|why| {
                    Error::config(format!("the signer failed: {}", sanitize_to(&why, 200)))
                })?;
                // An RSA signature is the modulus's length: 256 to 1024 bytes.
                if !(256..=1024).contains(&sig.len()) {
                    return Err(Error::config(format!(
                        "the signer gave a signature of {} bytes, not one of an RSA key",
                        sig.len()
                    )));
                }
                sig
            }
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(&sig));
        Ok(jwt)
    }
}

/// The first private key of a PEM text (rustls-pki-types reads it), zeroed on drop; an
/// encrypted key, which it does not read, named as such.
pub(crate) fn pem_private_key(
    pem: &[u8],
) -> Result<Zeroizing<PrivateKeyDer<'static>>, &'static str> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(Zeroizing::new(key)),
        Err(_) if pem.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") => {
            Err("the key is encrypted; give it unencrypted")
        }
        Err(_) => Err("no PEM private key in it"),
    }
}

/// Why ring rejected a key, in a few words: its `KeyRejected` names a reason, never key
/// material.
fn rejected(e: &ring::error::KeyRejected) -> &'static str {
    match e.to_string().as_str() {
        "InvalidEncoding" => "invalid encoding",
        "TooSmall" => "too small",
        "TooLarge" => "too large",
        "WrongAlgorithm" => "not an RSA key",
        "InconsistentComponents" => "inconsistent components",
        _ => "rejected",
    }
}

/// The public half of a `private_key_jwt` key: what to register with the gateway.
#[derive(Clone, Debug)]
pub struct PublicJwk {
    jwk: String,
    pem: String,
    thumbprint: String,
}

impl PublicJwk {
    /// The public key of the RSA private key in `path` (read as `private_key_file` is).
    pub fn from_private_key_file(path: &Path) -> Result<PublicJwk, Error> {
        let signer = AssertionSigner::load(path, AssertionAlg::default(), None, String::new())?;
        let SigningKey::File(key) = &signer.key else {
            return Err(Error::internal("a key file is read into a key"));
        };
        let rsa_public_key = key.public().as_ref();
        let (n, e) = rsa_components(rsa_public_key)
            .ok_or_else(|| Error::internal("cannot read the RSA public key"))?;
        let (n, e) = (URL_SAFE_NO_PAD.encode(n), URL_SAFE_NO_PAD.encode(e));
        // RFC 7638: the SHA-256 of the required members, in lexicographic order.
        let members = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            members.as_bytes(),
        ));
        let jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": thumbprint,
            "n": n,
            "e": e,
        })
        .to_string();
        let spki = subject_public_key_info(rsa_public_key);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in STANDARD.encode(spki).as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(PublicJwk {
            jwk,
            pem,
            thumbprint,
        })
    }

    /// The JWK (`kty`, `use`, `kid`, `n`, `e`), as one line of JSON; `kid` is the thumbprint.
    pub fn jwk(&self) -> &str {
        &self.jwk
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as Auth0's dashboard
    /// takes it.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The RFC 7638 thumbprint (base64url SHA-256): a good `private_key_id`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

/// One DER element of `tag`: its content and what follows it (short and long lengths).
pub fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        let len = rest
            .get(..n)?
            .iter()
            .fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, rest.get(n..)?)
    };
    (t == tag).then_some(())?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// `n` and `e` of a DER `RSAPublicKey` (SEQUENCE of two INTEGERs), without leading zeros.
fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, _) = der_element(der, 0x30)?;
    let (n, rest) = der_element(seq, 0x02)?;
    let (e, _) = der_element(rest, 0x02)?;
    Some((strip_zeros(n), strip_zeros(e)))
}

/// A DER INTEGER's bytes without the leading zeros that keep it positive.
fn strip_zeros(b: &[u8]) -> &[u8] {
    let zeros = b.iter().take_while(|&&x| x == 0).count();
    &b[zeros.min(b.len().saturating_sub(1))..]
}

/// The SubjectPublicKeyInfo (RFC 5280) of a DER `RSAPublicKey`.
fn subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
    }
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(rsa_public_key);
    let mut body = RSA_ALGORITHM.to_vec();
    tlv(0x03, &bits, &mut body);
    let mut spki = Vec::new();
    tlv(0x30, &body, &mut spki);
    spki
}
