//! 2. Cold-start storm: 64 threads call `token()` at once on an empty cache while the token
//!    endpoint takes 50 ms. Token requests made (target: 1) and the time until all 64 are
//!    served (target: one round trip + 10%), against one caller alone on a fresh client
//!    (the round trip) and against the check-then-fetch cache most people write first.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use lwolf_auth::Client;

use crate::baselines::NaiveCache;
use crate::measure::{fmt_dur, median, quantile, Row, Sink};
use crate::server::Server;

const THREADS: usize = 64;
const DELAY: Duration = Duration::from_millis(50);

/// Runs `call` on `THREADS` threads released together; returns the time from the first
/// release to the last return.
fn storm(call: &(impl Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(THREADS);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    call();
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("storm thread"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("spans");
    let last = spans.iter().map(|s| s.1).max().expect("spans");
    last - first
}

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    server.set_token_delay(DELAY);
    let config = || server.config_builder().build().expect("config");
    let rounds = if quick { 3 } else { 9 };

    let mut single = Vec::new();
    let mut ours = Vec::new();
    let mut ours_requests = Vec::new();
    let mut naive = Vec::new();
    let mut naive_requests = Vec::new();
    for round in 0..rounds {
        // Rotate the order of the three so that none always runs first.
        for step in 0..3 {
            match (round + step) % 3 {
                0 => {
                    let client = Client::new(config());
                    let start = Instant::now();
                    client.token().expect("token");
                    single.push(start.elapsed().as_secs_f64());
                }
                1 => {
                    let client = Client::new(config());
                    let before = server.token_requests();
                    let took = storm(&|| {
                        client.token().expect("token");
                    });
                    ours.push(took.as_secs_f64());
                    ours_requests.push((server.token_requests() - before) as f64);
                }
                _ => {
                    let cache = NaiveCache::new(server.token_url());
                    let before = server.token_requests();
                    let took = storm(&|| {
                        cache.token();
                    });
                    naive.push(took.as_secs_f64());
                    naive_requests.push((server.token_requests() - before) as f64);
                }
            }
        }
    }

    let max_requests = ours_requests.iter().copied().fold(0.0, f64::max);
    sink.emit(Row {
        id: "2.1-storm-requests".into(),
        what: "Cold-start storm, 64 threads, 50 ms token endpoint: token requests".into(),
        ours: format!("{max_requests:.0} (max of {rounds} storms)"),
        baseline: format!(
            "{:.0} (median; check-then-fetch `Mutex<Option<Arc<str>>>`, lock not held across the fetch)",
            median(&naive_requests)
        ),
        ratio: Some(max_requests / median(&naive_requests)),
        target: "1 request".into(),
        met: Some(max_requests <= 1.0),
        note: format!("{rounds} storms each, order rotated"),
    });
    let ratios: Vec<f64> = ours.iter().zip(&single).map(|(o, s)| o / s).collect();
    let ratio = median(&ratios);
    sink.emit(Row {
        id: "2.2-storm-time".into(),
        what: "Cold-start storm, 64 threads, 50 ms token endpoint: time until all 64 are served"
            .into(),
        ours: fmt_dur(Duration::from_secs_f64(median(&ours))),
        baseline: format!(
            "{} (one `token()` alone on a fresh client: one round trip, connect included)",
            fmt_dur(Duration::from_secs_f64(median(&single)))
        ),
        ratio: Some(ratio),
        target: "≤ 1.10x".into(),
        met: Some(ratio <= 1.10),
        note: format!(
            "median of {rounds} rounds (per-round ratio p25-p75 {:.3}-{:.3}); the naive cache's storm took {}",
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            fmt_dur(Duration::from_secs_f64(median(&naive)))
        ),
    });
}
