//! The stall scenario: 8 callers share a client whose token falls due while the token
//! endpoint takes 500 ms to answer. Nobody waits for the refresh: it runs on a short-lived
//! thread of its own, which is gone once it is done.
//!
//! One test in this binary: it counts the process's threads.

use lwolf_test_support::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lwolf_auth::Client;

/// The threads of this process, and how many of them are the library's refresh threads.
fn threads() -> (usize, usize) {
    let mut all = 0;
    let mut refresh = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap_or_default();
        all += 1;
        refresh += usize::from(comm.trim() == "lwolf-refresh");
    }
    (all, refresh)
}

#[test]
fn no_caller_waits_for_a_refresh() {
    // The first token at once, valid 4 s and due at 1 s; every later one after 500 ms.
    let server = Server::new(Action::token("TKN-second", 3600).after(ms(500)));
    server.push(Action::token("TKN-first", 4));
    let client = Client::new(builder(&server).refresh_ratio(0.25).build().unwrap());
    assert_eq!(ok(client.token()).secret(), "TKN-first");
    let (baseline, _) = threads();

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop) = (client.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    ok(client.token());
                    slowest = slowest.max(started.elapsed());
                    calls += 1;
                    thread::sleep(ms(1));
                }
                (slowest, calls)
            })
        })
        .collect();

    // While the refresh is out, a refresh thread of the library's exists.
    let mut saw_refresh_thread = false;
    wait_until("the refresh request", secs(10), || {
        saw_refresh_thread |= threads().1 == 1;
        server.token_requests() == 2
    });
    saw_refresh_thread |= threads().1 == 1;
    wait_for_token(&client, "TKN-second");
    thread::sleep(ms(200));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = callers.into_iter().map(|h| h.join().unwrap()).collect();

    let slowest = results.iter().map(|r| r.0).max().unwrap();
    eprintln!(
        "8 callers, {} calls, slowest {slowest:?}",
        results.iter().map(|r| r.1).sum::<u32>()
    );
    assert!(
        slowest < ms(100),
        "a caller waited {slowest:?}: the 500 ms refresh was in someone's way"
    );
    assert_eq!(
        server.token_requests(),
        2,
        "one token request for the refresh"
    );
    assert!(
        saw_refresh_thread,
        "no lwolf-refresh thread was seen during the refresh"
    );
    // The refresh thread is gone, and the callers with it: back to the baseline.
    wait_until("the threads to go back to the baseline", secs(10), || {
        let (all, refresh) = threads();
        refresh == 0 && all <= baseline
    });
}
