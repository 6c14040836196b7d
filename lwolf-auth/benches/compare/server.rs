//! A minimal HTTP/1.1 server on 127.0.0.1 for the benchmarks, written on `std::net` so
//! that it costs next to nothing per request and its timing is under our control:
//!
//! * `POST /oauth/token` answers a bearer token after an adjustable delay (a slow gateway),
//!   with an adjustable `expires_in`; every answer carries a new token.
//! * Anything else is an API call: `200` with a small fixed JSON body when the request
//!   carries `Authorization: Bearer …`, `401` otherwise.
//!
//! One thread per connection, keep-alive, the whole response in one `write`, `TCP_NODELAY`.
//! It is not the sandbox: the sandbox (tiny_http, JSON rendering, a token table) would make
//! the server the bottleneck of the throughput comparisons.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The size of the tokens handed out: about what an Auth0 access token (a signed JWT with
/// a few claims) weighs, so copies of it cost what they cost in production.
pub const TOKEN_BYTES: usize = 800;

/// The API's answer: a small page of records.
const API_BODY: &[u8] = br#"{"data":[{"id":1001,"status":"closed","price":450000},{"id":1002,"status":"open","price":612500},{"id":1003,"status":"pending","price":389900}],"page":1,"total":3}"#;

pub const CLIENT_ID: &str = "bench-client";
pub const CLIENT_SECRET: &str = "bench-secret";

struct State {
    token_requests: AtomicU64,
    api_requests: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
    /// Delay before answering a token request, in microseconds.
    token_delay_us: AtomicU64,
    /// How long each API answer takes (a server that does some work).
    api_delay_us: AtomicU64,
    /// `expires_in` of the tokens, in milliseconds.
    expires_in_ms: AtomicU64,
    stopping: AtomicBool,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    /// Starts serving on a free port (or `port`) with an immediate token endpoint and
    /// tokens good for a day.
    pub fn start(port: u16) -> io::Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            token_requests: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            token_delay_us: AtomicU64::new(0),
            api_delay_us: AtomicU64::new(0),
            expires_in_ms: AtomicU64::new(86_400_000),
            stopping: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    accept_state.connections.fetch_add(1, Ordering::SeqCst);
                    let state = Arc::clone(&accept_state);
                    let _ =
                        std::thread::Builder::new()
                            .name("bench-conn".into())
                            .spawn(move || {
                                let _ = serve(stream, &state);
                            });
                }
            })?;
        Ok(Server { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.url())
    }

    pub fn api_base_url(&self) -> String {
        format!("{}/backoffice", self.url())
    }

    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn set_token_delay(&self, delay: Duration) {
        self.state
            .token_delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    pub fn set_api_delay(&self, delay: Duration) {
        self.state
            .api_delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_expires_in(&self, expires_in: Duration) {
        self.state
            .expires_in_ms
            .store(expires_in.as_millis() as u64, Ordering::SeqCst);
    }

    /// A config builder pointed at this server.
    pub fn config_builder(&self) -> lwolf_auth::ConfigBuilder {
        lwolf_auth::Config::builder()
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .token_url(self.token_url())
            .api_base_url(self.api_base_url())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag. Connection threads end when their
        // clients hang up (or after the read timeout).
        let _ = TcpStream::connect(self.addr);
    }
}

/// The size of `/backoffice/v1/documents/…`: 16 MiB.
pub const DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

fn serve(mut stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    loop {
        // Read until the end of the head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = &buf[..head_end];
        let is_token = head.starts_with(b"POST /oauth/token ");
        let is_document = head.starts_with(b"GET /backoffice/v1/documents/");
        let content_length = header_value(head, b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        // A bearer token, or (DPoP) a bound one: the proofs are not verified here, so the
        // server's work is the same either way and the client's is what is measured.
        let authorized = header_value(head, b"authorization").is_some_and(|v| {
            (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
                || (v.len() > 5 && v[..5].eq_ignore_ascii_case(b"dpop "))
        });
        let dpop = header_value(head, b"dpop").is_some();
        while buf.len() < head_end + content_length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + content_length);

        out.clear();
        if is_token {
            let n = state.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
            let delay = state.token_delay_us.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            let expires_in = state.expires_in_ms.load(Ordering::SeqCst) as f64 / 1000.0;
            let body = format!(
                r#"{{"access_token":"{}","token_type":"{}","expires_in":{expires_in}}}"#,
                token(n),
                if dpop { "DPoP" } else { "Bearer" }
            );
            respond(&mut out, "200 OK", body.as_bytes());
        } else if authorized && is_document {
            // A large body, for the streamed-download rows: written in 64 KiB pieces.
            state.api_requests.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: \
                 {DOCUMENT_BYTES}\r\nConnection: keep-alive\r\n\r\n"
            );
            stream.write_all(&out)?;
            let piece = [b'.'; 64 * 1024];
            let mut left = DOCUMENT_BYTES;
            while left > 0 {
                let n = left.min(piece.len());
                stream.write_all(&piece[..n])?;
                left -= n;
            }
            continue;
        } else if authorized {
            state.api_requests.fetch_add(1, Ordering::Relaxed);
            let delay = state.api_delay_us.load(Ordering::Relaxed);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            respond(&mut out, "200 OK", API_BODY);
        } else {
            respond(
                &mut out,
                "401 Unauthorized",
                br#"{"message":"no bearer token"}"#,
            );
        }
        stream.write_all(&out)?;
    }
}

fn respond(out: &mut Vec<u8>, status: &str, body: &[u8]) {
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: keep-alive\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Token number `n`: JWT-shaped, `TOKEN_BYTES` long, different for every `n`.
fn token(n: u64) -> String {
    let mut t = format!("eyJhbGciOiJSUzI1NiJ9.bench-{n:08}.");
    let fill = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while t.len() < TOKEN_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t.push(fill[(x % 64) as usize] as char);
    }
    t
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first header `name` (lower case) in a request head, trimmed.
fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        if !line[..colon].eq_ignore_ascii_case(name) {
            return None;
        }
        let mut v = &line[colon + 1..];
        while let [b' ' | b'\t', rest @ ..] = v {
            v = rest;
        }
        Some(v)
    })
}
