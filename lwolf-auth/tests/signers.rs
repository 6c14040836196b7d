//! Signers: `private_key_jwt` with a key the library never sees (an HSM, a KMS), through
//! the Rust API against the sandbox: every algorithm, a signer that fails or returns garbage,
//! one that is slow (the deadline holds), one that calls back into the client.

use lwolf_test_support::common;

use std::sync::Mutex;
use std::thread;

use common::*;
use lwolf_auth::{Client, Error};
use lwolf_sandbox::Sandbox;

use lwolf_auth::{AssertionAlg, Signer};
use rustls_pki_types::pem::PemObject;
use std::sync::mpsc;

fn key_pair() -> ring::signature::RsaKeyPair {
    let pem = std::fs::read(test_key("rsa-pkcs8.pem")).unwrap();
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
}

fn rsa_sign(key: &ring::signature::RsaKeyPair, alg: AssertionAlg, input: &[u8]) -> Vec<u8> {
    let padding: &'static dyn ring::signature::RsaEncoding = match alg {
        AssertionAlg::Rs384 => &ring::signature::RSA_PKCS1_SHA384,
        AssertionAlg::Ps256 => &ring::signature::RSA_PSS_SHA256,
        _ => &ring::signature::RSA_PKCS1_SHA256,
    };
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(padding, &ring::rand::SystemRandom::new(), input, &mut sig)
        .unwrap();
    sig
}

/// A signer made of a closure.
struct FnSigner<F>(F);
impl<F: Fn(AssertionAlg, &[u8]) -> Result<Vec<u8>, String> + Send + Sync> Signer for FnSigner<F> {
    fn sign(&self, alg: AssertionAlg, input: &[u8]) -> Result<Vec<u8>, String> {
        (self.0)(alg, input)
    }
}

fn sandbox() -> Sandbox {
    let public = std::fs::read_to_string(test_key("rsa-public.pem")).unwrap();
    Sandbox::builder()
        .client_public_key(public)
        .start()
        .unwrap()
}

fn with_signer(sandbox: &Sandbox, signer: Arc<dyn Signer>) -> lwolf_auth::ConfigBuilder {
    lwolf_auth::Config::builder()
        .client_id(sandbox.client_id())
        .token_url(sandbox.token_url())
        .api_base_url(sandbox.api_base_url())
        .signer(signer)
        .private_key_id("vault-key-1")
}

use std::sync::Arc;

#[test]
fn a_signer_gets_tokens_for_each_algorithm_and_the_kid_names_the_key() {
    let sandbox = sandbox();
    let key = Arc::new(key_pair());
    for alg in [
        AssertionAlg::Rs256,
        AssertionAlg::Rs384,
        AssertionAlg::Ps256,
    ] {
        let key = Arc::clone(&key);
        let signer = Arc::new(FnSigner(move |alg, input: &[u8]| {
            Ok(rsa_sign(&key, alg, input))
        }));
        let client = Client::new(
            with_signer(&sandbox, signer)
                .assertion_alg(alg)
                .build()
                .unwrap(),
        );
        assert_eq!(
            ok(client.get("/v1/offices").send()).status(),
            200,
            "{alg:?}"
        );
    }
    assert_eq!(sandbox.tokens_issued(), 3);
    // No private_key_id: refused when the client is made.
    let signer = Arc::new(FnSigner(|_, _: &[u8]| Err("unused".to_owned())));
    let e = err(lwolf_auth::Config::builder()
        .client_id(sandbox.client_id())
        .token_url(sandbox.token_url())
        .signer(signer)
        .build());
    assert!(e.to_string().contains("private_key_id"), "{e}");
}

#[test]
fn a_failing_or_garbage_signer_fails_that_request_and_sends_nothing() {
    let sandbox = sandbox();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let refuses = Arc::new(FnSigner(move |_, _: &[u8]| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err("the HSM is locked".to_owned())
    }));
    let client = Client::new(with_signer(&sandbox, refuses).build().unwrap());
    let e = err(client.token());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("the signer failed"), "{e}");
    // Never retried at once: one call of the signer for one token request.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    let garbage = Arc::new(FnSigner(|_, _: &[u8]| Ok(vec![1; 10])));
    let client = Client::new(with_signer(&sandbox, garbage).build().unwrap());
    let e = err(client.token());
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("signature"), "{e}");

    // A signature of the wrong key reaches the gateway, which refuses it.
    let other = {
        let pem = std::fs::read(test_key("rsa3072-pkcs8.pem")).unwrap();
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
        ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
    };
    let wrong = Arc::new(FnSigner(move |alg, input: &[u8]| {
        Ok(rsa_sign(&other, alg, input))
    }));
    let client = Client::new(with_signer(&sandbox, wrong).build().unwrap());
    assert!(matches!(err(client.token()), Error::InvalidCredentials(_)));
    assert_eq!(
        sandbox.token_requests(),
        1,
        "only the wrong key's request was sent"
    );
}

#[test]
fn a_slow_signer_holds_up_no_other_caller_past_its_deadline() {
    let sandbox = sandbox();
    let key = key_pair();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let slow = Arc::new(FnSigner(move |alg, input: &[u8]| {
        let _ = entered_tx.lock().unwrap().send(());
        // Held until the test says so (bounded, so that a failure cannot hang).
        let _ = released.lock().unwrap().recv_timeout(secs(30));
        Ok(rsa_sign(&key, alg, input))
    }));
    let client = Client::new(
        with_signer(&sandbox, slow)
            .deadline(ms(300))
            .build()
            .unwrap(),
    );
    let first = {
        let client = client.clone();
        thread::spawn(move || client.token())
    };
    entered
        .recv_timeout(secs(30))
        .expect("the signer was called");
    // Another caller, while the signer still holds the first: back at its own deadline.
    let e = err(client.token());
    assert!(matches!(e, Error::Deadline(_)), "{e:?}");
    release.send(()).unwrap();
    // The first caller's deadline passed while it signed: nothing was sent.
    let e = err(first.join().unwrap());
    assert!(matches!(e, Error::Deadline(_)), "{e:?}");
    assert!(e.to_string().contains("signed"), "{e}");
    assert_eq!(sandbox.token_requests(), 0);
}

#[test]
fn a_signer_that_calls_back_into_the_client_does_not_deadlock() {
    let sandbox = sandbox();
    let key = key_pair();
    let slot: Arc<std::sync::OnceLock<Client>> = Arc::new(std::sync::OnceLock::new());
    let inside = Arc::clone(&slot);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let reentrant = Arc::new(FnSigner(move |alg, input: &[u8]| {
        let client = inside.get().expect("the client");
        let _ = client.stats();
        let _ = client.cached_token();
        // Its own token, from inside its own fetch: bounded by the deadline, not a hang.
        record
            .lock()
            .unwrap()
            .push(client.token().map(|_| ()).map_err(|e| e.to_string()));
        Ok(rsa_sign(&key, alg, input))
    }));
    let client = Client::new(
        with_signer(&sandbox, reentrant)
            .deadline(secs(1))
            .build()
            .unwrap(),
    );
    slot.set(client.clone()).ok().unwrap();
    let outcome = client.token();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    // Whatever the nested call got, the outer one came back, and with a token if time
    // was left.
    assert!(
        outcome.is_ok() || matches!(outcome, Err(Error::Deadline(_))),
        "{outcome:?}"
    );
}
