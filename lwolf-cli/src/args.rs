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
                                  file and the client's counters (never the token)
  lwolf jwk KEYFILE               the public JWK and PEM of an RSA private key, to register
                                  with the gateway for --private-key (private_key_jwt)
  lwolf agent [--socket PATH] [--proxy 127.0.0.1:PORT] [--sink FILE] [...]
                                  hold the credential for tools that cannot load the library:
                                  tokens over a Unix socket, a proxy that adds them, a token
                                  file (see \"Options of agent\"; docs/agent.md)
  lwolf sandbox [--port N] [--token-ttl SECONDS] [--detach] [...]
                                  run a local stand-in gateway and API, print the LWOLF_*
                                  exports that point at it, and serve until killed
                                  (--detach: in the background, for eval \"$(...)\"; it
                                  also exports LWOLF_SANDBOX_PID, to kill it by; the other
                                  options are lwolf-sandbox's, see lwolf sandbox --help)

Options of get and request:
  -H, --header 'NAME: VALUE'      add a header (repeatable); the bearer token is the library's
  --query NAME=VALUE              add a query parameter (repeatable), percent-encoded for you:
                                  --query \"$filter=statusCode eq 'A'\"
  --content-type TYPE             the type of --data (default application/json)
  -o, --output FILE               write the body to FILE as it arrives (any size), not stdout
  --timeout SECONDS               the limit for each attempt (default: LWOLF_TIMEOUT_MS)

Options of agent (at least one of --socket, --proxy, --sink; it runs in the foreground until
SIGTERM (Ctrl+C on Windows), which finishes the requests in flight; SIGHUP reads the
settings and secret files again; --socket-group and SIGHUP are Unix only):
  --socket PATH       serve HTTP on a Unix socket (mode 0600), to this user only (on
                      Windows a named pipe, \\\\.\\pipe\\NAME, with a DACL to the same end):
                        GET /v1/token[?tenant=ID]     {access_token,token_type,expires_in,
                                                      expires_at}
                        GET /v1/auth-headers?method=M&url=U   {Authorization, DPoP}
                        POST /v1/reject (body: the token)     {send_again}
                        GET /v1/health, GET /metrics (Prometheus text)
                      e.g. curl --unix-socket PATH http://localhost/v1/token
  --socket-group G    the socket's group, mode 0660 (its members still need --allow)
  --allow USER|GROUP  another user, or the members of a group, may use the socket
                      (repeatable; checked by SO_PEERCRED, or on Windows the client
                      process's token, before anything is read)
  --proxy 127.0.0.1:PORT
                      forward /backoffice/... to LWOLF_API_BASE_URL and /transact-workflow/...
                      to LWOLF_TRANSACT_BASE_URL, adding the token (and DPoP proof and
                      subscription key); every request must carry Lwolf-Agent-Key: KEY;
                      Lwolf-Tenant: ID sends it with that customer instance's token
  --key-file FILE     the proxy's key (made if missing, 0600): default PATH.key beside
                      a Unix --socket, else agent.key in the cache directory
  --max-body-bytes N  the largest request body the proxy takes (default 16 MiB)
  --sink FILE         write the token to FILE (0600, atomically) at start and whenever it
                      changes
  --sink-format json|raw
                      the sink's content: the JSON of /v1/token (default) or the bare token

Options:
  --tenant ID      the customer instance (lwt_client_id) for token, get, request, info and
                   agent
  --api NAME       the API of get and request: backoffice (LWOLF_API_BASE_URL, the default)
                   or transact (LWOLF_TRANSACT_BASE_URL, with LWOLF_SUBSCRIPTION_KEY; its
                   403 is about the key and never renews the token)
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
$XDG_CACHE_HOME/lwolf-auth or ~/.cache/lwolf-auth (mode 0700; the files 0600; on Windows
%LOCALAPPDATA%\\lwolf-auth, private to the user by its DACL). Set
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
    Token {
        json: bool,
    },
    Request {
        method: String,
        path: String,
    },
    Info,
    Jwk {
        key_file: PathBuf,
    },
    /// `lwolf agent`.
    Agent(AgentOptions),
    /// The sandbox, with its own options.
    Sandbox {
        args: Vec<OsString>,
    },
    Help,
    Version,
}

/// What `--sink` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SinkFormat {
    /// `{"access_token", "token_type", "expires_in", "expires_at"}`, as `GET /v1/token`.
    #[default]
    Json,
    /// The bare token, no newline.
    Raw,
}

/// The options of `lwolf agent`.
#[derive(Default)]
pub(crate) struct AgentOptions {
    pub(crate) socket: Option<PathBuf>,
    pub(crate) socket_group: Option<String>,
    pub(crate) allow: Vec<String>,
    pub(crate) proxy: Option<std::net::SocketAddr>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) sink: Option<PathBuf>,
    pub(crate) sink_format: SinkFormat,
    pub(crate) max_body_bytes: Option<usize>,
}

