//! The agent's bound on connections: a caller past it waits for a slot a moment, then is
//! told the agent is busy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use super::support::*;

/// The agent's bound on connections per listener (`MAX_CONNECTIONS`, in docs/agent.md).
const MAX_CONNECTIONS: usize = 256;

/// A keyed keep-alive GET through the proxy on a new connection, its answer read whole;
/// the connection is handed back open (the agent keeps it for 15 s).
fn held_connection(addr: &str, key: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut conn = BufReader::new(stream);
    let (status, _) = send(&mut conn, key, "keep-alive");
    assert_eq!(status, 200);
    conn
}

/// One GET on `conn`: (status, body).
fn send(conn: &mut BufReader<TcpStream>, key: &str, connection: &str) -> (u16, String) {
    let request = format!(
        "GET /backoffice/v1/offices HTTP/1.1\r\nHost: 127.0.0.1\r\nLwolf-Agent-Key: {key}\r\n\
         Connection: {connection}\r\n\r\n"
    );
    conn.get_mut().write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push(line);
    }
    let status = head
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .iter()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_connection_past_the_bound_waits_for_a_slot_then_is_refused() {
    let sandbox = sandbox();
    let agent = Agent::start(&sandbox, &[]);
    let key = agent.key();
    let addr = agent.proxy.clone().unwrap();
    let mut held: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| held_connection(&addr, &key))
        .collect();

    // A slot freed while a caller waits: the caller is served, not refused.
    let (key2, addr2) = (key.clone(), addr.clone());
    let waiting = thread::spawn(move || {
        let mut conn = BufReader::new(TcpStream::connect(addr2).unwrap());
        send(&mut conn, &key2, "close")
    });
    thread::sleep(Duration::from_millis(300));
    drop(held.pop());
    let (status, body) = waiting.join().unwrap();
    assert_eq!(
        status, 200,
        "a caller was refused while a slot came free: {body}"
    );

    // No slot comes free: a clear 503, counted, and the agent serves on once one does.
    held.push(held_connection(&addr, &key));
    let mut refused = BufReader::new(TcpStream::connect(&addr).unwrap());
    let (status, body) = send(&mut refused, &key, "close");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    // The socket's listener has slots of its own and is not held up.
    let mut agent = agent;
    let (status, health) = agent.socket_curl(&[], "/v1/health");
    assert_eq!(status, 200, "{health}");
    drop(held);
    until_ok("the proxy after its held connections closed", || {
        let mut conn = BufReader::new(TcpStream::connect(&addr).unwrap());
        send(&mut conn, &key, "close")
    });
    let (_, metrics) = agent.socket_curl(&[], "/metrics");
    assert!(
        metrics.contains("lwolf_agent_refused_total{reason=\"busy\"} 1"),
        "{metrics}"
    );
    agent.check_stderr();
}
