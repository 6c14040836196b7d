//! Kept-alive connections, as a client's connection pool holds them: every one is served,
//! however many are open and however they arrive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use lwolf_sandbox::Sandbox;

/// One `GET /_sandbox/stats` on `stream`, kept alive; the status, or why there was none.
fn get_stats(stream: &mut TcpStream) -> Result<u16, String> {
    stream
        .write_all(b"GET /_sandbox/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            return Err("closed without an answer".into());
        }
        answer.extend_from_slice(&chunk[..n]);
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no content-length")?;
        if answer.len() >= end + 4 + length {
            return head[9..12].parse().map_err(|_| head.clone());
        }
    }
}

/// Connections opened together while earlier ones stay open (as a pool keeps them) are
/// all answered. tiny_http 0.12, the sandbox's server before, could queue a connection
/// behind busy ones and answer it only when one of them closed: a client with a pool of
/// more than 3 connections then saw a request go unanswered until its timeout.
#[test]
fn connections_opened_together_while_others_stay_open_are_all_answered() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    let sandbox = Sandbox::start().unwrap();
    let address = sandbox.url().trim_start_matches("http://").to_owned();
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let address = address.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut failures = Vec::new();
                let mut sent = 0;
                for round in 0..ROUNDS {
                    barrier.wait();
                    let mut stream = TcpStream::connect(&address).expect("connect");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    sent += 1;
                    match get_stats(&mut stream) {
                        Ok(200) => {}
                        Ok(status) => failures.push(format!("round {round}: status {status}")),
                        Err(why) => failures.push(format!("round {round}: {why}")),
                    }
                    // The connection stays open and is used again, as a pool's would be.
                    held.push(stream);
                    for (i, earlier) in held.iter_mut().enumerate().step_by(5) {
                        sent += 1;
                        if let Err(why) = get_stats(earlier) {
                            failures.push(format!("round {round}, connection {i} again: {why}"));
                        }
                    }
                }
                (sent, failures)
            })
        })
        .collect();
    let mut sent = 0;
    let mut failures = Vec::new();
    for worker in workers {
        let (theirs, failed) = worker.join().expect("a client thread panicked");
        sent += theirs;
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests went unanswered: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

/// One client shared by 16 threads keeps a connection alive for each: ureq's default pool
/// (3 idle connections per host) closed most of them after every request, and the 400
/// requests below then opened 161 connections.
#[test]
fn a_client_shared_by_16_threads_keeps_its_connections() {
    const THREADS: usize = 16;
    const CALLS: usize = 25;
    let sandbox = Sandbox::start().unwrap();
    let client = lwolf_auth::Client::new(sandbox.config_builder().build().unwrap());
    client.token().unwrap();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..CALLS {
                    barrier.wait();
                    let status = client.get("/v1/transactions").send().unwrap().status();
                    assert_eq!(status, 200);
                }
            });
        }
    });
    assert_eq!(sandbox.api_requests(), (THREADS * CALLS) as u64);
    // One for the token, one a thread, and a few spare for the moments a thread takes a
    // new one before another's is back in the pool.
    let connections = sandbox.connections();
    assert!(
        connections <= 2 * THREADS as u64 + 1,
        "{connections} connections for {} requests from {THREADS} threads",
        THREADS * CALLS
    );
}
