//! `lwolf`: bearer tokens and Back Office API calls from the shell, sharing one token
//! between all the processes of a host (feature `cli`). `lwolf --help` says how.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lwolf_auth::sandbox::Sandbox;
use lwolf_auth::{AccessToken, Client, ConfigBuilder, Error};

const HELP: &str = "\
lwolf - OAuth tokens and API calls for the Lone Wolf Back Office API

Usage:
  lwolf token [--json]            print a bearer token (--json: with its times and fingerprint)
  lwolf get PATH                  GET an API path; the body to stdout, the status to stderr
  lwolf request METHOD PATH [--data JSON | --data @FILE | --data @-]
                                  any API call; @- reads the body from stdin
  lwolf info                      the identity, the token's fingerprint and times, the cache
                                  file (never the token)
  lwolf sandbox [--port N] [--token-ttl SECONDS]
                                  run a local stand-in gateway and API, print the LWOLF_*
                                  exports that point at it, and serve until killed

Options:
  --tenant ID      the customer instance (lwt_client_id) for token, get, request and info
  --no-cache       keep the token in this process only (no shared cache file)
  -v, --verbose    log token fetches, refreshes and retries to stderr
  -h, --help       this help
  -V, --version    the version

Settings come from the environment, as for the library: LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET
or LWOLF_CLIENT_SECRET_FILE, LWOLF_TOKEN_URL, LWOLF_API_BASE_URL, LWOLF_AUDIENCE,
LWOLF_LWT_CLIENT_ID, LWOLF_TIMEOUT_MS, ... (LWOLF_ + any configuration key in upper case).
The secret is never taken from the command line, where `ps` would show it.

Tokens are shared by every process of this user through a file in LWOLF_CACHE_DIR, by default
$XDG_CACHE_HOME/lwolf-auth or ~/.cache/lwolf-auth (mode 0700; the files 0600). Set
LWOLF_CACHE_DIR to an empty value, or pass --no-cache, to keep them in memory only.

Exit codes:
  0     success
  1-11  the library's status codes: 1 LWOLF_ERR_INVALID_ARGUMENT, 2 LWOLF_ERR_CONFIG,
        3 LWOLF_ERR_INVALID_CREDENTIALS, 4 LWOLF_ERR_BAD_REQUEST, 5 LWOLF_ERR_FORBIDDEN,
        6 LWOLF_ERR_RATE_LIMITED, 7 LWOLF_ERR_SERVER, 8 LWOLF_ERR_TRANSPORT,
        9 LWOLF_ERR_INVALID_RESPONSE, 11 LWOLF_ERR_INTERNAL
  22    the API answered with a 4xx or 5xx status (as curl --fail does)
  64    a bad command line
  74    a local I/O error: reading --data, writing the output, starting the sandbox
";

/// The API answered 4xx/5xx: curl's `--fail` code.
const EXIT_HTTP_ERROR: u8 = 22;
/// A bad command line (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// A local I/O failure (sysexits' EX_IOERR).
const EXIT_IO: u8 = 74;
/// A caught panic: LWOLF_ERR_INTERNAL.
const EXIT_INTERNAL: u8 = 11;

fn main() -> ExitCode {
    // One line on stderr, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        eprintln!("lwolf: LWOLF_ERR_INTERNAL: internal error: {what}");
    }));
    match std::panic::catch_unwind(|| run(std::env::args_os().skip(1).collect())) {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(failure)) => {
            if !failure.message.is_empty() {
                eprintln!("lwolf: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
        Err(_) => ExitCode::from(EXIT_INTERNAL),
    }
}

/// Why `lwolf` stops: the line for stderr and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: format!("{} (see lwolf --help)", message.into()),
            code: EXIT_USAGE,
        }
    }

    fn io(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_IO,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = e.status_code();
        Failure {
            message: format!("{}: {e}", e.status_name()),
            code: u8::try_from(code).unwrap_or(EXIT_INTERNAL),
        }
    }
}

// -------------------------------------------------------------------------------------------
// The command line.

enum Command {
    Token { json: bool },
    Request { method: String, path: String },
    Info,
    Sandbox,
    Help,
    Version,
}

enum Data {
    Inline(String),
    File(PathBuf),
    Stdin,
}

struct Args {
    command: Command,
    verbose: bool,
    no_cache: bool,
    tenant: Option<String>,
    data: Option<Data>,
    port: Option<u16>,
    token_ttl: Option<Duration>,
}

/// The option's name without any `=value`: what may be echoed back in an error.
fn option_name(arg: &str) -> &str {
    arg.split('=').next().unwrap_or(arg)
}

