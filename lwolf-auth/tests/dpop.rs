//! DPoP (RFC 9449) with `dpop=on`: the proofs the test server receives are verified
//! (signature with the header's jwk, `typ`, `alg`, `htm`, `htu` without the query, `iat`,
//! `jti`, `ath`, `nonce`, the same key at the token endpoint and the API); the nonce dance on
//! both sides without a new token; a Bearer answer used as a bearer token; a DPoP answer
//! with `dpop=off` refused; the sandbox end to end; the C ABI's `lwolf_client_auth_headers`.

use lwolf_test_support::c_calls;
use lwolf_test_support::common;

use std::collections::HashSet;
use std::ffi::c_char;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use lwolf_auth::{Client, ConfigBuilder, Error, TokenType};
use lwolf_auth_ffi::*;
use lwolf_sandbox::Sandbox;
use ring::signature;
use serde_json::Value;

fn dpop_token(token: &str) -> Action {
    Action::json(
        200,
        format!(r#"{{"access_token":"{token}","token_type":"DPoP","expires_in":3600}}"#),
    )
}

/// A verified proof's header and claims, and the RFC 7638 thumbprint of its key.
fn verify_proof(proof: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {proof}");
    let decode =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwk = &header["jwk"];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert!(jwk.get("d").is_none(), "the private key is in the proof");
    let (x, y) = (jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
    let signed = format!("{}.{}", parts[0], parts[1]);
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the proof's signature verifies with its jwk");
    let now = unix_now();
    let iat = claims["iat"].as_f64().unwrap();
    assert!((iat - now).abs() < 30.0, "iat {iat}, now {now}");
    let jti = claims["jti"].as_str().unwrap();
    assert!(URL_SAFE_NO_PAD.decode(jti).unwrap().len() >= 16);
    let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let jkt = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        members.as_bytes(),
    ));
    (header, claims, jkt)
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn dpop_client(server: &Server) -> Client {
    Client::new(builder(server).dpop(true).build().unwrap())
}

#[test]
fn proofs_at_the_token_endpoint_and_the_api_are_of_one_key() {
    let server = Server::new(route(dpop_token("TKN-dpop-1"), Action::json(200, "{}")));
    let client = dpop_client(&server);
    let token = ok(client.token());
    assert_eq!(token.token_type(), TokenType::Dpop);
    let resp = ok(client.get("/v1/offices").query("top", "2").send());
    assert_eq!(resp.status(), 200);
    ok(client.get("/v1/offices").send());

    let requests = server.requests();
    let token_request = &requests[0];
    let (_, claims, key_at_token) =
        verify_proof(token_request.header("dpop").expect("no DPoP proof"));
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], server.token_url());
    assert!(
        claims.get("ath").is_none() && claims.get("nonce").is_none(),
        "{claims}"
    );

    let mut jtis = HashSet::new();
    jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    for api in &requests[1..] {
        assert_eq!(api.header("authorization"), Some("DPoP TKN-dpop-1"));
        let (_, claims, key) = verify_proof(api.header("dpop").expect("no DPoP proof"));
        assert_eq!(key, key_at_token, "another key at the API");
        assert_eq!(claims["htm"], "GET");
        // The URL without its query.
        assert_eq!(
            claims["htu"],
            format!("{}/v1/offices", client.api_base_url())
        );
        assert_eq!(claims["ath"], ath("TKN-dpop-1"));
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_owned()),
            "a jti reused"
        );
    }
    assert!(requests[1].path.ends_with("?top=2"));
}

