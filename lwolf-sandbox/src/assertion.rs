//! `private_key_jwt` at the sandbox's token endpoint (RFC 7523, with Auth0's rules): the
//! assertion is verified against the public key the sandbox was given.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature;
use serde_json::Value;

use super::oauth::oauth_error;
use super::server::{Reply, State};
use lwolf_auth::unversioned::der_element;

pub(super) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The RSA public key (DER `RSAPublicKey`) of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
pub(super) fn rsa_public_key_of_pem(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PUBLIC KEY-----")? + "-----BEGIN PUBLIC KEY-----".len();
    let end = pem[start..].find("-----END PUBLIC KEY-----")? + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let spki = STANDARD.decode(b64).ok()?;
    // SEQUENCE { AlgorithmIdentifier, BIT STRING { 0 unused bits, RSAPublicKey } }
    let (body, _) = der_element(&spki, 0x30)?;
    let (_algorithm, rest) = der_element(body, 0x30)?;
    let (bits, _) = der_element(rest, 0x03)?;
    bits.split_first()
        .filter(|(&unused, _)| unused == 0)
        .map(|(_, key)| key.to_vec())
}

/// The client the assertion authenticates, or the OAuth error to answer with.
pub(super) fn verify(
    state: &State,
    assertion_type: Option<&str>,
    jwt: &str,
) -> Result<String, Reply> {
    let invalid = |why: &str| oauth_error(401, "invalid_client", why);
    if assertion_type != Some(ASSERTION_TYPE) {
        return Err(oauth_error(
            400,
            "invalid_request",
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let Some(public_key) = &state.client_public_key else {
        return Err(invalid("no public key is registered for private_key_jwt"));
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(invalid("client_assertion is not a JWT"));
    }
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims)) = (decode(parts[0]), decode(parts[1])) else {
        return Err(invalid("client_assertion is not a JWT"));
    };
    let algorithm: &dyn signature::VerificationAlgorithm = match header["alg"].as_str() {
        Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
        Some("RS384") => &signature::RSA_PKCS1_2048_8192_SHA384,
        Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return Err(invalid("alg must be RS256, RS384 or PS256")),
    };
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
    if signature::UnparsedPublicKey::new(algorithm, public_key)
        .verify(signed.as_bytes(), &signature)
        .is_err()
    {
        return Err(invalid("the client_assertion's signature does not verify"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let claim = |name: &str| claims[name].as_str().unwrap_or_default();
    if claim("iss") != state.client_id || claim("sub") != state.client_id {
        return Err(invalid("iss and sub must be the client id"));
    }
    if claim("aud") != state.issuer {
        return Err(invalid(&format!("aud must be {}", state.issuer)));
    }
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > now && exp - iat <= 300 && iat <= now + 60 => {}
        _ => {
            return Err(invalid(
                "the assertion is expired, or lives more than 5 minutes",
            ))
        }
    }
    let jti = claim("jti");
    if jti.is_empty() || jti.len() > 64 {
        return Err(invalid("jti must be 1 to 64 characters"));
    }
    if !state.seen_jtis.lock().insert(jti.to_owned()) {
        return Err(invalid("jti has already been used"));
    }
    Ok(state.client_id.clone())
}
