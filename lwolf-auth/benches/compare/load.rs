//! `load`: authenticated GETs made straight through the library, from threads sharing one
//! client configured from the `LWOLF_*` environment, for a while: the "direct library call"
//! side of the agent's bench (`benches/agent.py`, row 12.4), at wrk's concurrency.
//!
//! Prints one line: `RATE_PER_SECOND P99_MS`.

use std::time::{Duration, Instant};

use lwolf_auth::Client;

use crate::measure::quantile;

pub fn run(threads: usize, seconds: u64, path: &str) {
    let client = Client::from_env().expect("a client from the LWOLF_* environment");
    client.token().expect("a token");
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let latencies: Vec<f64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let client = &client;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while Instant::now() < until {
                        let sent = Instant::now();
                        let response = client.get(path).send().expect("request");
                        assert_eq!(response.status(), 200, "{path}");
                        std::hint::black_box(response.body());
                        mine.push(sent.elapsed().as_secs_f64() * 1e3);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a load thread panicked"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{:.0} {:.3}",
        latencies.len() as f64 / elapsed,
        quantile(&latencies, 0.99)
    );
}
