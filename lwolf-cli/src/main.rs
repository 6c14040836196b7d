//! `lwolf`: bearer tokens and Back Office API calls from the shell, sharing one token
//! between all the processes of a host (feature `cli`). `lwolf --help` says how.
//!
//! `args` reads the command line, `commands` runs it, `output` writes to stdout and stderr;
//! `agent` is `lwolf agent`.

#![forbid(unsafe_code)]

mod agent;
mod args;
mod commands;
mod output;

use std::process::ExitCode;

use output::EXIT_INTERNAL;

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
    match std::panic::catch_unwind(|| commands::run(std::env::args_os().skip(1).collect())) {
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