fn parse_args(raw: Vec<OsString>) -> Result<Args, Failure> {
    let mut words = Vec::new();
    let mut json = false;
    let (mut help, mut version) = (false, false);
    let mut args = Args {
        command: Command::Help,
        verbose: false,
        no_cache: false,
        tenant: None,
        data: None,
        port: None,
        token_ttl: None,
    };
    let mut raw = raw.into_iter();
    let mut only_words = false;
    while let Some(arg) = raw.next() {
        let Ok(arg) = arg.into_string() else {
            return Err(Failure::usage("arguments must be valid UTF-8"));
        };
        if only_words || !arg.starts_with('-') || arg == "-" {
            words.push(arg);
            continue;
        }
        // `--name value` or `--name=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, Failure> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => raw
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| Failure::usage(format!("{name} needs {what}"))),
            }
        };
        match name.as_str() {
            "--" => only_words = true,
            "-h" | "--help" => help = true,
            "-V" | "--version" => version = true,
            "-v" | "--verbose" => args.verbose = true,
            "--no-cache" => args.no_cache = true,
            "--json" => json = true,
            "--tenant" => args.tenant = Some(value("a customer instance id")?),
            "-d" | "--data" => {
                let v = value("a body: JSON, @FILE or @-")?;
                args.data = Some(match v.strip_prefix('@') {
                    Some("-") => Data::Stdin,
                    Some(path) => Data::File(path.into()),
                    None => Data::Inline(v),
                });
            }
            "--port" => {
                let v = value("a port number")?;
                args.port = Some(
                    v.parse()
                        .map_err(|_| Failure::usage("--port needs a port number (0-65535)"))?,
                );
            }
            "--token-ttl" => {
                let v = value("a number of seconds")?;
                let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    Failure::usage("--token-ttl needs a positive number of seconds")
                })?;
                args.token_ttl = Some(Duration::from_secs(secs));
            }
            n if n.replace('_', "-").contains("secret") => {
                return Err(Failure::usage(format!(
                    "{} is not accepted: the secret is never taken from the command line, where \
                     `ps` would show it; set LWOLF_CLIENT_SECRET or LWOLF_CLIENT_SECRET_FILE",
                    option_name(n)
                )));
            }
            n => return Err(Failure::usage(format!("unknown option {}", option_name(n)))),
        }
    }
    if help || version {
        args.command = if help {
            Command::Help
        } else {
            Command::Version
        };
        return Ok(args);
    }
    let mut words = words.into_iter();
    let Some(command) = words.next() else {
        return Ok(args);
    };
    let rest: Vec<String> = words.collect();
    let expect = |n: usize, usage: &str| -> Result<(), Failure> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(Failure::usage(format!("usage: {usage}")))
        }
    };
    args.command = match command.as_str() {
        "token" => {
            expect(0, "lwolf token [--json]")?;
            Command::Token { json }
        }
        "get" => {
            expect(1, "lwolf get PATH")?;
            Command::Request {
                method: "GET".into(),
                path: rest[0].clone(),
            }
        }
        "request" => {
            expect(2, "lwolf request METHOD PATH [--data BODY]")?;
            Command::Request {
                method: rest[0].clone(),
                path: rest[1].clone(),
            }
        }
        "info" => {
            expect(0, "lwolf info")?;
            Command::Info
        }
        "sandbox" => {
            expect(0, "lwolf sandbox [--port N] [--token-ttl SECONDS]")?;
            Command::Sandbox
        }
        "help" => Command::Help,
        other => {
            return Err(Failure::usage(format!(
                "unknown command {:?}",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    // Options that mean nothing to the command are mistakes, not noise.
    let misplaced = match &args.command {
        Command::Token { .. } => args.data.is_some() || args.port.is_some(),
        Command::Request { .. } => {
            (command == "get" && args.data.is_some()) || json || args.port.is_some()
        }
        Command::Info => json || args.data.is_some() || args.port.is_some(),
        Command::Sandbox => json || args.data.is_some() || args.tenant.is_some(),
        _ => false,
    } || (!matches!(args.command, Command::Sandbox) && args.token_ttl.is_some());
    if misplaced {
        return Err(Failure::usage(format!(
            "an option given does not apply to `lwolf {command}`"
        )));
    }
    Ok(args)
}

// -------------------------------------------------------------------------------------------
// Logging: a few lines on stderr, never a token (the library logs fingerprints only).

struct StderrLog {
    verbose: bool,
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        let target = m.target();
        if self.verbose {
            // The library and the sandbox; not the HTTP stack's own debug output.
            m.level() <= log::Level::Debug && target.starts_with("lwolf_auth")
        } else {
            // Unasked, only what needs fixing: a shared cache that cannot be used.
            m.level() <= log::Level::Warn && target.starts_with("lwolf_auth::disk")
        }
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        let text = text
            .strip_prefix("lwolf-auth: ")
            .or_else(|| text.strip_prefix("lwolf-sandbox: "))
            .unwrap_or(&text);
        let level = record.level().as_str().to_ascii_lowercase();
        let _ = writeln!(io::stderr().lock(), "lwolf: {level}: {text}");
    }

    fn flush(&self) {}
}

// -------------------------------------------------------------------------------------------
// The commands.

fn run(raw: Vec<OsString>) -> Result<u8, Failure> {
    let args = parse_args(raw)?;
    let logger: &'static StderrLog = Box::leak(Box::new(StderrLog {
        verbose: args.verbose,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if args.verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        });
    }
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
        Command::Request { method, path } => request(&client(&args)?, method, path, &args.data),
        Command::Info => info(&args),
        Command::Sandbox => sandbox(&args),
    }
}

