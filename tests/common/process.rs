//! Waiting for a child process, bounded, showing what it said, and reading
//! its stdout line by line: shared by the end-to-end tests (each includes
//! this file with `#[path]`).
#![allow(dead_code, reason = "each test uses a subset")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Takes `child`'s piped stdout and hands its lines over a channel (at most
/// 64 waiting), read by a thread that ends with the pipe or the receiver.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::sync_channel::<String>(64);
    if let Some(pipe) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Waits for `child` to exit and collects its output; after `limit` kills
/// it and panics with what it wrote (stdout and stderr are read only after
/// it exits, so a child that fills a piped one blocks until `limit`).
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the child did not exit within {limit:?}: {}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exit status, stdout and stderr for a failure message.
pub fn show(o: &Output) -> String {
    format!(
        "{:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
