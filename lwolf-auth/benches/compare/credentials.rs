//! 7. What keys cost instead of secrets, through the public API, against the minimal server:
//!
//! - 7.1 one `private_key_jwt` assertion (RS256, 2048-bit key): a token request with an
//!   assertion against the same request with a secret, in interleaved rounds; the
//!   difference is the assertion (building and signing it).
//! - 7.2 one DPoP proof (ES256): `client.auth_headers("GET", url)` with a DPoP-bound token
//!   (a proof each call) against a bearer token (no proof); the difference is the proof.
//! - 7.3 authenticated GETs per second with DPoP (a proof per request, `Authorization:
//!   DPoP`) against bearer, keep-alive, one thread each. Target: at least 0.8x. The server
//!   does not verify proofs, so its work is the same on both sides.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use lwolf_auth::{Client, ClientAuth, TokenType};

use crate::measure::{fmt_ns, fmt_rate, interleave, median, quantile, rate, Row, Sink};
use crate::server::Server;

fn key(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-support/keys")
        .join(name)
}

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let secret = Client::new(server.config_builder().build().expect("config"));
    let jwt = Client::new(
        server
            .config_builder()
            .client_auth(ClientAuth::PrivateKeyJwt)
            .private_key_file(key("rsa-pkcs8.pem"))
            .build()
            .expect("config"),
    );
    let bound = Client::new(server.config_builder().dpop(true).build().expect("config"));
    assert_eq!(bound.token().expect("token").token_type(), TokenType::Dpop);
    let window = Duration::from_millis(if quick { 100 } else { 300 });
    let rounds = if quick { 4 } else { 12 };

    // 7.1: fetch after fetch (invalidate, token), one connection each.
    let fetch = |c: &Client| {
        c.invalidate();
        black_box(c.token().expect("token"));
    };
    for _ in 0..20 {
        fetch(&secret);
        fetch(&jwt);
    }
    let r = interleave(
        rounds,
        &mut [&mut || rate(window, || fetch(&jwt)), &mut || {
            rate(window, || fetch(&secret))
        }],
    );
    let per = |rates: &[f64]| 1e9 / median(rates);
    let assertion_ns = per(&r[0]) - per(&r[1]);
    sink.emit(Row {
        id: "7.1-assertion".into(),
        what: "One `private_key_jwt` assertion (RS256, 2048-bit key): token request with it, less one with a secret".into(),
        ours: format!("{} per assertion", fmt_ns(assertion_ns)),
        baseline: format!("{} per token request with a secret", fmt_ns(per(&r[1]))),
        ratio: Some(per(&r[0]) / per(&r[1])),
        target: "none set".into(),
        met: None,
        note: format!(
            "median of {rounds} interleaved rounds of {} each; token requests with an assertion: {}",
            crate::measure::fmt_dur(window),
            fmt_ns(per(&r[0]))
        ),
    });

    // 7.2: the proof alone.
    let url = format!("{}/v1/transactions", server.api_base_url());
    let headers = |c: &Client| black_box(c.auth_headers("GET", &url).expect("headers"));
    let r = interleave(
        rounds,
        &mut [
            &mut || {
                rate(window, || {
                    headers(&bound);
                })
            },
            &mut || {
                rate(window, || {
                    headers(&secret);
                })
            },
        ],
    );
    let proof_ns = per(&r[0]) - per(&r[1]);
    // The floor: ring's ES256 signature alone, on a message of a proof's size.
    let sign_ns = {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let message = [b'.'; 400];
        per(&[rate(window, || {
            black_box(key.sign(&rng, &message).unwrap());
        })])
    };
    sink.emit(Row {
        id: "7.2-dpop-proof".into(),
        what: "One DPoP proof (ES256): `auth_headers()` with a DPoP-bound token, less with a bearer token".into(),
        ours: format!("{} per proof", fmt_ns(proof_ns)),
        baseline: format!("{} per `auth_headers()` with a bearer token", fmt_ns(per(&r[1]))),
        ratio: Some(per(&r[0]) / per(&r[1])),
        target: "none set".into(),
        met: None,
        note: format!(
            "median of {rounds} interleaved rounds; ring's ES256 signature alone, in the same run: {}",
            fmt_ns(sign_ns)
        ),
    });

    // 7.3: GETs.
    let get = |c: &Client| {
        let resp = c.get("/v1/transactions").send().expect("request");
        assert_eq!(resp.status(), 200);
        black_box(resp.body());
    };
    for _ in 0..200 {
        get(&bound);
        get(&secret);
    }
    for (id, delay) in [
        ("7.3-dpop-throughput", 0u64),
        ("7.4-dpop-throughput-1ms", 1),
    ] {
        server.set_api_delay(Duration::from_millis(delay));
        let r = interleave(
            rounds,
            &mut [&mut || rate(window, || get(&bound)), &mut || {
                rate(window, || get(&secret))
            }],
        );
        let ratios: Vec<f64> = r[0].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
        let ratio = median(&ratios);
        let server_time = if delay == 0 {
            "loopback, the minimal server answering at once".to_owned()
        } else {
            format!("a server taking {delay} ms per answer")
        };
        sink.emit(Row {
            id: id.into(),
            what: format!(
                "Authenticated GETs, keep-alive, {server_time}, Rust `client.get()`: DPoP (a proof per request) vs bearer"
            ),
            ours: fmt_rate(median(&r[0])),
            baseline: format!("{} (the same client API with a bearer token)", fmt_rate(median(&r[1]))),
            ratio: Some(ratio),
            target: "≥ 0.8x".into(),
            met: Some(ratio >= 0.8),
            note: format!(
                "median of {rounds} interleaved rounds, per-round ratio p25-p75 {:.2}-{:.2}",
                quantile(&ratios, 0.25),
                quantile(&ratios, 0.75)
            ),
        });
    }
    server.set_api_delay(Duration::ZERO);
}
