//! Parse SIP messages from files, one datagram per file, for operators
//! debugging captures:
//!
//! ```text
//! cargo run -p callbridge-sip --example parse -- FILE...
//! ```
//!
//! Prints one line per file: `ok` with the request method or status code,
//! the Call-ID and the header count, or `error` with the parser's message
//! (and, for a request that could be answered, the status code the stack
//! would answer with). Exits 0 when every file parsed, 1 otherwise.

use bytes::Bytes;
use callbridge_sip::{Disposition, Message};
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: parse FILE...");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for file in &files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => {
                println!("{file}: error reading file: {e}");
                all_ok = false;
                continue;
            }
        };
        match Message::parse(Bytes::from(data)) {
            Ok(msg) => {
                let what = match &msg {
                    Message::Request(r) => r.method().to_string(),
                    Message::Response(r) => r.status().to_string(),
                };
                let call_id = msg
                    .headers()
                    .call_id()
                    .map_or_else(|_| "-".to_owned(), |c| c.to_string());
                println!(
                    "{file}: ok {what} call-id={call_id} headers={}",
                    msg.headers().len()
                );
            }
            Err(e) => {
                all_ok = false;
                match e.disposition() {
                    Disposition::Respond(status) => println!(
                        "{file}: error {e} (would answer {status} {})",
                        e.error().reason_phrase()
                    ),
                    Disposition::Drop => println!("{file}: error {e} (dropped)"),
                }
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
