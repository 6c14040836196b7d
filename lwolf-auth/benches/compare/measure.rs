//! Interleaved measurement, medians, and the result rows that `benches/report.py` turns into
//! the table of BENCHMARKS.md.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

/// One row of the table. `ratio` is ours ÷ baseline of the quantity in the `ours` and
/// `baseline` columns; `target` says which way is good.
pub struct Row {
    /// Sort key and stable name, e.g. `1.1-hot-rust-1t`.
    pub id: String,
    pub what: String,
    pub ours: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
    /// How it was measured: rounds, spread.
    pub note: String,
}

/// Where rows go: appended as JSON lines to the file named by `--out` (if any), and
/// printed on stderr for a person.
pub struct Sink {
    out: Option<std::path::PathBuf>,
}

impl Sink {
    pub fn new(out: Option<std::path::PathBuf>) -> Sink {
        Sink { out }
    }

    pub fn emit(&self, row: Row) {
        let ratio = row.ratio.map_or("-".to_owned(), |r| format!("{r:.3}x"));
        let met = match row.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        eprintln!(
            "{:<28} ours {:<28} baseline {:<34} ratio {:<8} target {:<14} {met}   [{}]",
            row.id, row.ours, row.baseline, ratio, row.target, row.note
        );
        if let Some(path) = &self.out {
            let value = json!({
                "id": row.id,
                "what": row.what,
                "ours": row.ours,
                "baseline": row.baseline,
                "ratio": row.ratio,
                "target": row.target,
                "met": row.met,
                "note": row.note,
            });
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("results file");
            writeln!(f, "{value}").expect("write results");
        }
    }
}

pub fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

/// The `q` quantile (0..=1) by linear interpolation.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    assert!(!v.is_empty());
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Runs each of `sides` once per round, `rounds` times, starting each round with the next
/// side (a b c, b c a, c a b, …) so that no side always runs first; one result vector per side.
pub fn interleave(rounds: usize, sides: &mut [&mut dyn FnMut() -> f64]) -> Vec<Vec<f64>> {
    let n = sides.len();
    let mut out = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            out[i].push(sides[i]());
        }
    }
    out
}

/// Mean nanoseconds per call of `op` run `iters` times on each of `threads` threads at
/// once (the slowest thread's wall time ÷ its calls).
pub fn ns_per_call(threads: usize, iters: u64, op: &(impl Fn() + Sync)) -> f64 {
    let barrier = std::sync::Barrier::new(threads);
    let worst = std::thread::scope(|s| {
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
            .map(|h| h.join().expect("bench thread"))
            .max()
            .expect("threads")
    });
    worst.as_nanos() as f64 / iters as f64
}

/// Iterations of `op` that take about `target` on one thread.
pub fn calibrate(target: Duration, op: &(impl Fn() + Sync)) -> u64 {
    let mut iters = 1_000u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        let took = start.elapsed();
        if took >= target / 4 || iters >= 1 << 32 {
            let per = took.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per) as u64).max(1_000);
        }
        iters *= 4;
    }
}

/// Requests per second of `op` run back to back for `window`.
pub fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn fmt_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1000.0 {
        format!("{ns:.1} ns")
    } else {
        fmt_dur(Duration::from_nanos(ns as u64))
    }
}

pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

pub fn fmt_rate(r: f64) -> String {
    format!("{r:.0} req/s")
}
