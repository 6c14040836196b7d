//! A tour of what the SDK does: fetch a token, serve it from the cache, call the Back
//! Office API (with an OData query) and the Transact API (with its subscription key) on the
//! one token, force a refresh.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `LWOLF_CLIENT_ID` and `LWOLF_CLIENT_SECRET` (or `LWOLF_CLIENT_SECRET_FILE`, or a key:
//! `LWOLF_CLIENT_AUTH=private_key_jwt` and `LWOLF_PRIVATE_KEY_FILE`) set it
//! talks to the real gateway, configured from the environment like any `LWOLF_*` program
//! (the Transact call needs `LWOLF_SUBSCRIPTION_KEY`, and goes to `LWOLF_TRANSACT_BASE_URL`,
//! by default `https://gateway.lwolf.com/transact-workflow`).
//! Without them it starts a local sandbox and talks to that. It never prints the token
//! or the secret: only the token's fingerprint.

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lwolf_auth::{AccessToken, Client, Config};
use lwolf_sandbox::Sandbox;
use serde_json::Value;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error says.
            let message = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("quickstart: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let has_env = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    // A secret, or a key (LWOLF_CLIENT_AUTH=private_key_jwt with LWOLF_PRIVATE_KEY_FILE).
    let use_real_gateway = has_env("LWOLF_CLIENT_ID")
        && (has_env("LWOLF_CLIENT_SECRET")
            || has_env("LWOLF_CLIENT_SECRET_FILE")
            || has_env("LWOLF_PRIVATE_KEY_FILE"));

    let (config, sandbox) = if use_real_gateway {
        let config = Config::from_env()?;
        println!(
            "Using the gateway from the environment: {}",
            config.token_url()
        );
        (config, None)
    } else {
        let sandbox =
            Sandbox::start().map_err(|e| format!("cannot start the local sandbox: {e}"))?;
        println!(
            "LWOLF_CLIENT_ID / LWOLF_CLIENT_SECRET not set: using a local sandbox at {}",
            sandbox.url()
        );
        (sandbox.config_builder().build()?, Some(sandbox))
    };
    println!("  client id  {}", config.client_id());
    println!("  api        {}", config.api_base_url());
    println!();

    let client = Client::new(config);

    // 1. The first token() goes to the network.
    let started = Instant::now();
    let token = client.token()?;
    let took = started.elapsed();
    println!("Fetched a token in {}", millis(took));
    describe(&token);
    println!();

    // 2. The second comes from the cache: no I/O, no allocation.
    let started = Instant::now();
    let cached = client.token()?;
    let took = started.elapsed();
    println!(
        "Second token() call answered from the cache in {:.1} µs (fingerprint {}, {})",
        took.as_nanos() as f64 / 1000.0,
        cached.fingerprint(),
        if cached.fingerprint() == token.fingerprint() {
            "the same token"
        } else {
            "a different token"
        }
    );
    println!();

    // 3. An API request carries the token.
    let started = Instant::now();
    let response = client.get("/v1/transactions").send()?;
    let took = started.elapsed();
    println!(
        "GET /v1/transactions -> {} {} in {}",
        response.status(),
        reason(response.status()),
        millis(took)
    );
    summarize(response.body());
    println!();

    // 4. OData: the query values are percent-encoded for you.
    let response = client
        .get("/v1/transactions")
        .query("$filter", "status eq 'closed'")
        .query("$orderby", "price desc")
        .query("$top", "10")
        .send()?;
    println!(
        "GET /v1/transactions?$filter=status eq 'closed'&$orderby=price desc -> {} {}",
        response.status(),
        reason(response.status())
    );
    summarize(response.body());
    println!();

    // 5. The Transact API takes the same token, and wants lw-subscription-key on every call.
    let transact_base = match &sandbox {
        Some(sandbox) => sandbox.transact_base_url(),
        None => std::env::var("LWOLF_TRANSACT_BASE_URL")
            .unwrap_or_else(|_| "https://gateway.lwolf.com/transact-workflow".into()),
    };
    if client.config().has_subscription_key() {
        let transact = client.for_api(&transact_base)?;
        let response = transact.get("/v1/transactions").query("$top", "3").send()?;
        println!(
            "Transact GET {transact_base}/v1/transactions -> {} {} (the same token, {})",
            response.status(),
            reason(response.status()),
            cached.fingerprint()
        );
        summarize(response.body());
    } else {
        println!("Transact: set LWOLF_SUBSCRIPTION_KEY to call {transact_base}");
    }
    println!();

    // 6. invalidate() drops the cached token; the next token() fetches a new one.
    client.invalidate();
    let started = Instant::now();
    let fresh = client.token()?;
    let took = started.elapsed();
    println!(
        "After invalidate(), token() fetched a new one in {}",
        millis(took)
    );
    println!("  old fingerprint  {}", token.fingerprint());
    println!(
        "  new fingerprint  {}{}",
        fresh.fingerprint(),
        if fresh.fingerprint() == token.fingerprint() {
            " (the server handed back the same token)"
        } else {
            ""
        }
    );

    if let Some(sandbox) = &sandbox {
        println!();
        println!(
            "The sandbox saw {} token request{} and {} API request{}.",
            sandbox.token_requests(),
            plural(sandbox.token_requests()),
            sandbox.api_requests(),
            plural(sandbox.api_requests())
        );
    }
    Ok(())
}

