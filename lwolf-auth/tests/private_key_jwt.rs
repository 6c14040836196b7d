//! `client_auth=private_key_jwt` (RFC 7523): the token request carries a JWT assertion
//! signed with the client's RSA key instead of a secret. The assertions the test server
//! receives are verified by signature (each algorithm) with the public half of the key, and
//! their header and claims checked; bad keys are `Error::Config` with no key material in the
//! message. Through Rust and the C ABI.
//!
//! The keys in test-support/keys are throwaway test keys made with openssl for these tests only.

use lwolf_test_support::c_calls;
use lwolf_test_support::common;

use std::collections::HashSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use lwolf_auth::{AssertionAlg, Client, ClientAuth, ConfigBuilder, Error, TokenFormat};
use lwolf_auth_ffi::lwolf_status;
use ring::signature::{self, RsaKeyPair};
use serde_json::Value;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The DER inside a PEM file's one block.
fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(test_key(name)).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

/// The RSA public key (PKCS#1 `RSAPublicKey` DER) of the test key, as ring verifies with it.
fn public_key() -> Vec<u8> {
    use ring::signature::KeyPair;
    RsaKeyPair::from_pkcs8(&pem_der("rsa-pkcs8.pem"))
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

fn jwt_builder(server: &Server) -> ConfigBuilder {
    ConfigBuilder::default()
        .client_id(CLIENT_ID)
        .token_url(server.token_url())
        .api_base_url(server.url())
        .client_auth(ClientAuth::PrivateKeyJwt)
        .private_key_file(test_key("rsa-pkcs8.pem"))
        .retry_base(ms(1))
        .retry_max(ms(5))
}

/// A verified assertion's header and claims; panics if the signature does not verify.
fn verify(jwt: &str, alg: AssertionAlg) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS compact serialization: {jwt}");
    let verification: &dyn signature::VerificationAlgorithm = match alg {
        AssertionAlg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        AssertionAlg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        AssertionAlg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
        _ => unreachable!(),
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature::UnparsedPublicKey::new(verification, public_key())
        .verify(signed.as_bytes(), &sig)
        .unwrap_or_else(|_| panic!("the {} signature does not verify", alg.name()));
    let decode =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    (decode(parts[0]), decode(parts[1]))
}

fn assertion_of(req: &Request) -> String {
    let body = req.json();
    assert_eq!(body["client_assertion_type"], ASSERTION_TYPE, "{body}");
    assert_eq!(body["client_id"], CLIENT_ID, "{body}");
    assert!(
        body.get("client_secret").is_none(),
        "a client_secret was sent: {body}"
    );
    body["client_assertion"].as_str().unwrap().to_owned()
}

#[test]
fn each_algorithm_signs_an_assertion_the_public_key_verifies() {
    for alg in [
        AssertionAlg::Rs256,
        AssertionAlg::Rs384,
        AssertionAlg::Ps256,
    ] {
        let server = Server::tokens();
        let client = Client::new(jwt_builder(&server).assertion_alg(alg).build().unwrap());
        let before = unix_now();
        ok(client.token());
        let after = unix_now();
        let jwt = assertion_of(&server.request(0));
        let (header, claims) = verify(&jwt, alg);
        assert_eq!(header["alg"], alg.name());
        assert_eq!(header["typ"], "JWT");
        assert!(header.get("kid").is_none(), "{header}");
        assert_eq!(claims["iss"], CLIENT_ID);
        assert_eq!(claims["sub"], CLIENT_ID);
        // The token URL's origin and `/`: the issuer, as Auth0 wants it.
        assert_eq!(claims["aud"], format!("{}/", server.url()));
        let iat = claims["iat"].as_f64().unwrap();
        assert!(
            iat >= before.floor() - 1.0 && iat <= after + 1.0,
            "iat {iat}"
        );
        assert_eq!(claims["exp"].as_f64().unwrap(), iat + 60.0, "at most 60 s");
        let jti = claims["jti"].as_str().unwrap();
        assert!(
            URL_SAFE_NO_PAD.decode(jti).unwrap().len() >= 16,
            "jti under 128 bits"
        );
    }
}

#[test]
fn every_attempt_has_a_new_jti_and_the_kid_and_audience_as_set() {
    let server = Server::tokens();
    server.push_n(Action::status(503), 2);
    let client = Client::new(
        jwt_builder(&server)
            .private_key_id("key-2026")
            .assertion_audience("https://gateway.lwolf.com/")
            .build()
            .unwrap(),
    );
    ok(client.token());
    client.invalidate();
    ok(client.token());
    // Two retried attempts, the token, then another token: four assertions, four jtis.
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    let mut jtis = HashSet::new();
    for req in &requests {
        let (header, claims) = verify(&assertion_of(req), AssertionAlg::Rs256);
        assert_eq!(header["kid"], "key-2026");
        assert_eq!(claims["aud"], "https://gateway.lwolf.com/");
        jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 4, "a jti was used twice");
}

#[test]
fn form_bodies_and_pkcs1_keys() {
    let server = Server::tokens();
    let client = Client::new(
        jwt_builder(&server)
            .private_key_file(test_key("rsa-pkcs1.pem"))
            .token_format(TokenFormat::Form)
            .build()
            .unwrap(),
    );
    ok(client.token());
    let req = server.request(0);
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = req.form();
    let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        field("client_assertion_type").as_deref(),
        Some(ASSERTION_TYPE)
    );
    assert_eq!(field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(field("grant_type").as_deref(), Some("client_credentials"));
    assert!(field("client_secret").is_none());
    // The same key in PKCS#1 form: the PKCS#8 key's public half verifies it.
    verify(&field("client_assertion").unwrap(), AssertionAlg::Rs256);
}

#[test]
fn a_secret_is_neither_needed_nor_sent() {
    let server = Server::tokens();
    // A secret set as well is not sent: the assertion is the credential.
    let client = Client::new(jwt_builder(&server).client_secret(SECRET).build().unwrap());
    ok(client.token());
    assert!(!server.request(0).text().contains(SECRET));
    assert!(
        jwt_builder(&server).build().is_ok(),
        "a secret was required"
    );
}

#[test]
fn bad_missing_and_non_rsa_keys_are_config_errors_without_key_material() {
    let server = Server::tokens();
    let dir = TempDir::new("private-key-jwt");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases: Vec<(ConfigBuilder, &str)> = vec![
        (
            jwt_builder(&server).private_key_file(dir.path().join("missing.pem")),
            "cannot read private_key_file",
        ),
        (
            jwt_builder(&server).private_key_file(test_key("ec-p256-pkcs8.pem")),
            "not a usable RSA private key",
        ),
        (
            jwt_builder(&server).private_key_file(test_key("rsa-public.pem")),
            "no PEM private key",
        ),
        (
            jwt_builder(&server).private_key_file(&garbage),
            "not a usable RSA private key",
        ),
        (
            ConfigBuilder::default()
                .client_id(CLIENT_ID)
                .client_auth(ClientAuth::PrivateKeyJwt),
            "needs private_key_file",
        ),
    ];
    let mut secrets = key_lines("ec-p256-pkcs8.pem");
    secrets.extend(key_lines("rsa-pkcs8.pem"));
    for (builder, expected) in cases {
        let e = builder.build().unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let message = format!("{e} / {e:?} / {builder:?}");
        assert!(message.contains(expected), "{message}");
        for line in &secrets {
            assert!(
                !message.contains(line.as_str()),
                "key material in: {message}"
            );
        }
    }
    // The algorithm and the mode are checked when set.
    let e = ConfigBuilder::default()
        .set("assertion_alg", "HS256")
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = ConfigBuilder::default()
        .set("client_auth", "tls_client_auth")
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn keys_set_from_strings_take_effect() {
    let server = Server::tokens();
    let mut b = ConfigBuilder::default();
    for (k, v) in [
        ("client_id", CLIENT_ID.to_owned()),
        ("token_url", server.token_url()),
        ("client_auth", "private_key_jwt".to_owned()),
        (
            "private_key_file",
            test_key("rsa-pkcs1.pem").to_str().unwrap().to_owned(),
        ),
        ("private_key_id", "kid-from-set".to_owned()),
        ("assertion_alg", "RS384".to_owned()),
        ("assertion_audience", "https://issuer.example/".to_owned()),
    ] {
        b.set(k, &v).unwrap_or_else(|e| panic!("{k}={v}: {e:?}"));
    }
    let config = b.build().unwrap();
    assert_eq!(config.client_auth(), ClientAuth::PrivateKeyJwt);
    ok(Client::new(config).token());
    let (header, claims) = verify(&assertion_of(&server.request(0)), AssertionAlg::Rs384);
    assert_eq!(header["kid"], "kid-from-set");
    assert_eq!(claims["aud"], "https://issuer.example/");
}

#[test]
fn through_the_c_abi() {
    let server = Server::tokens();
    let pkcs8 = test_key("rsa-pkcs8.pem");
    let client = c_calls::client(&[
        ("client_id", CLIENT_ID),
        ("token_url", &server.token_url()),
        ("api_base_url", &server.url()),
        ("client_auth", "private_key_jwt"),
        ("private_key_file", pkcs8.to_str().unwrap()),
        ("assertion_alg", "PS256"),
        ("private_key_id", "c-key"),
    ]);
    let token = c_calls::token(client).expect("token through C");
    assert!(token.starts_with(TOKEN_MARK));
    let (header, _) = verify(&assertion_of(&server.request(0)), AssertionAlg::Ps256);
    assert_eq!(header["kid"], "c-key");
    unsafe { lwolf_auth_ffi::lwolf_client_free(client) };

    // A key that is not RSA: LWOLF_ERR_CONFIG at lwolf_client_new, with a message.
    let ec = test_key("ec-p256-pkcs8.pem");
    let cfg = c_calls::config(&[
        ("client_id", CLIENT_ID),
        ("token_url", &server.token_url()),
        ("client_auth", "private_key_jwt"),
        ("private_key_file", ec.to_str().unwrap()),
    ]);
    let mut out = std::ptr::null_mut();
    // SAFETY: cfg is live and freed once; the out-pointer is valid.
    let status = unsafe { lwolf_auth_ffi::lwolf_client_new(cfg, &mut out) };
    unsafe { lwolf_auth_ffi::lwolf_config_free(cfg) };
    assert_eq!(status, lwolf_status::LWOLF_ERR_CONFIG);
    assert!(out.is_null());
    assert!(c_calls::last_error().contains("not a usable RSA private key"));
}

#[test]
fn the_sandbox_verifies_assertions_against_the_registered_key() {
    use lwolf_sandbox::Sandbox;
    let public = std::fs::read_to_string(test_key("rsa-public.pem")).unwrap();
    let sandbox = Sandbox::builder()
        .client_public_key(public)
        .start()
        .unwrap();
    let config = |key_file: &str| {
        sandbox
            .config_builder()
            .client_auth(ClientAuth::PrivateKeyJwt)
            .private_key_file(test_key(key_file))
            .build()
            .unwrap()
    };
    // The registered key's private half: a token, and API calls with it.
    let client = Client::new(config("rsa-pkcs1.pem"));
    ok(client.token());
    assert_eq!(ok(client.get("/v1/offices").send()).status(), 200);
    // Another key: refused as a bad client.
    let e = err(Client::new(config("rsa3072-pkcs8.pem")).token());
    assert!(matches!(e, Error::InvalidCredentials(_)), "{e:?}");
    assert!(e.to_string().contains("signature does not verify"), "{e}");

    // An assertion replayed (its jti seen before) or for another audience is refused.
    let post = |assertion: &str| {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id(),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "audience": "https://api.lwolf.com",
        });
        let mut resp = agent
            .post(sandbox.token_url())
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    };
    let assertion = sign_assertion(sandbox.client_id(), &format!("{}/", sandbox.url()));
    assert_eq!(post(&assertion).0, 200);
    let (status, body) = post(&assertion);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("jti has already been used"), "{body}");
    let (status, body) = post(&sign_assertion(
        sandbox.client_id(),
        "https://elsewhere.example/",
    ));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("aud must be"), "{body}");
}

/// An RS256 assertion made here, with the test key, as a server sees one.
fn sign_assertion(client_id: &str, aud: &str) -> String {
    let key = RsaKeyPair::from_pkcs8(&pem_der("rsa-pkcs8.pem")).unwrap();
    let now = unix_now() as u64;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now, "exp": now + 60, "jti": format!("test-{now}-{aud}"),
        })
        .to_string(),
    );
    let signed = format!("{header}.{claims}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}