#[test]
fn a_nonce_asked_for_is_sent_at_once_on_both_sides_without_a_new_token() {
    let server = Server::new(Action::json(200, "{}"));
    // The token endpoint asks for a nonce; then issues. The API asks for another.
    server.push(
        Action::json(
            400,
            r#"{"error":"use_dpop_nonce","error_description":"nonce"}"#,
        )
        .header("DPoP-Nonce", "nonce-at-token"),
    );
    server.push(dpop_token("TKN-nonce-1"));
    server.push(
        Action::json(401, r#"{"error":"use_dpop_nonce"}"#)
            .header(
                "WWW-Authenticate",
                r#"DPoP error="use_dpop_nonce", error_description="nonce""#,
            )
            .header("DPoP-Nonce", "nonce-at-api"),
    );
    // No retries at all: the nonce round trips are not retries.
    let client = Client::new(builder(&server).dpop(true).max_retries(0).build().unwrap());
    let resp = ok(client.get("/v1/offices").send());
    assert_eq!(resp.status(), 200);
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_eq!(server.token_requests(), 2);
    let nonce = |i: usize| verify_proof(requests[i].header("dpop").unwrap()).1["nonce"].clone();
    assert_eq!(nonce(0), Value::Null);
    assert_eq!(nonce(1), "nonce-at-token");
    // The API's nonce is that origin's: here the same server, so the token endpoint's first.
    assert_eq!(nonce(2), "nonce-at-token");
    assert_eq!(nonce(3), "nonce-at-api");
    // Both API requests carried the one token.
    assert_eq!(
        requests[2].header("authorization"),
        requests[3].header("authorization")
    );
}

#[test]
fn a_bearer_answer_is_used_as_a_bearer_token_and_dpop_without_dpop_is_refused() {
    let server = Server::new(route(issue_tokens("b", 3600), Action::json(200, "{}")));
    let client = dpop_client(&server);
    let token = ok(client.token());
    assert_eq!(token.token_type(), TokenType::Bearer);
    ok(client.get("/v1/offices").send());
    let api = server.request(1);
    assert_eq!(
        api.header("authorization"),
        Some(&*format!("Bearer {}", token.secret()))
    );
    assert!(api.header("dpop").is_none(), "a proof with a bearer token");

    let server = Server::new(dpop_token("TKN-bound"));
    let e = err(Client::new(builder(&server).build().unwrap()).token());
    assert!(matches!(e, Error::InvalidResponse(_)), "{e:?}");
    assert!(e.to_string().contains("dpop is off"), "{e}");
    assert!(server.request(0).header("dpop").is_none());
}

#[test]
fn the_sandbox_binds_tokens_and_asks_for_nonces() {
    let sandbox = Sandbox::builder().dpop_nonce(true).start().unwrap();
    let client = Client::new(sandbox.config_builder().dpop(true).build().unwrap());
    let token = ok(client.token());
    assert_eq!(token.token_type(), TokenType::Dpop);
    for path in ["/v1/offices", "/v1/transactions"] {
        assert_eq!(ok(client.get(path).send()).status(), 200, "{path}");
    }
    // One nonce round trip at the token endpoint; one token issued.
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(sandbox.tokens_issued(), 1);
    // The bound token is useless as a bearer token, or with another key's proof.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{}/v1/offices", sandbox.api_base_url());
    let status = agent
        .get(&url)
        .header("authorization", &format!("Bearer {}", token.secret()))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    let other = Client::new(sandbox.config_builder().dpop(true).build().unwrap());
    let foreign = other.auth_headers("GET", &url).unwrap();
    let status = agent
        .get(&url)
        .header("authorization", &format!("DPoP {}", token.secret()))
        .header("dpop", foreign.dpop().unwrap())
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401, "another key's proof was accepted");
    // Without dpop, the sandbox issues bearer tokens as before.
    let plain = Client::new(sandbox.config_builder().build().unwrap());
    assert_eq!(ok(plain.token()).token_type(), TokenType::Bearer);
}

