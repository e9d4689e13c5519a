//! `e2e-agent`: this package's copy of `agent` (the same
//! `callbridge_agent::main` the real binary calls), so the end-to-end tests
//! always run the code of this build. It presents itself as `agent` (the
//! program name clap puts in usage and error messages).

fn main() -> std::process::ExitCode {
    callbridge_agent::main(std::iter::once("agent".into()).chain(std::env::args_os().skip(1)))
}
