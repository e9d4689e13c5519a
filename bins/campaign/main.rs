//! `campaign`: the outbound dialer (the code is the library,
//! `callbridge_campaign`).

fn main() -> std::process::ExitCode {
    callbridge_campaign::main(std::env::args_os())
}
