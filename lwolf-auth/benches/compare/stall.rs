//! 3. Refresh stall: 8 callers share a client whose token falls due while the token
//!    endpoint takes 500 ms to answer. How long does any caller's `token()` take? Target: no
//!    caller blocked (none over 100 ms), max under 1 ms. The library refreshes on a
//!    short-lived thread of its own, so every call is measured.
//!
//! Baseline: golang.org/x/oauth2's client-credentials `TokenSource` (a `ReuseTokenSource`:
//! one mutex held across the fetch, a token counted as expired 10 s early), the real Go
//! package (`benches/go/stall.go`, built by benches/run.sh, which passes its path in
//! `LWOLF_BENCH_GO_STALL`), against the same server in the same run. Without Go, a
//! re-implementation on the same ureq agent (`baselines::ReuseTokenSource`) stands in, and
//! the row says so. Each caller calls, then sleeps 1 ms, as the Go program does.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use lwolf_auth::Client;

use crate::baselines::ReuseTokenSource;
use crate::measure::{fmt_dur, quantile, Row, Sink};
use crate::server::Server;

const DELAY: Duration = Duration::from_millis(500);
const CALLERS: usize = 8;
const PAUSE: Duration = Duration::from_millis(1);
/// A call this long waited for the refresh.
const BLOCKED: f64 = 0.1;

/// What one side's window came to: latencies in seconds.
struct Window {
    calls: usize,
    max: f64,
    p999: f64,
    /// Calls that took `BLOCKED` or more.
    blocked: usize,
    /// Token requests made meanwhile.
    requests: u64,
}

fn window(server: &Server, len: Duration, call: &(impl Fn() + Sync)) -> Window {
    let before = server.token_requests();
    let mut calls: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    let mut calls = Vec::with_capacity(4_000);
                    let start = Instant::now();
                    while start.elapsed() < len {
                        let t0 = Instant::now();
                        call();
                        calls.push(t0.elapsed().as_secs_f64());
                        std::thread::sleep(PAUSE);
                    }
                    calls
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("caller"))
            .collect()
    });
    calls.sort_by(f64::total_cmp);
    Window {
        calls: calls.len(),
        max: calls.last().copied().unwrap_or(0.0),
        p999: quantile(&calls, 0.999),
        blocked: calls.iter().filter(|&&l| l >= BLOCKED).count(),
        requests: server.token_requests() - before,
    }
}

fn ours(server: &Server, len: Duration) -> Window {
    server.set_token_delay(Duration::ZERO);
    server.set_expires_in(Duration::from_secs(10));
    // Due at 0.25-0.5 s of a 10 s lifetime (5%, less up to 5% jitter), servable until 9.5 s:
    // the token falls due again soon after every refresh.
    let client = Client::new(
        server
            .config_builder()
            .refresh_ratio(0.05)
            .build()
            .expect("config"),
    );
    client.token().expect("first token");
    server.set_token_delay(DELAY);
    let w = window(server, len, &|| {
        black_box(client.token().expect("token"));
    });
    // The last refresh may still be out: let it land before the next side runs.
    std::thread::sleep(DELAY + Duration::from_millis(100));
    w
}

/// Go's own, or the stand-in; and the label saying which.
fn go(server: &Server, len: Duration) -> (Window, &'static str) {
    server.set_token_delay(Duration::ZERO);
    // Go counts a token as expired 10 s early: with expires_in 11 s (Go's oauth2 0.3 reads
    // whole seconds only) it is reused for 1 s, then refreshed, about as ours above.
    server.set_expires_in(Duration::from_secs(11));
    if let Some(program) = std::env::var_os("LWOLF_BENCH_GO_STALL") {
        server.set_token_delay(DELAY);
        let before = server.token_requests();
        let out = Command::new(program)
            .arg(server.token_url())
            .arg(CALLERS.to_string())
            .arg(len.as_millis().to_string())
            .output()
            .expect("run the Go stall program");
        assert!(
            out.status.success(),
            "go stall: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("go stall json");
        let w = Window {
            calls: v["calls"].as_u64().expect("calls") as usize,
            max: v["max_s"].as_f64().expect("max_s"),
            p999: v["p999_s"].as_f64().expect("p999_s"),
            blocked: v["over_100ms"].as_u64().expect("over_100ms") as usize,
            requests: server.token_requests() - before,
        };
        return (w, "golang.org/x/oauth2 `ReuseTokenSource` (Go)");
    }
    let source = ReuseTokenSource::new(server.token_url(), Duration::from_secs(10));
    source.token();
    server.set_token_delay(DELAY);
    let w = window(server, len, &|| {
        black_box(source.token());
    });
    (
        w,
        "a `ReuseTokenSource` re-implemented in Rust (Go not installed)",
    )
}

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let len = Duration::from_millis(if quick { 1_300 } else { 3_000 });
    let (o, (g, label)) = if quick {
        (ours(&server, len), go(&server, len))
    } else {
        // The Go side first this time: the order costs neither side here.
        let g = go(&server, len);
        (ours(&server, len), g)
    };
    let d = Duration::from_secs_f64;
    sink.emit(Row {
        id: "3.1-stall-max".into(),
        what: format!(
            "Refresh stall, {CALLERS} callers, 500 ms token endpoint: slowest `token()` of any caller"
        ),
        ours: format!(
            "{} max, p99.9 {}; {} callers blocked",
            fmt_dur(d(o.max)),
            fmt_dur(d(o.p999)),
            o.blocked
        ),
        baseline: format!(
            "{} max, p99.9 {}; {} calls blocked ({label}: mutex held across the fetch)",
            fmt_dur(d(g.max)),
            fmt_dur(d(g.p999)),
            g.blocked
        ),
        ratio: Some(o.max / g.max),
        target: "no caller blocked (none over 100 ms), max < 1 ms".into(),
        met: Some(o.blocked == 0 && o.max < 1e-3),
        note: format!(
            "a window of {} per side, {CALLERS} callers, each calling then sleeping 1 ms; ours: \
             {} calls, {} token requests (refreshes on their own thread); baseline: {} calls, \
             {} token requests",
            fmt_dur(len),
            o.calls,
            o.requests,
            g.calls,
            g.requests
        ),
    });
}
