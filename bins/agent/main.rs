//! `agent`: the callbridge call server (the code is the library,
//! `callbridge_agent`).

fn main() -> std::process::ExitCode {
    callbridge_agent::main(std::env::args_os())
}