#[test]
fn a_key_file_is_used_and_shares_the_disk_cache_only_with_its_holders() {
    let server = Server::new(route(dpop_token("TKN-file-1"), Action::json(200, "{}")));
    let dir = TempDir::new("dpop-disk");
    let with_file = || {
        builder(&server)
            .dpop(true)
            .dpop_key_file(test_key("ec-p256-pkcs8.pem"))
            .cache_dir(dir.path())
    };
    let a = Client::new(with_file().build().unwrap());
    let b = Client::new(with_file().build().unwrap());
    ok(a.token());
    let (_, _, first) = verify_proof(server.request(0).header("dpop").unwrap());
    // The same key file: the same cache file, so b reads a's token.
    assert_eq!(a.cache_file(), b.cache_file());
    ok(b.token());
    assert_eq!(server.token_requests(), 1);
    // Made keys never share a file; a plain client has another file.
    let made = Client::new(
        builder(&server)
            .dpop(true)
            .cache_dir(dir.path())
            .build()
            .unwrap(),
    );
    assert!(made.cache_file().is_none());
    let plain = Client::new(builder(&server).cache_dir(dir.path()).build().unwrap());
    assert_ne!(plain.cache_file(), a.cache_file());
    // The key's thumbprint is stable: the same key, another client, the same jkt.
    let server2 = Server::new(route(dpop_token("TKN-file-2"), Action::json(200, "{}")));
    ok(Client::new(
        builder(&server2)
            .dpop(true)
            .dpop_key_file(test_key("ec-p256-pkcs8.pem"))
            .build()
            .unwrap(),
    )
    .token());
    assert_eq!(
        verify_proof(server2.request(0).header("dpop").unwrap()).2,
        first
    );

    // Not a P-256 key: a configuration error without key material.
    let e = builder(&server)
        .dpop(true)
        .dpop_key_file(test_key("rsa-pkcs8.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("not a P-256"), "{e}");
    let e = ConfigBuilder::default().set("dpop", "yes").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

/// `lwolf_client_auth_headers` into buffers of `cap` bytes: status and both values.
fn auth_headers(
    client: *const lwolf_client,
    url: &str,
    cap: usize,
) -> (lwolf_status, String, String, usize, usize) {
    let (mut auth, mut proof) = (vec![0 as c_char; cap], vec![0 as c_char; cap]);
    let (mut auth_len, mut proof_len) = (0usize, 0usize);
    let (method, url) = (c_calls::c("GET"), c_calls::c(url));
    // SAFETY: live client, NUL-terminated strings, buffers of `cap` bytes.
    let status = unsafe {
        lwolf_client_auth_headers(
            client,
            method.as_ptr(),
            url.as_ptr(),
            auth.as_mut_ptr(),
            cap,
            &mut auth_len,
            proof.as_mut_ptr(),
            cap,
            &mut proof_len,
        )
    };
    let text = |b: &[c_char]| {
        // SAFETY: NUL-terminated when written; zeroed otherwise.
        unsafe { std::ffi::CStr::from_ptr(b.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (status, text(&auth), text(&proof), auth_len, proof_len)
}

#[test]
fn auth_headers_for_callers_that_send_their_own_requests_through_the_c_abi() {
    let sandbox = Sandbox::builder().dpop_nonce(true).start().unwrap();
    let settings = |dpop: &'static str| {
        vec![
            ("client_id", sandbox.client_id().to_owned()),
            ("client_secret", sandbox.client_secret().to_owned()),
            ("token_url", sandbox.token_url()),
            ("api_base_url", sandbox.api_base_url()),
            ("dpop", dpop.to_owned()),
        ]
    };
    let key_file = test_key("ec-p256-pkcs8.pem");
    let make = |dpop| {
        let mut s = settings(dpop);
        if dpop == "on" {
            // Through lwolf_config_set too: the key the proofs are signed with.
            s.push(("dpop_key_file", key_file.to_str().unwrap().to_owned()));
        }
        let pairs: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c_calls::client(&pairs)
    };
    let url = format!("{}/v1/offices?top=1", sandbox.api_base_url());

    // A bearer client: "Bearer <token>" and no proof.
    let bearer = make("off");
    let (status, auth, proof, _, proof_len) = auth_headers(bearer, &url, 4096);
    assert_eq!(status, lwolf_status::LWOLF_OK);
    assert!(auth.starts_with("Bearer "), "{auth}");
    assert_eq!((proof.as_str(), proof_len), ("", 0));

    // A DPoP client: "DPoP <token>" and a proof that the sandbox accepts once it has the
    // nonce the sandbox gave back (fed in with lwolf_client_dpop_nonce).
    let bound = make("on");
    let mut info = std::mem::MaybeUninit::<lwolf_token_info>::uninit();
    // SAFETY: live client, writable out-parameter.
    assert_eq!(
        unsafe { lwolf_client_token_info(bound, info.as_mut_ptr()) },
        lwolf_status::LWOLF_OK
    );
    // SAFETY: written on success.
    let info = unsafe { info.assume_init() };
    // SAFETY: NUL-terminated by the library.
    let token_type = unsafe { std::ffi::CStr::from_ptr(info.token_type.as_ptr()) };
    assert_eq!(token_type.to_str().unwrap(), "DPoP");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let send = |auth: &str, proof: &str| {
        agent
            .get(&url)
            .header("authorization", auth)
            .header("dpop", proof)
            .call()
            .unwrap()
    };
    let (status, auth, proof, _, _) = auth_headers(bound, &url, 4096);
    assert_eq!(status, lwolf_status::LWOLF_OK);
    assert!(auth.starts_with("DPoP "), "{auth}");
    let (_, claims, _) = verify_proof(&proof);
    assert_eq!(
        claims["htu"],
        format!("{}/v1/offices", sandbox.api_base_url())
    );
    // The origin's nonce was learnt at the token endpoint (one origin here): accepted.
    assert_eq!(send(&auth, &proof).status().as_u16(), 200);
    // A stale nonce fed in: refused with the current one, which fed back is accepted.
    let feed = |nonce: &str| {
        let (c_url, c_nonce) = (c_calls::c(&url), c_calls::c(nonce));
        // SAFETY: live client, NUL-terminated strings.
        unsafe { lwolf_client_dpop_nonce(bound, c_url.as_ptr(), c_nonce.as_ptr()) }
    };
    assert_eq!(feed("stale-nonce"), lwolf_status::LWOLF_OK);
    let (_, auth, proof, _, _) = auth_headers(bound, &url, 4096);
    assert_eq!(verify_proof(&proof).1["nonce"], "stale-nonce");
    let refused = send(&auth, &proof);
    assert_eq!(refused.status().as_u16(), 401);
    let nonce = refused
        .headers()
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(feed(&nonce), lwolf_status::LWOLF_OK);
    let (_, auth, proof, auth_len, proof_len) = auth_headers(bound, &url, 4096);
    assert_eq!(send(&auth, &proof).status().as_u16(), 200);

    // Too small: BUFFER_TOO_SMALL with both lengths, nothing copied.
    let (status, copied, _, short_auth, short_proof) = auth_headers(bound, &url, 16);
    assert_eq!(status, lwolf_status::LWOLF_ERR_BUFFER_TOO_SMALL);
    assert_eq!(copied, "");
    assert_eq!(short_auth, auth_len);
    assert!(short_proof > 100 && short_proof.abs_diff(proof_len) < 8);
    // SAFETY: handles made above, freed once.
    unsafe {
        lwolf_client_free(bearer);
        lwolf_client_free(bound);
    }
}

#[test]
fn no_record_message_or_debug_holds_a_key_an_assertion_a_proof_or_a_token() {
    use std::sync::{Arc, Mutex};
    let records = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let records = Arc::clone(&records);
        lwolf_auth::unversioned::log::set_handler(
            lwolf_auth::unversioned::log::LevelFilter::Trace,
            move |_, m| {
                records.lock().unwrap().push(m.to_owned());
            },
        );
    }
    let mut said: Vec<String> = Vec::new();
    let server = Server::new(route(dpop_token("TKN-leak-1"), Action::json(200, "{}")));
    // A nonce asked for at the API, and a server error echoing the request's headers.
    server.push(dpop_token("TKN-leak-1"));
    server.push(
        Action::json(401, r#"{"error":"use_dpop_nonce"}"#)
            .header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce""#)
            .header("DPoP-Nonce", "n-1"),
    );
    let config = builder(&server)
        .client_auth(lwolf_auth::ClientAuth::PrivateKeyJwt)
        .private_key_file(test_key("rsa-pkcs8.pem"))
        .dpop(true)
        .dpop_key_file(test_key("ec-p256-pkcs8.pem"))
        .build()
        .unwrap();
    said.push(format!("{config:?}"));
    let client = Client::new(config);
    said.push(format!("{:?}", ok(client.token())));
    said.push(format!("{:?}", ok(client.get("/v1/offices").send())));
    said.push(format!(
        "{:?}",
        client.auth_headers("GET", &server.url()).unwrap()
    ));
    said.push(format!("{client:?}"));
    // A token endpoint that fails and echoes an assertion-looking body.
    let failing = Server::new(Action::json(
        400,
        r#"{"error":"invalid_client","error_description":"bad"}"#,
    ));
    let e = err(Client::new(
        builder(&failing)
            .client_auth(lwolf_auth::ClientAuth::PrivateKeyJwt)
            .private_key_file(test_key("rsa-pkcs1.pem"))
            .dpop(true)
            .build()
            .unwrap(),
    )
    .token());
    said.push(format!("{e} {e:?}"));
    lwolf_auth::unversioned::log::clear_handler();

    let mut forbidden: Vec<String> = key_lines("rsa-pkcs8.pem");
    forbidden.extend(key_lines("rsa-pkcs1.pem"));
    forbidden.extend(key_lines("ec-p256-pkcs8.pem"));
    forbidden.push("TKN-leak-1".into());
    for req in server.requests().iter().chain(failing.requests().iter()) {
        if let Some(proof) = req.header("dpop") {
            forbidden.push(proof.to_owned());
        }
        if req.path.ends_with("/oauth/token") {
            forbidden.push(req.json()["client_assertion"].as_str().unwrap().to_owned());
        }
    }
    let records = records.lock().unwrap().clone();
    assert!(records.iter().any(|r| r.contains("fetched")), "{records:?}");
    for text in said.iter().chain(records.iter()) {
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "a secret in: {text}");
        }
    }
}
