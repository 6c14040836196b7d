//! 100 MiB streamed through `send_to` with bounded memory: the process's peak resident size
//! grows by a small fraction of the body. Alone in its binary, so that the peak is its own.

use lwolf_test_support::common;

use std::io::Write;

use common::*;
use lwolf_auth::Client;

/// This process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

struct Sink {
    bytes: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_100_mib_body_streams_in_bounded_memory() {
    const LEN: usize = 100 * 1024 * 1024;
    let tokens = Server::tokens();
    let api = Server::new(Action::Oversized {
        status: 200,
        len: LEN,
    });
    let client = Client::new(builder_for(&tokens, &api).build().unwrap());
    client.token().unwrap();
    // Start the peak afresh ("5" resets VmHWM to the current size).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let before = peak_rss_kib();
    let mut sink = Sink { bytes: 0 };
    let resp = client.get("/v1/documents/huge").send_to(&mut sink).unwrap();
    let grew = peak_rss_kib().saturating_sub(before);
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.bytes, LEN as u64);
    assert!(resp.body().is_empty());
    // Read whole, the body alone would be 100 MiB; streamed, a few buffers.
    assert!(
        grew < 16 * 1024,
        "the peak resident size grew by {grew} KiB while streaming 100 MiB"
    );
}
