//! `agent demo`, the README's first command, run for real: it must finish
//! by itself (exit 0) and print the call as the store has it: transcript
//! turns of both sides, an end reason, the recording and the latency
//! figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_places_one_call_and_prints_it_from_the_store() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["demo", "--keep"])
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{so}\nstderr:\n{se}");
    eprintln!("agent demo took {:?}:\n{so}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(so.contains("end reason: caller-hangup"), "{so}");
    assert!(so.contains("state          ended"), "{so}");
    let transcript = so
        .split("transcript\n")
        .nth(1)
        .and_then(|t| t.split("latency, agent side").next())
        .unwrap_or_default();
    assert!(transcript.contains("agent"), "agent turns: {transcript}");
    assert!(transcript.contains("caller"), "caller turns: {transcript}");
    assert!(so.contains("answer to first agent audio"), "{so}");
    // The agent-side figures (the session's latency note events) are
    // printed when present but not asserted: on a heavily loaded machine a
    // run was seen without them (reported to the session crate's authors).
    assert!(so.contains("latency, agent side"), "{so}");
    assert!(
        !so.contains("not measured"),
        "both latencies measured: {so}"
    );
    // The recording named in the output exists and is a WAV file.
    let rec = so
        .lines()
        .find_map(|l| l.trim().strip_prefix("recording      "))
        .expect("a recording line");
    let bytes = std::fs::read(rec.trim()).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    // --keep printed the directory; remove it.
    let kept = so
        .lines()
        .find_map(|l| l.strip_prefix("kept             "))
        .expect("kept directory printed");
    std::fs::remove_dir_all(kept.trim()).unwrap();
}
