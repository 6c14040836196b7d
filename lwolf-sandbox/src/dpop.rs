//! DPoP (RFC 9449) at the sandbox: proofs verified at the token endpoint and the APIs,
//! tokens bound to the proof's key (`token_type` `DPoP`), and nonces asked for when the
//! sandbox was told to.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature;
use serde_json::Value;

use super::server::State;

/// A proof that verified: the thumbprint of its key, and its nonce if it had one.
pub(super) struct Proof {
    pub(super) jkt: String,
    pub(super) nonce: Option<String>,
}

/// Verifies a `DPoP` header for a request of `htm` to `htu` (no query), carrying `token`
/// when one is given (`ath`). Each proof's `jti` is accepted once.
pub(super) fn verify(
    state: &State,
    proof: &str,
    htm: &str,
    htu: &str,
    token: Option<&str>,
) -> Result<Proof, &'static str> {
    let parts: Vec<&str> = proof.split('.').collect();
    if parts.len() != 3 {
        return Err("the DPoP proof is not a JWT");
    }
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(parts[0]), decode(parts[1])) else {
        return Err("the DPoP proof is not a JWT");
    };
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
        return Err("the DPoP proof must be typ dpop+jwt, alg ES256");
    }
    let jwk = &header["jwk"];
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err("the DPoP proof's jwk is not an EC key");
    };
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk.get("d").is_some() {
        return Err("the DPoP proof's jwk must be a public P-256 key");
    }
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(x).unwrap_or_default());
    point.extend(URL_SAFE_NO_PAD.decode(y).unwrap_or_default());
    let signed = &proof[..parts[0].len() + 1 + parts[1].len()];
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "the DPoP proof's signature does not verify")?;
    if claims["htm"] != htm {
        return Err("the DPoP proof's htm is not the request's method");
    }
    if claims["htu"] != htu {
        return Err("the DPoP proof's htu is not the request's URL");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    if claims["iat"]
        .as_i64()
        .is_none_or(|iat| (iat - now).abs() > 60)
    {
        return Err("the DPoP proof's iat is more than 60 s off");
    }
    if let Some(token) = token {
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes(),
        ));
        if claims["ath"] != ath.as_str() {
            return Err("the DPoP proof's ath is not the token's hash");
        }
    }
    let jti = claims["jti"].as_str().unwrap_or_default();
    if jti.is_empty() || !state.seen_jtis.lock().insert(format!("dpop:{jti}")) {
        return Err("the DPoP proof's jti is missing or was used before");
    }
    let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    Ok(Proof {
        jkt: URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            members.as_bytes(),
        )),
        nonce: claims["nonce"].as_str().map(str::to_owned),
    })
}

/// Whether the proof lacks the nonce the sandbox asks for (when it asks for one).
pub(super) fn lacks_nonce(state: &State, proof: &Proof) -> bool {
    state
        .dpop_nonce
        .as_deref()
        .is_some_and(|nonce| proof.nonce.as_deref() != Some(nonce))
}
