//! 1. The cached token hot path: `Client::token()` against the least a hand-written cache
//!    must do, a `parking_lot::Mutex<Arc<str>>` lock and clone, on 1 and 2 threads.
//!
//! Two reference points run in the same rounds, to show where the physical limit is: the
//! same lock + clone plus one `Instant::now()` (a cache that checks expiry at all must read a
//! clock), and plus `SystemTime::now()` as well (the two clocks the contract asks for).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lwolf_auth::Client;
use parking_lot::Mutex;

use crate::measure::{calibrate, fmt_ns, interleave, median, ns_per_call, quantile, Row, Sink};
use crate::server::Server;

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let client = Client::new(server.config_builder().build().expect("config"));
    let token = client.token().expect("first token");
    let baseline: Mutex<Arc<str>> = Mutex::new(Arc::from(token.secret()));
    let valid_until = Instant::now() + Duration::from_secs(3600);
    let valid_until_wall = SystemTime::now() + Duration::from_secs(3600);

    let ours = || {
        black_box(client.token().expect("cached token"));
    };
    let base = || {
        black_box(baseline.lock().clone());
    };
    let one_clock = || {
        let t = baseline.lock();
        assert!(Instant::now() < valid_until);
        black_box(t.clone());
    };
    let two_clocks = || {
        let t = baseline.lock();
        assert!(Instant::now() < valid_until && SystemTime::now() < valid_until_wall);
        black_box(t.clone());
    };
    let sample = Duration::from_millis(if quick { 5 } else { 20 });
    let rounds = if quick { 6 } else { 25 };
    let iters = [
        calibrate(sample, &ours),
        calibrate(sample, &base),
        calibrate(sample, &one_clock),
        calibrate(sample, &two_clocks),
    ];

    for threads in [1usize, 2] {
        let r = interleave(
            rounds,
            &mut [
                &mut || ns_per_call(threads, iters[0], &ours),
                &mut || ns_per_call(threads, iters[1], &base),
                &mut || ns_per_call(threads, iters[2], &one_clock),
                &mut || ns_per_call(threads, iters[3], &two_clocks),
            ],
        );
        let ratios: Vec<f64> = r[0].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
        let vs_two: Vec<f64> = r[0].iter().zip(&r[3]).map(|(a, b)| a / b).collect();
        let ratio = median(&ratios);
        sink.emit(Row {
            id: format!("1.{threads}-hot-rust-{threads}t"),
            what: format!(
                "Cached token, Rust `client.token()`, {threads} thread{}",
                if threads > 1 { "s" } else { "" }
            ),
            ours: format!("{}/call", fmt_ns(median(&r[0]))),
            baseline: format!(
                "{}/call (`parking_lot::Mutex<Arc<str>>` lock + clone)",
                fmt_ns(median(&r[1]))
            ),
            ratio: Some(ratio),
            target: "≤ 1.5x".into(),
            met: Some(ratio <= 1.5),
            note: format!(
                "median of {rounds} interleaved rounds, per-round ratio p25-p75 {:.2}-{:.2}; \
                 in the same rounds, lock + clone + `Instant::now()`: {}, + `SystemTime::now()` \
                 too: {} (ours ÷ that {:.2}x)",
                quantile(&ratios, 0.25),
                quantile(&ratios, 0.75),
                fmt_ns(median(&r[2])),
                fmt_ns(median(&r[3])),
                median(&vs_two)
            ),
        });
    }
    assert_eq!(
        server.token_requests(),
        1,
        "the hot path must be measured on the cached token"
    );
}

/// 1.5. What the stats cost the cached-token path: `client.token()` on one thread while
/// another reads `client.stats()` every 100 µs (an exporter far keener than any real one),
/// against the same calls with no reader, in the same rounds. The counters are touched only
/// off this path, so the two should not differ beyond noise.
pub fn run_stats(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let client = Client::new(server.config_builder().build().expect("config"));
    client.token().expect("first token");
    let ours = || {
        black_box(client.token().expect("cached token"));
    };
    let sample = Duration::from_millis(if quick { 20 } else { 60 });
    let iters = calibrate(sample, &ours);
    let rounds = if quick { 4 } else { 15 };
    let reading = std::sync::atomic::AtomicBool::new(false);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if reading.load(std::sync::atomic::Ordering::Relaxed) {
                    black_box(client.stats());
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let r = interleave(
            rounds,
            &mut [
                &mut || {
                    reading.store(true, std::sync::atomic::Ordering::Relaxed);
                    let ns = ns_per_call(1, iters, &ours);
                    reading.store(false, std::sync::atomic::Ordering::Relaxed);
                    ns
                },
                &mut || ns_per_call(1, iters, &ours),
            ],
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    let ratios: Vec<f64> = r[0].iter().zip(&r[1]).map(|(a, b)| a / b).collect();
    let ratio = median(&ratios);
    sink.emit(Row {
        id: "1.5-stats".into(),
        what: "Cached token, Rust `client.token()`, 1 thread, with `client.stats()` read every \
               100 µs by another thread"
            .into(),
        ours: fmt_ns(median(&r[0])),
        baseline: format!("{} (the same calls, no reader)", fmt_ns(median(&r[1]))),
        ratio: Some(ratio),
        target: "≤ 1.05x (none on the hot path)".into(),
        met: Some(ratio <= 1.05),
        note: format!(
            "median of {rounds} interleaved rounds, per-round ratio p25-p75 {:.2}-{:.2}",
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
        ),
    });
}
