//! The commands: token, request, info and sandbox.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use lwolf_auth::{AccessToken, Client, ClientAuth, ConfigBuilder, PublicJwk};

use crate::args::{parse_args, Api, Args, Command, Data, HELP};
use crate::output::{human, log_to_stderr, print_out, rfc3339, Failure, EXIT_HTTP_ERROR, EXIT_IO};

pub(crate) fn run(raw: Vec<OsString>) -> Result<u8, Failure> {
    let args = parse_args(raw)?;
    log_to_stderr(args.verbose);
    match &args.command {
        Command::Help => {
            print_out(HELP.as_bytes())?;
            Ok(0)
        }
        Command::Version => {
            print_out(format!("lwolf {}\n", lwolf_auth::VERSION).as_bytes())?;
            Ok(0)
        }
        Command::Token { json } => token(&client(&args)?, *json),
        Command::Request { method, path } => request(&client(&args)?, method, path, &args),
        Command::Info => info(&args),
        Command::Jwk { key_file } => jwk(key_file),
        Command::Sandbox { args } => sandbox(args),
        Command::Agent(options) => agent(options, &args),
    }
}

/// The default shared cache: `$XDG_CACHE_HOME/lwolf-auth`, else `~/.cache/lwolf-auth`; on
/// Windows `%LOCALAPPDATA%\lwolf-auth` (the user's own, not roamed).
fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if cfg!(windows) {
        return std::env::var_os("LOCALAPPDATA")
            .and_then(absolute)
            .map(|d| d.join("lwolf-auth"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").and_then(absolute) {
        return Some(xdg.join("lwolf-auth"));
    }
    let home = std::env::var_os("HOME").and_then(absolute)?;
    Some(home.join(".cache").join("lwolf-auth"))
}

/// `lwolf agent`: the client made from the settings, at start and on each SIGHUP.
fn agent(options: &crate::args::AgentOptions, args: &Args) -> Result<u8, Failure> {
    let options = crate::args::AgentOptions {
        socket: options.socket.clone(),
        socket_group: options.socket_group.clone(),
        allow: options.allow.clone(),
        proxy: options.proxy,
        key_file: options.key_file.clone(),
        sink: options.sink.clone(),
        sink_format: options.sink_format,
        max_body_bytes: options.max_body_bytes,
    };
    crate::agent::run(options, &|| client(args), args.verbose)
}

fn client(args: &Args) -> Result<Client, Failure> {
    let mut builder = ConfigBuilder::from_env()?;
    if args.no_cache {
        builder.set("cache_dir", "")?;
        builder.set("cache_url", "")?;
    } else {
        match std::env::var_os("LWOLF_CACHE_DIR") {
            // Applied by from_env.
            Some(v) if !v.is_empty() => {}
            // Set but empty: the shared cache is off.
            Some(_) => {}
            None => {
                if let Some(dir) = default_cache_dir() {
                    builder = builder.cache_dir(dir);
                }
            }
        }
    }
    if let Some(key) = &args.private_key {
        builder = builder
            .client_auth(ClientAuth::PrivateKeyJwt)
            .private_key_file(key);
    }
    let client = Client::new(builder.build()?);
    let client = match &args.tenant {
        Some(id) => client.for_tenant(id)?,
        None => client,
    };
    Ok(match args.api {
        Api::BackOffice => client,
        Api::Transact => client.transact(),
    })
}

/// The public JWK (one line) and PEM of a private key: nothing secret is printed.
fn jwk(key_file: &std::path::Path) -> Result<u8, Failure> {
    let public = PublicJwk::from_private_key_file(key_file)?;
    print_out(format!("{}\n{}", public.jwk(), public.pem()).as_bytes())?;
    Ok(0)
}

fn token(client: &Client, json: bool) -> Result<u8, Failure> {
    let token = client.token()?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(256 + 2 * token.secret().len()));
    if json {
        #[derive(serde::Serialize)]
        struct TokenJson<'a> {
            token: &'a str,
            token_type: &'a str,
            expires_at: String,
            refresh_at: String,
            fingerprint: &'a str,
            source: &'a str,
        }
        let view = TokenJson {
            token: token.secret(),
            token_type: token.token_type().as_str(),
            expires_at: rfc3339(token.expires_at()),
            refresh_at: rfc3339(token.refresh_at()),
            fingerprint: token.fingerprint(),
            source: token.source().as_str(),
        };
        serde_json::to_writer(&mut *out, &view)
            .map_err(|e| Failure::io(format!("cannot write the output: {e}")))?;
    } else {
        out.extend_from_slice(token.secret().as_bytes());
    }
    out.push(b'\n');
    print_out(&out)?;
    Ok(0)
}

