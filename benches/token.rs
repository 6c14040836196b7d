//! The cached `token()` path against the least a hand-written cache must do: a
//! `parking_lot::Mutex<Arc<str>>` lock and clone. Run with `cargo bench --bench token`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use lwolf_auth::sandbox::Sandbox;
use lwolf_auth::Client;
use parking_lot::Mutex;

/// Runs `op` `iters` times on each of `threads` threads at once; returns the mean time
/// per call (wall time of the slowest thread divided by its calls).
fn per_call(threads: usize, iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn cached_token(c: &mut Criterion) {
    let sandbox = Sandbox::start().expect("sandbox");
    let client = Client::new(sandbox.config_builder().build().expect("config"));
    let token = client.token().expect("first token");
    let baseline: Mutex<Arc<str>> = Mutex::new(Arc::from(token.secret()));

    let mut group = c.benchmark_group("cached_token");
    for threads in [1, 2] {
        group.bench_function(format!("lwolf_token/{threads}t"), |b| {
            b.iter_custom(|iters| {
                per_call(threads, iters, || {
                    black_box(client.token().unwrap());
                })
            })
        });
        group.bench_function(format!("mutex_arc_baseline/{threads}t"), |b| {
            b.iter_custom(|iters| {
                per_call(threads, iters, || {
                    black_box(baseline.lock().clone());
                })
            })
        });
    }
    group.finish();
    assert_eq!(
        sandbox.token_requests(),
        1,
        "the bench must measure the cached path"
    );
}

criterion_group!(benches, cached_token);
criterion_main!(benches);
