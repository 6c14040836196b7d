//! The command line: what to do, and with which options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::output::Failure;

pub(crate) const HELP: &str = "\
lwolf - OAuth tokens and API calls for the Lone Wolf Back Office API

Usage:
  lwolf token [--json]            print a bearer token (--json: with its times and fingerprint)
  lwolf get PATH                  GET an API path; the body to stdout, the status to stderr
  lwolf request METHOD PATH [--data JSON | --data @FILE | --data @-]
                                  any API call (PATCH, PUT, ...); @- reads the body from stdin
  lwolf info                      the identity, the token's fingerprint and times, the cache
                                  file (never the token)
  lwolf jwk KEYFILE               the public JWK and PEM of an RSA private key, to register
                                  with the gateway for --private-key (private_key_jwt)
  lwolf sandbox [--port N] [--token-ttl SECONDS] [--detach]
                                  run a local stand-in gateway and API, print the LWOLF_*
                                  exports that point at it, and serve until killed
                                  (--detach: in the background, for eval \"$(...)\"; it
                                  also exports LWOLF_SANDBOX_PID, to kill it by)

Options of get and request:
  -H, --header 'NAME: VALUE'      add a header (repeatable); the bearer token is the library's
  --query NAME=VALUE              add a query parameter (repeatable), percent-encoded for you:
                                  --query \"$filter=statusCode eq 'A'\"
  --content-type TYPE             the type of --data (default application/json)
  -o, --output FILE               write the body to FILE as it arrives (any size), not stdout
  --timeout SECONDS               the limit for each attempt (default: LWOLF_TIMEOUT_MS)

Options:
  --tenant ID      the customer instance (lwt_client_id) for token, get, request and info
  --no-cache       keep the token in this process only (neither cache file nor cache_url)
  --private-key FILE
                   authenticate with a JWT assertion signed by this RSA key (PEM) instead
                   of a secret (client_auth=private_key_jwt, private_key_file=FILE)
  -v, --verbose    log token fetches, refreshes and retries to stderr
                   (twice, -vv: each HTTP exchange too)
  -h, --help       this help
  -V, --version    the version

Settings come from the environment, as for the library: LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET
or LWOLF_CLIENT_SECRET_FILE, LWOLF_TOKEN_URL, LWOLF_API_BASE_URL, LWOLF_AUDIENCE,
LWOLF_LWT_CLIENT_ID, LWOLF_TIMEOUT_MS, LWOLF_SUBSCRIPTION_KEY (or _FILE: the Transact API's
lw-subscription-key, sent on every API call), ... (LWOLF_ + any configuration key in upper
case). Neither the secret nor the subscription key is taken from the command line, where `ps`
would show it.

