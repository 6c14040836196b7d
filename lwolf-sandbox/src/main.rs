//! `lwolf-sandbox`: the stand-in gateway and APIs on 127.0.0.1 until killed, for manual
//! tests and the test harnesses of other languages. Its options are in `cli.rs`.

fn main() -> std::process::ExitCode {
    lwolf_sandbox::cli::main(std::env::args_os())
}
