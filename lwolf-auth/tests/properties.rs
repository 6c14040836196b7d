//! Properties over arbitrary input: the parsers and rules never panic, and backoff and
//! jitter stay in their bounds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lwolf_auth::unversioned::parse_token_response;
use lwolf_auth::unversioned::{parse_rate_limit_reset, parse_retry_after, Backoff};
use lwolf_auth::{Config, Error, CONFIG_KEYS};
use proptest::prelude::*;

fn any_json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("access_token".to_owned()),
                    Just("token_type".to_owned()),
                    Just("expires_in".to_owned()),
                    Just("error".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_parser_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_token_response(&body, SystemTime::now());
    }

    #[test]
    fn token_parser_accepts_only_what_the_contract_allows(json in any_json_value()) {
        let body = serde_json::to_vec(&json).unwrap();
        if let Ok(r) = parse_token_response(&body, SystemTime::now()) {
            let obj = json.as_object().expect("accepted a non-object");
            let tok = obj["access_token"].as_str().expect("accepted a non-string token");
            prop_assert!(!tok.is_empty());
            prop_assert_eq!(r.access_token.expose(), tok);
            match obj.get("token_type") {
                None | Some(serde_json::Value::Null) => {}
                Some(t) => prop_assert!(t.as_str().unwrap().eq_ignore_ascii_case("bearer")),
            }
            prop_assert!(r.lifetime > Duration::ZERO);
        }
    }

    #[test]
    fn expires_in_must_be_at_least_a_second(secs in prop_oneof![any::<f64>(), 0.0f64..2.0]) {
        let body = serde_json::json!({"access_token": "t", "expires_in": secs}).to_string();
        let parsed = parse_token_response(body.as_bytes(), SystemTime::now());
        if secs.is_finite() && secs >= 1.0 {
            prop_assert!(parsed.is_ok());
        } else {
            prop_assert!(matches!(parsed, Err(Error::InvalidResponse(_))));
        }
    }

    #[test]
    fn retry_after_never_panics(value in ".{0,64}", now_secs in 0u64..4_000_000_000) {
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let _ = parse_retry_after(&value, now);
        if let Some(wait) = parse_rate_limit_reset(&value, now) {
            prop_assert!(wait <= Duration::from_secs(1_000_000_000));
        }
    }

    #[test]
    fn retry_after_delta_seconds_round_trip(secs in 0u64..1_000_000) {
        prop_assert_eq!(
            parse_retry_after(&secs.to_string(), SystemTime::now()),
            Some(Duration::from_secs(secs))
        );
    }

    #[test]
    fn backoff_stays_within_bounds(base_ms in 0u64..10_000, extra_ms in 0u64..100_000, retry in 0u32..100) {
        let b = Backoff {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(base_ms + extra_ms),
        };
        let ceiling = b.ceiling(retry);
        prop_assert!(ceiling <= b.max);
        prop_assert!(ceiling >= b.base.min(b.max));
        prop_assert!(b.ceiling(retry + 1) >= ceiling);
        let wait = b.wait(retry);
        prop_assert!(wait <= ceiling);
    }

    /// Keys are mostly real ones (a random string almost never is), values of the shapes
    /// that real keys take or refuse: numbers of every sign and size, the enum words, URLs,
    /// and anything at all.
    #[test]
    fn config_set_never_panics_and_a_rejection_changes_nothing(
        (key, value) in (config_key(), config_value())
    ) {
        let mut builder = Config::builder().client_id("id").client_secret("s");
        let before = format!("{builder:?}");
        match builder.set(&key, &value) {
            Ok(()) => prop_assert!(CONFIG_KEYS.contains(&key.as_str()), "accepted key {:?}", key),
            Err(e) => {
                prop_assert!(matches!(e, Error::InvalidArgument(_)), "{:?}", e);
                prop_assert_eq!(before, format!("{:?}", builder));
            }
        }
        let _ = builder.build();
    }

    #[test]
    fn only_https_or_loopback_http_is_accepted(url in "(https?|ftp)://[a-z0-9.\\[\\]:]{0,24}(/[a-z]{0,8})?") {
        let built = Config::builder()
            .client_id("id")
            .client_secret("s")
            .token_url(url.clone())
            .build();
        if built.is_ok() {
            let lower = url.to_ascii_lowercase();
            let host = lower
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            prop_assert!(
                lower.starts_with("https://")
                    || host.starts_with("localhost")
                    || host.starts_with("127.")
                    || host.starts_with("[::1]"),
                "accepted {}", url
            );
        } else {
            prop_assert!(matches!(built, Err(Error::Config(_))));
        }
    }
}

/// A configuration key: one of `CONFIG_KEYS` four times in five, else any short string.
fn config_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(CONFIG_KEYS).prop_map(str::to_owned),
        1 => ".{0,24}",
    ]
}

/// A value of the shapes the keys take or refuse.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{0,25}(\\.[0-9]{0,4})?",
        proptest::sample::select(
            &[
                "json",
                "form",
                "body",
                "basic",
                "JSON",
                "",
                "0",
                "1",
                "0.0",
                "1.0",
                "0.5",
                "inf",
                "NaN",
                "1e3",
                "-0",
                "18446744073709551616",
                " 7",
            ][..]
        )
        .prop_map(str::to_owned),
        "(https?|ftp)://[a-z0-9.:]{0,16}(/[a-z]{0,8})?",
        ".{0,48}",
    ]
}