Tokens are shared by every process of this user through a file in LWOLF_CACHE_DIR, by default
$XDG_CACHE_HOME/lwolf-auth or ~/.cache/lwolf-auth (mode 0700; the files 0600). Set
LWOLF_CACHE_DIR to an empty value, or pass --no-cache, to keep them in memory only. Set
LWOLF_CACHE_URL (redis://host:port or rediss://...) to share them with other hosts too; `lwolf
info` says which layer served the token.

Exit codes:
  0     success
  1-13  the library's status codes: 1 LWOLF_ERR_INVALID_ARGUMENT, 2 LWOLF_ERR_CONFIG,
        3 LWOLF_ERR_INVALID_CREDENTIALS, 4 LWOLF_ERR_BAD_REQUEST, 5 LWOLF_ERR_FORBIDDEN,
        6 LWOLF_ERR_RATE_LIMITED, 7 LWOLF_ERR_SERVER, 8 LWOLF_ERR_TRANSPORT,
        9 LWOLF_ERR_INVALID_RESPONSE, 11 LWOLF_ERR_INTERNAL, 12 LWOLF_ERR_ABORTED (the
        --output file could not be written), 13 LWOLF_ERR_DEADLINE
  22    the API answered with a 4xx or 5xx status (as curl --fail does)
  64    a bad command line
  74    a local I/O error: reading --data, writing the output, starting the sandbox
";

pub(crate) enum Command {
    Token { json: bool },
    Request { method: String, path: String },
    Info,
    Jwk { key_file: PathBuf },
    Sandbox { detach: bool },
    Help,
    Version,
}

pub(crate) enum Data {
    Inline(String),
    File(PathBuf),
    Stdin,
}

/// What `get` and `request` add to the request.
#[derive(Default)]
pub(crate) struct RequestOptions {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) content_type: Option<String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) timeout: Option<Duration>,
}

impl RequestOptions {
    fn any(&self) -> bool {
        !self.headers.is_empty()
            || !self.query.is_empty()
            || self.content_type.is_some()
            || self.output.is_some()
            || self.timeout.is_some()
    }
}

pub(crate) struct Args {
    pub(crate) command: Command,
    pub(crate) request: RequestOptions,
    /// How many times `-v` was given.
    pub(crate) verbose: u8,
    pub(crate) no_cache: bool,
    pub(crate) tenant: Option<String>,
    pub(crate) private_key: Option<PathBuf>,
    pub(crate) data: Option<Data>,
    pub(crate) port: Option<u16>,
    pub(crate) token_ttl: Option<Duration>,
}

/// The option's name without any `=value`: what may be echoed back in an error.
fn option_name(arg: &str) -> &str {
    arg.split('=').next().unwrap_or(arg)
}

pub(crate) fn parse_args(raw: Vec<OsString>) -> Result<Args, Failure> {
    let mut words = Vec::new();
    let mut json = false;
    let mut detach = false;
    let (mut help, mut version) = (false, false);
    let mut args = Args {
        command: Command::Help,
        request: RequestOptions::default(),
        verbose: 0,
        no_cache: false,
        tenant: None,
        private_key: None,
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
            "-v" | "--verbose" => args.verbose = args.verbose.saturating_add(1),
            "-vv" => args.verbose = args.verbose.saturating_add(2),
            "--no-cache" => args.no_cache = true,
            "--json" => json = true,
            "-H" | "--header" => {
                let v = value("a header: 'NAME: VALUE'")?;
                let Some((name, value)) = v.split_once(':') else {
                    return Err(Failure::usage("--header needs 'NAME: VALUE'"));
                };
                let name = name.trim();
                // As the client secret: a key on the command line is a key in `ps`.
                if name.eq_ignore_ascii_case("lw-subscription-key") {
                    return Err(Failure::usage(
                        "the subscription key is not taken from the command line, where `ps` \
                         would show it; set LWOLF_SUBSCRIPTION_KEY or LWOLF_SUBSCRIPTION_KEY_FILE",
                    ));
                }
                args.request
                    .headers
                    .push((name.to_owned(), value.trim_start().to_owned()));
            }
            "--query" => {
                let v = value("NAME=VALUE")?;
                let (name, value) = v.split_once('=').unwrap_or((&v, ""));
                args.request.query.push((name.to_owned(), value.to_owned()));
            }
            "--content-type" => args.request.content_type = Some(value("a media type")?),
            "-o" | "--output" => args.request.output = Some(value("a file")?.into()),
            "--timeout" => {
                let v = value("a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or_else(|| {
                        Failure::usage("--timeout needs a positive number of seconds")
                    })?;
                args.request.timeout = Some(Duration::from_secs_f64(secs));
            }
            "--detach" => detach = true,
            "--tenant" => args.tenant = Some(value("a customer instance id")?),
            "--private-key" => args.private_key = Some(value("a PEM key file")?.into()),
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
            // Methods are case-sensitive on the wire; on the command line `post` means POST.
            Command::Request {
                method: rest[0].to_ascii_uppercase(),
                path: rest[1].clone(),
            }
        }
        "info" => {
            expect(0, "lwolf info")?;
            Command::Info
        }
        "jwk" => {
            expect(1, "lwolf jwk KEYFILE")?;
            Command::Jwk {
                key_file: rest[0].clone().into(),
            }
        }
        "sandbox" => {
            expect(
                0,
                "lwolf sandbox [--port N] [--token-ttl SECONDS] [--detach]",
            )?;
            Command::Sandbox { detach }
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
        Command::Sandbox { .. } => json || args.data.is_some() || args.tenant.is_some(),
        _ => false,
    } || (!matches!(args.command, Command::Sandbox { .. })
        && (args.token_ttl.is_some() || detach))
        || (!matches!(args.command, Command::Request { .. }) && args.request.any())
        || (args.data.is_none() && args.request.content_type.is_some());
    if misplaced {
        return Err(Failure::usage(format!(
            "an option given does not apply to `lwolf {command}`"
        )));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::EXIT_USAGE;

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
