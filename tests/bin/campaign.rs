//! `e2e-campaign`: this package's copy of `campaign` (the same
//! `callbridge_campaign::main` the real binary calls), so the end-to-end tests
//! always run the code of this build. It presents itself as `campaign` (the
//! program name clap puts in usage and error messages).

fn main() -> std::process::ExitCode {
    callbridge_campaign::main(std::iter::once("campaign".into()).chain(std::env::args_os().skip(1)))
}