fn read_body(data: &Option<Data>) -> Result<Option<Vec<u8>>, Failure> {
    Ok(match data {
        None => None,
        Some(Data::Inline(s)) => Some(s.clone().into_bytes()),
        Some(Data::File(path)) => Some(std::fs::read(path).map_err(|e| {
            Failure::io(format!("cannot read the body from {}: {e}", path.display()))
        })?),
        Some(Data::Stdin) => {
            let mut body = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut body)
                .map_err(|e| Failure::io(format!("cannot read the body from stdin: {e}")))?;
            Some(body)
        }
    })
}

fn request(client: &Client, method: &str, path: &str, args: &Args) -> Result<u8, Failure> {
    let body = read_body(&args.data)?;
    let options = &args.request;
    let mut request = client.request(method, path);
    for (name, value) in &options.headers {
        request = request.header(name, value);
    }
    for (name, value) in &options.query {
        request = request.query(name, value);
    }
    if let Some(body) = body {
        let content_type = options
            .content_type
            .as_deref()
            .unwrap_or(lwolf_auth::defaults::DEFAULT_CONTENT_TYPE);
        request = request.body(body, content_type);
    }
    if let Some(timeout) = options.timeout {
        request = request.timeout(timeout);
    }
    if let Some(path) = &options.output {
        // Streamed into the file as it arrives: a document of any size, never held whole.
        let file = std::fs::File::create(path)
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", path.display())))?;
        let mut out = io::BufWriter::with_capacity(256 * 1024, file);
        let response = request.send_to(&mut out)?;
        print_status(response.status());
        return Ok(exit_code(response.status()));
    }
    let response = request.send()?;
    let status = response.status();
    print_status(status);
    let body = response.body();
    let terminal = io::stdout().is_terminal();
    let pretty = terminal
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    match pretty {
        Some(mut text) => {
            text.push('\n');
            print_out(text.as_bytes())?;
        }
        None => {
            print_out(body)?;
            if terminal && !body.is_empty() && !body.ends_with(b"\n") {
                print_out(b"\n")?;
            }
        }
    }
    Ok(exit_code(status))
}

/// `HTTP 200 OK` on stderr: the body alone goes to stdout.
fn print_status(status: u16) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    eprintln!("HTTP {status} {reason}");
}

/// curl --fail's: 22 for a 4xx or 5xx answer.
fn exit_code(status: u16) -> u8 {
    if status >= 400 {
        EXIT_HTTP_ERROR
    } else {
        0
    }
}

fn info(args: &Args) -> Result<u8, Failure> {
    let client = client(args)?;
    let config = client.config();
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:<13}{value}");
    };
    line("client_id", config.client_id());
    line("audience", config.audience());
    line("token_url", config.token_url());
    line("api_base_url", config.api_base_url());
    line("tenant", client.lwt_client_id().unwrap_or("-"));
    let cache = client
        .cache_file()
        .map_or_else(|| "- (off)".to_owned(), |p| p.display().to_string());
    line("cache_file", &cache);
    line("cache_url", config.cache_url().unwrap_or("- (off)"));
    let outcome = client.token();
    if let Ok(token) = &outcome {
        // The layer that had it: another process's file, the fleet's Redis, or the gateway.
        line("served_by", token.source().as_str());
        describe(token, &mut line);
    }
    // This process's counters (the client's since it was made): what `info` itself did.
    let s = client.stats();
    line(
        "stats",
        &format!(
            "token_requests={} tokens_shared={} token_failures={} retries={} \
             forced_renewals={} renewals_declined={} api_requests={} throttled={}",
            s.token_requests,
            s.tokens_shared,
            s.token_failures,
            s.retries,
            s.forced_renewals,
            s.renewals_declined,
            s.api_requests,
            s.throttled
        ),
    );
    print_out(out.as_bytes())?;
    outcome?;
    Ok(0)
}

fn describe(token: &AccessToken, line: &mut impl FnMut(&str, &str)) {
    let now = SystemTime::now();
    let when = |t: SystemTime| match t.duration_since(now) {
        Ok(left) => format!("{} (in {})", rfc3339(t), human(left)),
        Err(_) => format!("{} (passed)", rfc3339(t)),
    };
    line("fingerprint", token.fingerprint());
    line("lifetime", &human(token.lifetime()));
    line("refresh_at", &when(token.refresh_at()));
    line("expires_at", &when(token.expires_at()));
}

/// `lwolf sandbox [options]`: the sandbox's own program, under this one's name.
fn sandbox(args: &[OsString]) -> Result<u8, Failure> {
    use lwolf_sandbox::cli;
    let options = match cli::parse(args.iter().cloned()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print_out(format!("usage: lwolf sandbox {}\n", cli::USAGE).as_bytes())?;
            return Ok(0);
        }
        Err(why) => return Err(Failure::usage(format!("sandbox: {why}"))),
    };
    let me = std::env::current_exe()
        .map_err(|e| Failure::io(format!("cannot start the sandbox: {e}")))?;
    // It serves until killed; what it returns is its exit status.
    let status = cli::run(options, &me, &["sandbox"], "lwolf");
    Ok(if status == std::process::ExitCode::SUCCESS {
        0
    } else {
        EXIT_IO
    })
}
