//! The sandbox as a program: `lwolf-sandbox` and `lwolf sandbox` share these options and
//! this loop. It prints the `LWOLF_*` settings that point a client at it on stdout, as shell
//! commands (`export LWOLF_TOKEN_URL=…`), then `sandbox ready at URL` on stderr, and serves
//! until killed:
//!
//! ```text
//! lwolf-sandbox [--port N] [--token-ttl SECONDS] [--client-id ID] [--client-secret S]
//!               [--rate-limit N] [--client-key PUBLIC-KEY.pem] [--dpop-nonce]
//!               [--api-latency-ms MS] [--token-latency-ms MS]
//!               [--exit-on-stdin-eof | --detach]
//! ```
//!
//! With `--exit-on-stdin-eof` it stops when its standard input is closed, so a harness that
//! dies cannot leave it behind. With `--detach` it serves from a process of its own and
//! returns once that one is ready, adding `export LWOLF_SANDBOX_PID=…`:
//!
//! ```text
//! eval "$(cargo run -q -p lwolf-sandbox -- --detach)"   # then run clients; stop it with
//! kill $LWOLF_SANDBOX_PID
//! ```
//!
//! `--client-key` registers a PEM public key (as `lwolf jwk` prints it): the sandbox then
//! also accepts `private_key_jwt` assertions signed by its private half. DPoP proofs are
//! always verified and bind the tokens they come with; `--dpop-nonce` makes every proof
//! carry a nonce it gives out (`use_dpop_nonce`), as Auth0 may.

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use crate::{Sandbox, SandboxBuilder, EXPORTED};

/// The options, after the program's name.
pub const USAGE: &str = "[--port N] [--token-ttl SECONDS] [--client-id ID] [--client-secret S] \
                         [--rate-limit N] [--client-key PUBLIC-KEY.pem] [--dpop-nonce] \
                         [--api-latency-ms MS] [--token-latency-ms MS] \
                         [--exit-on-stdin-eof | --detach]";

/// What the command line asks for.
#[derive(Debug)]
pub struct Options {
    builder: SandboxBuilder,
    exit_on_stdin_eof: bool,
    detach: bool,
    /// The arguments as given, for the process `--detach` starts.
    args: Vec<OsString>,
}

/// Reads the options (`-h`/`--help`: `Ok(None)`); a bad one is `Err` with what is wrong.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Options>, String> {
    use lexopt::prelude::*;
    let args: Vec<OsString> = args.into_iter().collect();
    let mut parser = lexopt::Parser::from_args(args.clone());
    let mut builder = Sandbox::builder();
    let (mut exit_on_stdin_eof, mut detach) = (false, false);
    let bad = |e: lexopt::Error| e.to_string();
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Long("port") => {
                builder = builder.port(parser.value().map_err(bad)?.parse().map_err(bad)?)
            }
            Long("token-ttl") => {
                let secs: u64 = parser.value().map_err(bad)?.parse().map_err(bad)?;
                if secs == 0 {
                    return Err("--token-ttl must be at least 1".into());
                }
                builder = builder.token_ttl(Duration::from_secs(secs));
            }
            Long("client-id") => {
                builder = builder.client_id(parser.value().map_err(bad)?.string().map_err(bad)?)
            }
            Long("client-secret") => {
                builder = builder.client_secret(parser.value().map_err(bad)?.string().map_err(bad)?)
            }
            Long("rate-limit") => {
                builder = builder.rate_limit(parser.value().map_err(bad)?.parse().map_err(bad)?)
            }
            Long("client-key") => {
                let path = parser.value().map_err(bad)?;
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "cannot read --client-key {}: {e}",
                        Path::new(&path).display()
                    )
                })?;
                builder = builder.client_public_key(pem);
            }
            Long("dpop-nonce") => builder = builder.dpop_nonce(true),
            Long("api-latency-ms") => {
                let ms: u64 = parser.value().map_err(bad)?.parse().map_err(bad)?;
                builder = builder.api_latency(Duration::from_millis(ms));
            }
            Long("token-latency-ms") => {
                let ms: u64 = parser.value().map_err(bad)?.parse().map_err(bad)?;
                builder = builder.token_latency(Duration::from_millis(ms));
            }
            Long("exit-on-stdin-eof") => exit_on_stdin_eof = true,
            Long("detach") => detach = true,
            Short('h') | Long("help") => return Ok(None),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if detach && exit_on_stdin_eof {
        return Err("--detach and --exit-on-stdin-eof do not go together".into());
    }
    Ok(Some(Options {
        builder,
        exit_on_stdin_eof,
        detach,
        args,
    }))
}

/// Runs the sandbox as `options` say: prints its settings, then serves until killed (or
/// until stdin closes, with `--exit-on-stdin-eof`). With `--detach`, `program` is started
/// again with `before` and the same options but `--detach` (`lwolf` `sandbox` …). `name`
/// prefixes its messages.
pub fn run(options: Options, program: &Path, before: &[&str], name: &str) -> ExitCode {
    if options.detach {
        let args = before
            .iter()
            .map(OsString::from)
            .chain(options.args.iter().filter(|a| *a != "--detach").cloned());
        return match start_detached(program, args)
            .and_then(|exports| io::stdout().write_all(exports.as_bytes()))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: cannot start the sandbox in the background: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let sandbox = match options.builder.start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot start the sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The sandbox's own, well-known development secret: printing it is the point.
    let mut out = io::stdout().lock();
    let printed = out
        .write_all(sandbox.shell_exports().as_bytes())
        .and_then(|_| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("{name}: cannot write to stdout: {e}");
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

/// Starts `program` with `args` (a sandbox that prints its settings, then serves) in the
/// background, in a process group of its own, with no standard input or error; waits until
/// it has printed its settings, and returns them with `export LWOLF_SANDBOX_PID=…` added,
/// for `eval`. It goes on serving until that process is killed.
pub fn start_detached<I, S>(program: &Path, args: I) -> io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    detach(&mut command);
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut exports = String::new();
    let mut seen = 0;
    for line in io::BufReader::new(stdout).lines() {
        let line = line?;
        seen += usize::from(line.starts_with("export LWOLF_"));
        exports.push_str(&line);
        exports.push('\n');
        if seen == EXPORTED.len() {
            exports.push_str(&format!("export LWOLF_SANDBOX_PID={}\n", child.id()));
            return Ok(exports);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(io::Error::other("the sandbox exited before it was ready"))
}

/// A process group of its own: the shell's Ctrl-C does not reach it.
#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

/// No console of its own, and a process group of its own.
#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS);
}

#[cfg(not(any(unix, windows)))]
fn detach(_command: &mut Command) {}

/// The program: `lwolf-sandbox [options]`.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let _program_name = args.next();
    match parse(args) {
        Ok(Some(options)) => match std::env::current_exe() {
            Ok(me) => run(options, &me, &[], "lwolf-sandbox"),
            Err(e) => {
                eprintln!("lwolf-sandbox: cannot find this program: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("usage: lwolf-sandbox {USAGE}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("lwolf-sandbox: {why}\nusage: lwolf-sandbox {USAGE}");
            ExitCode::from(2)
        }
    }
}
