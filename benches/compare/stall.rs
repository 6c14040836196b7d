//! 3. Refresh stall: while the token endpoint takes 500 ms to answer a refresh, how long do
//!    the *other* callers' `token()` calls take? Target: max under 1 ms. Baseline: a client
//!    built like golang.org/x/oauth2's `ReuseTokenSource` (mutex held across the fetch) on
//!    the same HTTP agent.
//!
//! Three caller threads call `token()` every ~100 µs for a window of a few seconds in which
//! the token falls due several times. The library refreshes inline, in the caller that found
//! the token due: as many calls as the server saw token requests are that caller's, and they
//! are the slowest ones (each waited the endpoint's delay); every other call is measured. (If
//! one of those slowest calls was not at least 80% of the delay long, the accounting is off,
//! and the note says so.) The Go-style baseline knows which of its calls fetched. Each caller also times a bare
//! `Mutex<Arc<str>>` lock + clone right after each call: the machine's own noise floor in
//! the same window, so a scheduler hiccup is not mistaken for a stall.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwolf_auth::Client;
use parking_lot::Mutex;

use crate::baselines::ReuseTokenSource;
use crate::measure::{fmt_dur, quantile, Row, Sink};
use crate::server::Server;

const DELAY: Duration = Duration::from_millis(500);
const CALLERS: usize = 3;
const PAUSE: Duration = Duration::from_micros(100);

struct Window {
    /// Latencies of the calls that did not refresh, in seconds.
    others: Vec<f64>,
    /// Calls that refreshed.
    refreshes: usize,
    /// Token requests the server saw during the window.
    requests: u64,
    /// Whether the calls taken for refreshes were each at least 80% of the delay long.
    consistent: bool,
    /// The noise floor: latencies of a bare lock + clone in the same loop.
    control: Vec<f64>,
}

/// Runs `CALLERS` threads calling `call` (which says whether it fetched, when it knows)
/// for `window`.
fn window(server: &Server, window: Duration, call: &(impl Fn() -> Option<bool> + Sync)) -> Window {
    let control_slot: Mutex<Arc<str>> = Mutex::new(Arc::from("x".repeat(800)));
    let before = server.token_requests();
    type Calls = (Vec<(f64, Option<bool>)>, Vec<f64>);
    let results: Vec<Calls> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    let mut calls = Vec::with_capacity(40_000);
                    let mut control = Vec::with_capacity(40_000);
                    let start = Instant::now();
                    while start.elapsed() < window {
                        let t0 = Instant::now();
                        let fetched = call();
                        calls.push((t0.elapsed().as_secs_f64(), fetched));
                        let t1 = Instant::now();
                        black_box(control_slot.lock().clone());
                        control.push(t1.elapsed().as_secs_f64());
                        std::thread::sleep(PAUSE);
                    }
                    (calls, control)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller"))
            .collect()
    });
    let requests = server.token_requests() - before;
    let mut calls = Vec::new();
    let mut control = Vec::new();
    for (c, k) in results {
        calls.extend(c);
        control.extend(k);
    }
    let known = calls.iter().any(|c| c.1.is_some());
    let (mut others, refreshes, consistent) = if known {
        let refreshes = calls.iter().filter(|c| c.1 == Some(true)).count();
        let others: Vec<f64> = calls
            .iter()
            .filter(|c| c.1 != Some(true))
            .map(|c| c.0)
            .collect();
        (others, refreshes, refreshes as u64 == requests)
    } else {
        // The `requests` slowest calls are the refreshing ones.
        let mut lat: Vec<f64> = calls.iter().map(|c| c.0).collect();
        lat.sort_by(f64::total_cmp);
        let split = lat.len().saturating_sub(requests as usize);
        let slow = lat.split_off(split);
        let consistent = slow.iter().all(|&l| l >= DELAY.as_secs_f64() * 0.8);
        (lat, slow.len(), consistent)
    };
    others.shrink_to_fit();
    Window {
        others,
        refreshes,
        requests,
        consistent,
        control,
    }
}

fn ours(server: &Server, len: Duration) -> Window {
    server.set_token_delay(Duration::ZERO);
    server.set_expires_in(Duration::from_secs(10));
    // Due at 0-0.5 s of a 10 s lifetime (5%, less up to 5% jitter), servable until 9.5 s:
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
    window(server, len, &|| {
        black_box(client.token().expect("token"));
        None
    })
}

fn go_style(server: &Server, len: Duration) -> Window {
    server.set_token_delay(Duration::ZERO);
    // Go counts a token as expired 10 s early: with expires_in 10.5 s it is reused for
    // 0.5 s, then refreshed, like ours above.
    server.set_expires_in(Duration::from_millis(10_500));
    let source = ReuseTokenSource::new(server.token_url(), Duration::from_secs(10));
    source.token();
    server.set_token_delay(DELAY);
    window(server, len, &|| {
        let (token, fetched) = source.token();
        black_box(token);
        Some(fetched)
    })
}

pub fn run(sink: &Sink, quick: bool) {
    let server = Server::start(0).expect("server");
    let len = Duration::from_millis(if quick { 1_300 } else { 2_600 });
    let rounds = if quick { 1 } else { 2 };
    let mut ours_w = Vec::new();
    let mut go_w = Vec::new();
    for round in 0..rounds {
        if round % 2 == 0 {
            ours_w.push(ours(&server, len));
            go_w.push(go_style(&server, len));
        } else {
            go_w.push(go_style(&server, len));
            ours_w.push(ours(&server, len));
        }
    }
    let merge = |ws: &[Window]| -> Window {
        let mut all = Window {
            others: Vec::new(),
            refreshes: 0,
            requests: 0,
            consistent: true,
            control: Vec::new(),
        };
        for w in ws {
            all.others.extend(&w.others);
            all.refreshes += w.refreshes;
            all.requests += w.requests;
            all.consistent &= w.consistent;
            all.control.extend(&w.control);
        }
        all
    };
    let o = merge(&ours_w);
    let g = merge(&go_w);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let d = Duration::from_secs_f64;
    let ratio = max(&o.others) / max(&g.others);
    let over_1ms = o.others.iter().filter(|&&x| x >= 1e-3).count();
    sink.emit(Row {
        id: "3.1-stall-max".into(),
        what: "Refresh stall, 500 ms token endpoint: slowest `token()` of the other callers".into(),
        ours: format!("{} max", fmt_dur(d(max(&o.others)))),
        baseline: format!(
            "{} max (Go `ReuseTokenSource`: mutex held across the fetch)",
            fmt_dur(d(max(&g.others)))
        ),
        ratio: Some(ratio),
        target: "max < 1 ms".into(),
        met: Some(max(&o.others) < 1e-3),
        note: format!(
            "{} window(s) of {} each, {} callers calling every ~100 µs; ours: {} refreshes, {} \
             other calls, p99.9 {}, {} over 1 ms, noise floor (a bare lock + clone timed in the \
             same loop) max {}; baseline: {} refreshes, {} other calls, {} of them over 1 ms{}",
            rounds,
            fmt_dur(len),
            CALLERS,
            o.refreshes,
            o.others.len(),
            fmt_dur(d(quantile(&o.others, 0.999))),
            over_1ms,
            fmt_dur(d(max(&o.control))),
            g.refreshes,
            g.others.len(),
            g.others.iter().filter(|&&x| x >= 1e-3).count(),
            if o.consistent && g.consistent {
                ""
            } else {
                "; ACCOUNTING OFF: a refresh was not the endpoint's delay long, or requests \
                 and refreshing calls differ"
            },
        ),
    });
}
