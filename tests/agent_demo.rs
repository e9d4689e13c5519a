//! `agent demo`, the README's first command, run for real: it must finish
//! by itself (exit 0) and print the call as the store has it: transcript
//! turns of both sides, an end reason, the recording and the latency
//! figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "bin/paths.rs"]
mod bins;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_places_one_call_and_prints_it_from_the_store() {
    let started = Instant::now();
    let out = Command::new(bins::AGENT)
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
    assert!(
        !so.contains("not measured"),
        "both latencies measured on the caller's side: {so}"
    );
    // The agent-side figures: the session's latency note events in the
    // store, one for the greeting and one for the reply to the caller's
    // sentence (a caller who stops while the greeting still plays is
    // answered by the next reply, which is measured too).
    let agent_side = so
        .split("latency, agent side")
        .nth(1)
        .and_then(|t| t.split("latency, caller side").next())
        .unwrap_or_default();
    for figure in ["answer to first audio", "caller stop to agent audio"] {
        let ms = agent_side
            .lines()
            .find_map(|l| l.trim().strip_prefix(figure))
            .and_then(|v| v.trim().strip_suffix(" ms"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        assert!(ms.is_some(), "agent side {figure} stored: {so}");
    }
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
