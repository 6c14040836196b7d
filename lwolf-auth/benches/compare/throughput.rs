//! 4a. Authenticated request throughput over keep-alive on loopback: `client.get()` against a
//!     raw ureq agent sending a fixed `Authorization` header, one thread, one connection
//!     each, against the minimal server of `server.rs` (so that the server is not the
//!     bottleneck).
//!
//! The baseline is the agent a ureq user gets by default (`ureq::Agent::new_with_defaults()`).
//! A third agent, configured as the library configures its own (a global timeout, no
//! redirects, statuses as responses), runs in the same rounds: the difference between the
//! two baselines is ureq's own price for that configuration, not the library's. A fourth,
//! the same configuration with `baselines::CachingResolver`, shows what the fix proposed in
//! BENCHMARKS.md would recover.

use std::hint::black_box;
use std::time::Duration;

use lwolf_auth::Client;

use crate::baselines;
use crate::measure::{fmt_rate, interleave, median, quantile, rate, Row, Sink};
use crate::server::Server;

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let client = Client::new(server.config_builder().build().expect("config"));
    let token = client.token().expect("token");
    let url = format!("{}/v1/transactions", server.api_base_url());
    let authorization = format!("Bearer {}", token.secret());
    let default_agent = ureq::Agent::new_with_defaults();
    let configured_agent = baselines::agent();
    let fixed_agent = baselines::agent_with_caching_resolver();

    let ours = || {
        let resp = client.get("/v1/transactions").send().expect("request");
        assert_eq!(resp.status(), 200);
        black_box(resp.body());
    };
    let raw = |agent: &ureq::Agent| {
        let mut resp = agent
            .get(&url)
            .header("authorization", &authorization)
            .header("accept", "application/json")
            .call()
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
        black_box(resp.body_mut().read_to_vec().expect("body"));
    };
    // Open and warm the three connections.
    for _ in 0..200 {
        ours();
        raw(&default_agent);
        raw(&configured_agent);
        raw(&fixed_agent);
    }
    let connections = server.connections();
    let window = Duration::from_millis(if quick { 100 } else { 300 });
    let rounds = if quick { 4 } else { 15 };
    let r = interleave(
        rounds,
        &mut [
            &mut || rate(window, ours),
            &mut || rate(window, || raw(&default_agent)),
            &mut || rate(window, || raw(&configured_agent)),
            &mut || rate(window, || raw(&fixed_agent)),
        ],
    );
    assert_eq!(
        server.connections(),
        connections,
        "every side must keep its one connection alive"
    );
    assert_eq!(server.token_requests(), 1);
    let ratios: Vec<f64> = r[0].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
    let ratio = median(&ratios);
    let configured: Vec<f64> = r[0].iter().zip(&r[2]).map(|(a, b)| a / b).collect();
    let fixed: Vec<f64> = r[3].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
    sink.emit(Row {
        id: "4.1-throughput-rust".into(),
        what: "Authenticated GETs, keep-alive, loopback (minimal server), Rust `client.get()`"
            .into(),
        ours: fmt_rate(median(&r[0])),
        baseline: format!(
            "{} (`ureq::Agent::new_with_defaults()`, fixed `Authorization` header)",
            fmt_rate(median(&r[1]))
        ),
        ratio: Some(ratio),
        target: "≥ 0.95x (overhead < 5%)".into(),
        met: Some(ratio >= 0.95),
        note: format!(
            "median of {rounds} interleaved rounds, per-round ratio p25-p75 {:.2}-{:.2}; a ureq \
             agent configured like the library's (timeout_global etc.): {} in the same rounds, \
             ours/that {:.2}x; that agent with a resolver that does not spawn a thread per \
             request (`CachingResolver`, the proposed fix): {}, {:.2}x the default agent",
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            fmt_rate(median(&r[2])),
            median(&configured),
            fmt_rate(median(&r[3])),
            median(&fixed)
        ),
    });
}

/// 4.7. The pace governor's cost on a call it never holds back: the same GETs through a client
/// with `max_in_flight` and `max_requests_per_second` set far above what one thread reaches
/// (so every call takes the governor's lock and permit, and none waits), against a client
/// without limits (no governor at all), in the same rounds.
pub fn run_governor(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let plain = Client::new(server.config_builder().build().expect("config"));
    let governed = Client::new(
        server
            .config_builder()
            .max_in_flight(1024)
            .max_requests_per_second(10_000_000)
            .build()
            .expect("config"),
    );
    let call = |client: &Client| {
        let resp = client.get("/v1/transactions").send().expect("request");
        assert_eq!(resp.status(), 200);
        black_box(resp.body());
    };
    for _ in 0..200 {
        call(&plain);
        call(&governed);
    }
    let window = Duration::from_millis(if quick { 100 } else { 300 });
    let rounds = if quick { 4 } else { 15 };
    let r = interleave(
        rounds,
        &mut [&mut || rate(window, || call(&governed)), &mut || {
            rate(window, || call(&plain))
        }],
    );
    assert_eq!(governed.stats().throttled, 0, "no call may have waited");
    let ratios: Vec<f64> = r[0].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
    let ratio = median(&ratios);
    sink.emit(Row {
        id: "4.7-governor".into(),
        what: "Authenticated GETs, keep-alive, loopback, Rust `client.get()` through an \
               unthrottled governor (`max_in_flight=1024`, `max_requests_per_second=10000000`)"
            .into(),
        ours: fmt_rate(median(&r[0])),
        baseline: format!(
            "{} (the same client without limits: no governor)",
            fmt_rate(median(&r[1]))
        ),
        ratio: Some(ratio),
        target: "≥ 0.97x (within noise of 4.1)".into(),
        met: Some(ratio >= 0.97),
        note: format!(
            "median of {rounds} interleaved rounds, per-round ratio p25-p75 {:.2}-{:.2}",
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
        ),
    });
}