/// What a person wants to know about a token: never the token itself.
fn describe(token: &AccessToken) {
    println!("  fingerprint  {}", token.fingerprint());
    println!("  type         {}", token.token_type().as_str());
    println!("  lifetime     {}", human_duration(token.lifetime()));
    println!(
        "  expires at   {}",
        humantime::format_rfc3339_seconds(token.expires_at())
    );
    println!(
        "  refresh at   {}",
        humantime::format_rfc3339_seconds(token.refresh_at())
    );
}

/// A short account of a JSON answer: how many records, and a few of them.
fn summarize(body: &[u8]) {
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            println!("  ({} bytes, not JSON)", body.len());
            return;
        }
    };
    let records = match &json {
        Value::Array(items) => Some(items),
        Value::Object(map) => ["data", "items", "results", "transactions"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array)),
        _ => None,
    };
    let Some(records) = records else {
        match &json {
            Value::Object(map) => {
                let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
                println!("  a JSON object with keys: {}", keys.join(", "));
            }
            other => println!("  {}", clip(&other.to_string(), 100)),
        }
        return;
    };
    match json.get("total").and_then(Value::as_u64) {
        Some(total) if total as usize != records.len() => {
            println!(
                "  {} transactions on this page, {} in all",
                records.len(),
                total
            )
        }
        _ => println!("  {} transactions", records.len()),
    }
    for record in records.iter().take(3) {
        println!("  - {}", one_line(record));
    }
    if records.len() > 3 {
        println!("  - … and {} more", records.len() - 3);
    }
}

/// `2024-0142  closed     1420 Maple Avenue, Austin  $685,000`, from whatever is there.
fn one_line(record: &Value) -> String {
    let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or("");
    let name = [text("number"), text("id"), text("name")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("?");
    let status = text("status");
    let address = match record.get("address") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(a)) => {
            let part = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
            [part("street"), part("city")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        }
        _ => String::new(),
    };
    let price = record
        .get("price")
        .and_then(Value::as_f64)
        .map(|p| format!("${}", thousands(p.round() as u64)))
        .unwrap_or_default();
    let line = format!(
        "{:<10} {:<10} {:<42} {}",
        clip(name, 10),
        clip(status, 10),
        clip(&address, 42),
        price
    );
    line.trim_end().to_owned()
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn clip(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// `1d 0h 0m 0s (86400 s)`-style, leaving out the leading zero units.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    let short = if days > 0 {
        format!("{days}d {hours}h {minutes}m {seconds}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    };
    format!("{short} ({secs} s)")
}
