//! The comparisons of BENCHMARKS.md that run in Rust: each measurement side by side with
//! its baseline in the same run, interleaved, reported as ratios. `benches/run.sh` runs
//! this and the C and Python benches and writes the table; see BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench compare -- [--quick] [--out FILE] [hot|storm|stall|throughput|credentials]...
//! cargo bench --bench compare -- serve [--sandbox] [--max-seconds N]
//! cargo bench --bench compare -- load --threads N --seconds S --path PATH
//! ```
//!
//! With no measurement named, all run. `--out FILE` appends the rows as JSON lines (for
//! `benches/report.py`); they are printed on stderr either way. `--quick` shortens every
//! measurement (for a smoke test; the numbers are then rough).
//!
//! `serve` runs a server for the C and Python benches and prints the `LWOLF_*` settings that
//! point a client at it (one `NAME=value` per line, then an empty line): by default the
//! minimal server of `server.rs`; with `--sandbox`, the crate's sandbox (which the C
//! `threads` example needs for its `/_sandbox/stats`). It stops after `--max-seconds`
//! (default 900) or when killed.
//!
//! `load` makes GETs of `PATH` through the library from `N` threads for `S` seconds, with a
//! client from the `LWOLF_*` environment, and prints the rate and the p99 latency (ms).
//!
//! Nothing here asserts on timings: a missed target is reported, not failed.

mod baselines;
mod credentials;
mod hot;
mod load;
mod measure;
mod server;
mod stall;
mod storm;
mod throughput;

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut quick = false;
    let mut out = None;
    let mut serve = false;
    let mut sandbox = false;
    let mut max_seconds = 900u64;
    let mut which: Vec<String> = Vec::new();
    let mut load = false;
    let (mut threads, mut seconds, mut path) = (16usize, 5u64, String::from("/v1/offices"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(args.next().expect("--out FILE").into()),
            "--sandbox" => sandbox = true,
            "--max-seconds" => {
                max_seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--max-seconds N")
            }
            "serve" => serve = true,
            "load" => load = true,
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            "--path" => path = args.next().expect("--path PATH"),
            "hot" | "storm" | "stall" | "throughput" | "credentials" => which.push(arg),
            // `cargo bench` passes `--bench`; libtest-style filters are not used here.
            a if a.starts_with("--") => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    if load {
        load::run(threads, seconds, &path);
        return;
    }
    if serve {
        run_server(sandbox, Duration::from_secs(max_seconds));
        return;
    }
    let sink = measure::Sink::new(out);
    let all = which.is_empty();
    let wants = |name: &str| all || which.iter().any(|w| w == name);
    if wants("hot") {
        hot::run(&sink, quick);
        hot::run_stats(&sink, quick);
    }
    if wants("storm") {
        storm::run(&sink, quick);
    }
    if wants("stall") {
        stall::run(&sink, quick);
    }
    if wants("throughput") {
        throughput::run(&sink, quick);
        throughput::run_governor(&sink, quick);
    }
    if wants("credentials") {
        credentials::run(&sink, quick);
    }
}

fn run_server(sandbox: bool, max: Duration) {
    let mut stdout = std::io::stdout().lock();
    // Both hold made-up credentials for a server on loopback: printing them is the point.
    let _keep: Box<dyn std::any::Any> = if sandbox {
        let s = lwolf_sandbox::Sandbox::start().expect("sandbox");
        writeln!(
            stdout,
            "LWOLF_TOKEN_URL={}\nLWOLF_API_BASE_URL={}\nLWOLF_CLIENT_ID={}\nLWOLF_CLIENT_SECRET={}\n",
            s.token_url(),
            s.api_base_url(),
            s.client_id(),
            s.client_secret()
        )
        .expect("stdout");
        Box::new(s)
    } else {
        let s = server::Server::start(0).expect("server");
        writeln!(
            stdout,
            "LWOLF_TOKEN_URL={}\nLWOLF_API_BASE_URL={}\nLWOLF_CLIENT_ID={}\nLWOLF_CLIENT_SECRET={}\n",
            s.token_url(),
            s.api_base_url(),
            server::CLIENT_ID,
            server::CLIENT_SECRET
        )
        .expect("stdout");
        Box::new(s)
    };
    stdout.flush().expect("stdout");
    drop(stdout);
    std::thread::sleep(max);
}
