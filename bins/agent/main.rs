//! `agent`: the callbridge call server. Configuration, wiring, HTTP and
//! process life only; the call logic lives in `callbridge-session`.
#![allow(dead_code, reason = "skeleton: issue 7 wires the HTTP state into run")]
mod http;

fn main() {
    // Placeholder until the CLI lands (issue 7): the HTTP module's contract
    // is referenced here so the skeleton builds warning-free.
    let _ = http::router;
    eprintln!("agent: not yet wired (issue 7)");
    std::process::exit(2);
}
