//! The cached `token()` path against the least a hand-written cache must do: a
//! `parking_lot::Mutex<Arc<str>>` lock and clone, in the same run. Run with
//! `cargo bench --bench token`. The 2-thread comparison and the C path are in
//! `benches/compare` (BENCHMARKS.md, rows 1.x).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use lwolf_auth::sandbox::Sandbox;
use lwolf_auth::Client;
use parking_lot::Mutex;

fn cached_token(c: &mut Criterion) {
    let sandbox = Sandbox::start().expect("sandbox");
    let client = Client::new(sandbox.config_builder().build().expect("config"));
    let token = client.token().expect("first token");
    let baseline: Mutex<Arc<str>> = Mutex::new(Arc::from(token.secret()));

    let mut group = c.benchmark_group("cached_token");
    group.bench_function("lwolf_token", |b| {
        b.iter(|| black_box(client.token().unwrap()))
    });
    group.bench_function("mutex_arc_baseline", |b| {
        b.iter(|| black_box(baseline.lock().clone()))
    });
    group.finish();
    assert_eq!(
        sandbox.token_requests(),
        1,
        "the bench must measure the cached path"
    );
}

criterion_group!(benches, cached_token);
criterion_main!(benches);
