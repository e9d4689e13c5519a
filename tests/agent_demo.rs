//! `agent demo`, the README's first command, run for real: it must finish
//! by itself (exit 0) and print the call as the store has it: transcript
//! turns of both sides at their start times, an end reason in words, the
//! recording and the latency figures. `agent demo --serve` then keeps the
//! agent up with an admin token that the API takes, until SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "bin/paths.rs"]
mod bins;
#[allow(dead_code)]
#[path = "support_agent/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

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
    assert!(
        so.contains("end reason: the caller hung up (caller-hangup)"),
        "{so}"
    );
    assert!(so.contains("the caller hung up"), "{so}");
    assert!(!so.contains("LocalHangup"), "an internal name: {so}");
    assert!(so.contains("state          ended"), "{so}");
    let transcript = so
        .split("transcript\n")
        .nth(1)
        .and_then(|t| t.split("latency, agent side").next())
        .unwrap_or_default();
    assert!(transcript.contains("agent"), "agent turns: {transcript}");
    assert!(transcript.contains("caller"), "caller turns: {transcript}");
    assert!(
        transcript.contains("caller (caller speech, not transcribed by the mock model)"),
        "the mock's caller turn explained: {transcript}"
    );
    // `[  t s] speaker text`: the greeting starts right after the answer,
    // and the caller's turn where its 2.2 s sentence began, well before
    // the reply to it (its transcript comes only at its end).
    let turns: Vec<(f64, &str)> = transcript
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.trim().strip_prefix('[')?.split_once(" s] ")?;
            Some((t.trim().parse().ok()?, rest.split_whitespace().next()?))
        })
        .collect();
    assert!(
        turns
            .first()
            .is_some_and(|(t, who)| *who == "agent" && *t < 1.0),
        "greeting at its start: {transcript}"
    );
    let caller = turns.iter().position(|(_, who)| *who == "caller").unwrap();
    let reply = turns[caller + 1..]
        .iter()
        .find(|(_, who)| *who == "agent")
        .expect("a reply after the caller's turn");
    assert!(
        reply.0 - turns[caller].0 >= 1.5,
        "the caller's turn at its start, not its end: {transcript}"
    );
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

/// `agent demo --provider gpt-live` (and `openai`): the same call over
/// that protocol against its built-in mock, keyless: it finishes by itself
/// with a greeting, the caller's turn and a reply in the store.
#[test]
fn demo_runs_keyless_over_gpt_live_and_openai_realtime() {
    for (provider, protocol) in [
        ("gpt-live", "OpenAI GPT-Live"),
        ("openai", "OpenAI Realtime"),
    ] {
        let out = Command::new(bins::AGENT)
            .args(["demo", "--provider", provider])
            .env_remove("GEMINI_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let so = String::from_utf8_lossy(&out.stdout);
        let se = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{provider}: stdout:\n{so}\nstderr:\n{se}"
        );
        assert!(
            so.contains(&format!("mock model speaking {protocol}")),
            "{so}"
        );
        assert!(
            so.contains("end reason: the caller hung up (caller-hangup)"),
            "{provider}: {so}"
        );
        let transcript = so
            .split("transcript\n")
            .nth(1)
            .and_then(|t| t.split("latency, agent side").next())
            .unwrap_or_default();
        let speakers: Vec<&str> = transcript
            .lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.split_once(" s] "))
            .filter_map(|(_, rest)| rest.split_whitespace().next())
            .collect();
        assert_eq!(
            speakers.first(),
            Some(&"agent"),
            "the greeting: {transcript}"
        );
        let caller = speakers.iter().position(|w| *w == "caller");
        assert!(
            caller.is_some_and(|c| speakers[c + 1..].contains(&"agent")),
            "{provider}: the caller's turn, then a reply: {transcript}"
        );
    }
}

#[test]
fn demo_serve_keeps_the_agent_up_with_an_admin_token_until_sigterm() {
    let mut child = Command::new(bins::AGENT)
        .args(["demo", "--serve"])
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = process::stdout_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut http, mut token, mut seen) = (None, None, Vec::new());
    while http.is_none() || token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no address and token within 60 s:\n{}", seen.join("\n"));
        };
        if let Some(a) = line.trim().strip_prefix("http           http://") {
            http = Some(a.parse::<std::net::SocketAddr>().unwrap());
        }
        if let Some(t) = line.trim().strip_prefix("admin token    ") {
            token = Some(t.to_owned());
        }
        seen.push(line);
    }
    let (http, token) = (http.unwrap(), token.unwrap());
    let sessions = http::request(http, "GET", "/api/sessions", Some(&token), None).unwrap();
    assert_eq!(sessions.status, 200, "{}", sessions.text());
    let body = sessions.json();
    let items = body["sessions"].as_array().expect("a page of sessions");
    assert_eq!(items.len(), 1, "the demo's call: {body}");
    let refused = http::request(http, "GET", "/api/sessions", Some("cbt_wrong"), None).unwrap();
    assert_eq!(refused.status, 401);

    let st = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("agent demo --serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l == "stopping"), "{rest:?}");
}
