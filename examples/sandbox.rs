//! Runs the sandbox gateway and API on 127.0.0.1 until killed, for manual tests and for
//! test harnesses in other languages.
//!
//! ```text
//! cargo run --example sandbox -- [--port N] [--token-ttl SECONDS] [--client-id ID]
//!                                [--client-secret S] [--rate-limit N]
//!                                [--client-key PUBLIC-KEY.pem] [--dpop-nonce]
//!                                [--exit-on-stdin-eof | --detach]
//! ```
//!
//! Prints the `LWOLF_*` settings that point a client at it on stdout, as shell commands
//! (`export LWOLF_TOKEN_URL=…`), then `sandbox ready at URL` on stderr, and serves until
//! killed. With `--exit-on-stdin-eof` it stops when its standard input is closed, so a
//! harness that dies cannot leave it behind. With `--detach` it serves from a process of its
//! own and returns once that one is ready, adding `export LWOLF_SANDBOX_PID=…`:
//!
//! ```text
//! eval "$(cargo run -q --example sandbox -- --detach)"   # then run clients; stop it with
//! kill $LWOLF_SANDBOX_PID
//! ```
//!
//! `--client-key` registers a PEM public key (as `lwolf jwk` prints it): the sandbox then
//! also accepts `private_key_jwt` assertions signed by its private half. DPoP proofs are
//! always verified and bind the tokens they come with; `--dpop-nonce` makes every proof
//! carry a nonce it gives out (`use_dpop_nonce`), as Auth0 may.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use lwolf_auth::sandbox::Sandbox;

const USAGE: &str = "usage: sandbox [--port N] [--token-ttl SECONDS] [--client-id ID] \
                     [--client-secret S] [--rate-limit N] [--client-key PUBLIC-KEY.pem] \
                     [--dpop-nonce] [--exit-on-stdin-eof | --detach]";

struct Options {
    port: u16,
    token_ttl: Option<u64>,
    client_id: Option<String>,
    client_secret: Option<String>,
    rate_limit: Option<u32>,
    client_key: Option<String>,
    dpop_nonce: bool,
    exit_on_stdin_eof: bool,
    detach: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        token_ttl: None,
        client_id: None,
        client_secret: None,
        rate_limit: None,
        client_key: None,
        dpop_nonce: false,
        exit_on_stdin_eof: false,
        detach: false,
    };
    while let Some(arg) = args.next() {
        // Both `--name value` and `--name=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "--port" => {
                options.port = value("a port number")?
                    .parse()
                    .map_err(|_| "--port needs a number from 0 to 65535".to_owned())?
            }
            "--token-ttl" => {
                let secs: u64 = value("a number of seconds")?
                    .parse()
                    .map_err(|_| "--token-ttl needs a whole number of seconds".to_owned())?;
                if secs == 0 {
                    return Err("--token-ttl must be at least 1".into());
                }
                options.token_ttl = Some(secs);
            }
            "--client-id" => options.client_id = Some(value("an id")?),
            "--client-secret" => options.client_secret = Some(value("a secret")?),
            "--rate-limit" => {
                options.rate_limit = Some(
                    value("a number of requests per second")?
                        .parse()
                        .map_err(|_| "--rate-limit needs a whole number".to_owned())?,
                )
            }
            "--client-key" => {
                let path = value("a PEM public key file")?;
                options.client_key = Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read --client-key {path}: {e}"))?,
                );
            }
            "--dpop-nonce" if inline.is_none() => options.dpop_nonce = true,
            "--exit-on-stdin-eof" if inline.is_none() => options.exit_on_stdin_eof = true,
            "--detach" if inline.is_none() => options.detach = true,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if options.detach && options.exit_on_stdin_eof {
        return Err("--detach and --exit-on-stdin-eof do not go together".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("sandbox: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    if options.detach {
        let started = std::env::current_exe().and_then(|me| {
            let args = std::env::args().skip(1).filter(|a| a != "--detach");
            lwolf_auth::sandbox::start_detached(&me, args)
        });
        return match started.and_then(|exports| io::stdout().write_all(exports.as_bytes())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sandbox: cannot start in the background: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let mut builder = Sandbox::builder().port(options.port);
    if let Some(secs) = options.token_ttl {
        builder = builder.token_ttl(Duration::from_secs(secs));
    }
    if let Some(id) = options.client_id {
        builder = builder.client_id(id);
    }
    if let Some(secret) = options.client_secret {
        builder = builder.client_secret(secret);
    }
    if let Some(n) = options.rate_limit {
        builder = builder.rate_limit(n);
    }
    if let Some(pem) = options.client_key {
        builder = builder.client_public_key(pem);
    }
    builder = builder.dpop_nonce(options.dpop_nonce);
    let sandbox = match builder.start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut out = io::stdout().lock();
    let printed = out
        .write_all(sandbox.shell_exports().as_bytes())
        .and_then(|_| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("sandbox: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("sandbox ready at {}", sandbox.url());

    if options.exit_on_stdin_eof {
        // Read and discard until EOF (or an error, which means the same here).
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        drop(sandbox);
        ExitCode::SUCCESS
    } else {
        // Serve until killed; the sandbox's own threads do the work.
        loop {
            std::thread::park();
        }
    }
}