impl AgentOptions {
    fn any(&self) -> bool {
        self.socket.is_some()
            || self.socket_group.is_some()
            || !self.allow.is_empty()
            || self.proxy.is_some()
            || self.key_file.is_some()
            || self.sink.is_some()
            || self.sink_format != SinkFormat::Json
            || self.max_body_bytes.is_some()
    }
}

/// Which of the vendor's APIs `get` and `request` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Api {
    #[default]
    BackOffice,
    Transact,
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
    pub(crate) api: Api,
    pub(crate) private_key: Option<PathBuf>,
    pub(crate) data: Option<Data>,
}

/// Reads the command line (after the program's name). `lwolf sandbox` hands everything after
/// its name to the sandbox's own options.
pub(crate) fn parse_args(raw: Vec<OsString>) -> Result<Args, Failure> {
    use lexopt::prelude::*;
    let mut words = Vec::new();
    let mut json = false;
    let (mut help, mut version) = (false, false);
    let mut args = Args {
        command: Command::Help,
        request: RequestOptions::default(),
        verbose: 0,
        no_cache: false,
        tenant: None,
        api: Api::default(),
        private_key: None,
        data: None,
    };
    let mut agent = AgentOptions::default();
    let mut parser = lexopt::Parser::from_args(raw.clone());
    // lexopt's messages name the option, never a value given with it.
    let bad = |e: lexopt::Error| Failure::usage(e.to_string());
    let text = |v: OsString, what: &str| {
        v.into_string()
            .map_err(|_| Failure::usage(format!("{what} must be valid UTF-8")))
    };
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Value(word) => {
                let word = text(word, "arguments")?;
                if words.is_empty() && word == "sandbox" {
                    // Everything after it is the sandbox's.
                    let rest = parser.raw_args().map_err(bad)?.collect();
                    args.command = Command::Sandbox { args: rest };
                    return Ok(args);
                }
                words.push(word);
            }
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Short('v') | Long("verbose") => args.verbose = args.verbose.saturating_add(1),
            Long("no-cache") => args.no_cache = true,
            Long("json") => json = true,
            Short('H') | Long("header") => {
                let v = text(parser.value().map_err(bad)?, "--header")?;
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
            Long("query") => {
                let v = text(parser.value().map_err(bad)?, "--query")?;
                let (name, value) = v.split_once('=').unwrap_or((&v, ""));
                args.request.query.push((name.to_owned(), value.to_owned()));
            }
            Long("content-type") => {
                args.request.content_type =
                    Some(text(parser.value().map_err(bad)?, "--content-type")?)
            }
            Short('o') | Long("output") => {
                args.request.output = Some(parser.value().map_err(bad)?.into())
            }
            Long("timeout") => {
                let secs: f64 = text(parser.value().map_err(bad)?, "--timeout")?
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or_else(|| {
                        Failure::usage("--timeout needs a positive number of seconds")
                    })?;
                args.request.timeout = Some(Duration::from_secs_f64(secs));
            }
            Long("tenant") => args.tenant = Some(text(parser.value().map_err(bad)?, "--tenant")?),
            Long("api") => {
                args.api = match text(parser.value().map_err(bad)?, "--api")?.as_str() {
                    "backoffice" => Api::BackOffice,
                    "transact" => Api::Transact,
                    _ => return Err(Failure::usage("--api is backoffice or transact")),
                }
            }
            Long("private-key") => args.private_key = Some(parser.value().map_err(bad)?.into()),
            Long("socket") => agent.socket = Some(parser.value().map_err(bad)?.into()),
            Long("socket-group") => {
                agent.socket_group = Some(text(parser.value().map_err(bad)?, "--socket-group")?)
            }
            Long("allow") => agent
                .allow
                .push(text(parser.value().map_err(bad)?, "--allow")?),
            Long("proxy") => {
                let v = text(parser.value().map_err(bad)?, "--proxy")?;
                let addr: std::net::SocketAddr = v.parse().map_err(|_| {
                    Failure::usage("--proxy needs a loopback address and port: 127.0.0.1:PORT")
                })?;
                if !addr.ip().is_loopback() {
                    return Err(Failure::usage(
                        "--proxy listens on a loopback address only (127.0.0.1:PORT or \
                         [::1]:PORT): the proxy is not for other hosts",
                    ));
                }
                agent.proxy = Some(addr);
            }
            Long("key-file") => agent.key_file = Some(parser.value().map_err(bad)?.into()),
            Long("sink") => agent.sink = Some(parser.value().map_err(bad)?.into()),
            Long("sink-format") => {
                agent.sink_format =
                    match text(parser.value().map_err(bad)?, "--sink-format")?.as_str() {
                        "json" => SinkFormat::Json,
                        "raw" => SinkFormat::Raw,
                        _ => return Err(Failure::usage("--sink-format is json or raw")),
                    }
            }
            Long("max-body-bytes") => {
                let n = text(parser.value().map_err(bad)?, "--max-body-bytes")?
                    .parse::<usize>()
                    .ok()
                    // A body is held in memory whole: at most 1 GiB.
                    .filter(|n| *n > 0 && *n <= 1 << 30)
                    .ok_or_else(|| {
                        Failure::usage("--max-body-bytes needs a number from 1 to 1073741824")
                    })?;
                agent.max_body_bytes = Some(n);
            }
            Short('d') | Long("data") => {
                let v = text(parser.value().map_err(bad)?, "--data")?;
                args.data = Some(match v.strip_prefix('@') {
                    Some("-") => Data::Stdin,
                    Some(path) => Data::File(path.into()),
                    None => Data::Inline(v),
                });
            }
            Long(name) if name.replace('_', "-").contains("secret") => {
                // The value, if one came with it, is never read, let alone echoed.
                return Err(Failure::usage(format!(
                    "--{name} is not accepted: the secret is never taken from the command line, \
                     where `ps` would show it; set LWOLF_CLIENT_SECRET or LWOLF_CLIENT_SECRET_FILE"
                )));
            }
            other => return Err(bad(other.unexpected())),
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
        "agent" => {
            expect(
                0,
                "lwolf agent [--socket PATH] [--proxy 127.0.0.1:PORT] [--sink FILE]",
            )?;
            Command::Agent(std::mem::take(&mut agent))
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
        Command::Token { .. } => args.data.is_some(),
        Command::Request { .. } => (command == "get" && args.data.is_some()) || json,
        Command::Info | Command::Agent(_) => json || args.data.is_some(),
        _ => false,
    } || (!matches!(args.command, Command::Request { .. })
        && (args.request.any() || args.api != Api::BackOffice))
        || (args.data.is_none() && args.request.content_type.is_some())
        || agent.any();
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
        assert!(matches!(
            parse(&["-v", "sandbox", "--port", "0", "--detach"]).map(|a| a.command),
            Ok(Command::Sandbox { args }) if args.len() == 3
        ));
        assert!(parse(&["frobnicate"]).is_err());
        let a = parse(&[
            "agent",
            "--socket",
            "/run/a.sock",
            "--allow",
            "alice",
            "--allow",
            "staff",
            "--proxy",
            "127.0.0.1:8181",
            "--sink",
            "/run/t",
            "--sink-format",
            "raw",
        ]);
        let Ok(Args {
            command: Command::Agent(options),
            ..
        }) = a
        else {
            panic!("agent options not taken")
        };
        assert_eq!(options.allow, ["alice", "staff"]);
        assert_eq!(options.proxy.map(|p| p.port()), Some(8181));
        assert_eq!(options.sink_format, SinkFormat::Raw);
        assert!(parse(&["agent", "--proxy", "0.0.0.0:1"]).is_err());
        assert!(parse(&["agent", "--proxy", "[::1]:1"]).is_ok());
        assert!(parse(&["agent", "--json"]).is_err());
        assert!(parse(&["info", "--sink", "x"]).is_err());
        assert!(parse(&["token", "--frob=1"]).is_err());
        assert!(matches!(parse(&[]).map(|a| a.command), Ok(Command::Help)));
    }
}