/// The default shared cache: `$XDG_CACHE_HOME/lwolf-auth`, else `~/.cache/lwolf-auth`.
fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").and_then(absolute) {
        return Some(xdg.join("lwolf-auth"));
    }
    let home = std::env::var_os("HOME").and_then(absolute)?;
    Some(home.join(".cache").join("lwolf-auth"))
}

fn client(args: &Args) -> Result<Client, Failure> {
    let mut builder = ConfigBuilder::from_env()?;
    if args.no_cache {
        builder.set("cache_dir", "")?;
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
    let client = Client::new(builder.build()?);
    match &args.tenant {
        Some(id) => Ok(client.for_tenant(id)?),
        None => Ok(client),
    }
}

fn print_out(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A reader that went away (`lwolf get ... | head`) is not worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure {
            message: String::new(),
            code: EXIT_IO,
        }),
        Err(e) => Err(Failure::io(format!("cannot write the output: {e}"))),
    }
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
        }
        let view = TokenJson {
            token: token.secret(),
            token_type: "Bearer",
            expires_at: rfc3339(token.expires_at()),
            refresh_at: rfc3339(token.refresh_at()),
            fingerprint: token.fingerprint(),
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

fn request(client: &Client, method: &str, path: &str, data: &Option<Data>) -> Result<u8, Failure> {
    let body = read_body(data)?;
    let response = client.request(method, path, body.as_deref())?;
    let status = response.status();
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    eprintln!("HTTP {status} {reason}");
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
    Ok(if status >= 400 { EXIT_HTTP_ERROR } else { 0 })
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
    let outcome = client.token();
    if let Ok(token) = &outcome {
        describe(token, &mut line);
    }
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

fn sandbox(args: &Args) -> Result<u8, Failure> {
    let mut builder = Sandbox::builder().port(args.port.unwrap_or(0));
    if let Some(ttl) = args.token_ttl {
        builder = builder.token_ttl(ttl);
    }
    let sandbox = builder
        .start()
        .map_err(|e| Failure::io(format!("cannot start the sandbox: {e}")))?;
    // The sandbox's own, well-known development secret: printing it is the point.
    let exports = sandbox.shell_exports();
    print_out(exports.as_bytes())?;
    eprintln!(
        "lwolf: sandbox serving on {} until stopped (Ctrl-C)",
        sandbox.url()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// -------------------------------------------------------------------------------------------
// Times, by hand.

/// `2024-05-01T12:00:00Z`: RFC 3339 in UTC, whole seconds (rounded down).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `23h59m`, `4m05s`, `12s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(86_399)), "23h59m");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
        assert_eq!(human(Duration::from_secs(12)), "12s");
    }

    fn parse(args: &[&str]) -> Result<Args, Failure> {
        parse_args(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn secrets_on_the_command_line_are_refused_without_echo() {
        for args in [
            &["token", "--client-secret", "hunter2"][..],
            &["token", "--client-secret=hunter2"],
            &["--client_secret=hunter2", "info"],
            &["--secret=hunter2"],
        ] {
            let Err(f) = parse(args) else {
                panic!("{args:?} accepted")
            };
            assert_eq!(f.code, EXIT_USAGE);
            assert!(!f.message.contains("hunter2"), "{}", f.message);
            assert!(f.message.contains("LWOLF_CLIENT_SECRET"), "{}", f.message);
        }
    }

    #[test]
    fn commands_and_options() {
        assert!(matches!(
            parse(&["token", "--json", "-v"]).map(|a| a.command),
            Ok(Command::Token { json: true })
        ));
        let a = parse(&["--tenant=t1", "request", "post", "/v1/x", "--data", "@-"]).ok();
        let a = a.unwrap();
        assert!(matches!(a.data, Some(Data::Stdin)));
        assert_eq!(a.tenant.as_deref(), Some("t1"));
        assert!(parse(&["get"]).is_err());
        assert!(parse(&["get", "/x", "--data", "{}"]).is_err());
        assert!(parse(&["token", "--port", "1"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["token", "--frob=1"]).is_err());
        assert!(matches!(parse(&[]).map(|a| a.command), Ok(Command::Help)));
    }
}
