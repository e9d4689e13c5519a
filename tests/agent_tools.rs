//! End-to-end: the operator's HTTP tools (issue 23) in the real `agent`
//! binary. The mock model calls a configured tool with its greeting; the
//! tool server here verifies the request's signature and answers slowly;
//! the caller (whose SDP names an RTP tap) hears the filler tone while the
//! tool runs; the model gets the tool's answer; the call and its result
//! are stored as events. The two other fillers too: a tool with a WAV
//! filler makes the caller hear that file's energy before its answer; a
//! tool with a filler prompt has the prompt reach the model before its
//! answer.

mod support_agent;

use std::sync::mpsc;
use std::time::Duration;

use callbridge_crm_store::EventKind;
use callbridge_llm_mock::gemini::GeminiScript;
use serde_json::{Value, json};
use support_agent::media::{MockModel, RtpTap};
use support_agent::sipp::Sipp;
use support_agent::tools::{self, ToolRequest};
use support_agent::{Agent, Model, Opts};

const SECRET: &str = "e2e-tool-secret-0123456789";

fn tool_server(delay: Duration) -> (u16, mpsc::Receiver<ToolRequest>) {
    tools::tool_server(SECRET, delay)
}

fn tools_toml(port: u16) -> String {
    tools_toml_with(port, "")
}

/// The tool of [`tools_toml`] with `filler` (a `filler_prompt` or
/// `filler_file` line) added.
fn tools_toml_with(port: u16, filler: &str) -> String {
    format!(
        r#"
[[tools]]
name = "lookup_order"
description = "Looks up the state of an order by its number."
url = "http://127.0.0.1:{port}/tool"
timeout = "20s"
secret_env = "E2E_TOOL_SECRET"
filler_after_ms = 300
{filler}
[tools.parameters]
type = "object"
required = ["order"]
[tools.parameters.properties.order]
type = "string"
description = "The order number, digits only."
"#
    )
}

#[test]
fn a_slow_signed_tool_gets_filler_at_the_caller_and_its_answer_to_the_model() {
    let greeting = callbridge_llm_mock::clips::greeting().duration();
    // The tool answers well after the greeting has played: what the caller
    // hears just before the answer is the filler, or silence.
    let delay = greeting + Duration::from_secs(3);
    let (port, seen) = tool_server(delay);
    let model = MockModel::start(GeminiScript {
        tool_call_after_turns: Some((0, "lookup_order".into(), json!({"order": "42"}))),
        ..GeminiScript::default()
    });
    let agent = Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        env: vec![("E2E_TOOL_SECRET".into(), SECRET.into())],
        extra_toml: tools_toml(port),
        ..Opts::default()
    });
    let tap = RtpTap::start(Duration::from_secs(30));
    let pause = delay + Duration::from_secs(2);
    Sipp::uac("uac_silent_tapped.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .pause_ms(u64::try_from(pause.as_millis()).unwrap())
        .within(pause + Duration::from_secs(20))
        .run()
        .assert_ok("a call whose model uses a slow tool");
    let heard = tap.finish();
    let seen = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the tool server got a request");

    // The request: signed, carrying the call and the arguments.
    assert!(seen.signature_ok, "bad signature; body {}", seen.body);
    assert_eq!(seen.body["tool"], "lookup_order", "{}", seen.body);
    assert_eq!(seen.body["arguments"], json!({"order": "42"}));
    assert_eq!(seen.body["call"]["direction"], "inbound");
    assert_eq!(seen.body["call"]["called"], "+15550100123");
    assert_eq!(seen.body["call"]["profile"], "default");

    // The caller heard the filler in the 1.5 s before the answer: the
    // comfort tone's beats (200 ms of tone a second), not silence and not
    // the continuous speech of the greeting.
    let window: Vec<_> = heard
        .iter()
        .filter(|h| {
            h.at <= seen.answered_at
                && seen.answered_at.duration_since(h.at) < Duration::from_millis(1500)
        })
        .collect();
    let voiced = window.iter().filter(|h| h.rms > 300.0).count();
    println!(
        "greeting {greeting:?}; {} packets in the 1.5 s before the answer, {voiced} voiced",
        window.len()
    );
    assert!(window.len() >= 60, "{} packets", window.len());
    assert!(
        (8..=40).contains(&voiced),
        "{voiced} voiced packets of {}: no filler beats",
        window.len()
    );

    // The model got the tool's answer.
    let stats = model.stats();
    let answered = stats
        .tool_responses
        .iter()
        .find(|(name, _)| name == "lookup_order")
        .unwrap_or_else(|| panic!("no tool response in {:?}", stats.tool_responses));
    assert!(answered.1.to_string().contains("shipped"), "{answered:?}");
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);

    // Stored: the call, the filler, the (truncated) result.
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let record = agent.store().load_session(sessions[0].id).unwrap();
    let tool_events: Vec<&Value> = record
        .events
        .iter()
        .filter(|e| e.kind == EventKind::ToolCall)
        .map(|e| &e.detail)
        .collect();
    println!("tool events: {tool_events:?}");
    assert!(
        tool_events
            .iter()
            .any(|d| d["tool"] == "lookup_order" && d["result"] == "called"),
        "{tool_events:?}"
    );
    assert!(
        tool_events.iter().any(|d| d["tool"] == "lookup_order"
            && d["result"] == "ok"
            && d["answer"].as_str().is_some_and(|a| a.contains("shipped"))),
        "{tool_events:?}"
    );
    assert!(
        record
            .events
            .iter()
            .any(|e| e.detail.get("tool_filler").is_some()),
        "no filler event"
    );
    agent.wait_idle(Duration::from_secs(10));
}

// --- issue 23 (prof2): the WAV and prompt fillers end to end ---
/// The committed filler file: a 2 s 1 kHz sine at a quarter of full
/// scale (RMS about 5,790), 8 kHz mono 16-bit, made with
/// `sox -n -r 8000 -c 1 -b 16 -e signed-integer filler-hold-8k.wav synth 2 sine 1000 vol 0.25`.
fn filler_wav() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/assets/filler-hold-8k.wav").to_owned()
}

/// Whether a packet's level is the filler file's (the sine's RMS, give
/// or take G.711's quantization); speech and the comfort tone are not.
fn at_filler_level(rms: f64) -> bool {
    (5200.0..6400.0).contains(&rms)
}

#[test]
fn a_slow_tool_with_a_wav_filler_plays_that_file_to_the_caller_before_its_answer() {
    let greeting = callbridge_llm_mock::clips::greeting().duration();
    let delay = greeting + Duration::from_secs(3);
    let (port, seen) = tool_server(delay);
    let model = MockModel::start(GeminiScript {
        tool_call_after_turns: Some((0, "lookup_order".into(), json!({"order": "42"}))),
        ..GeminiScript::default()
    });
    let filler = format!("filler_file = {:?}", filler_wav());
    let agent = Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        env: vec![("E2E_TOOL_SECRET".into(), SECRET.into())],
        extra_toml: tools_toml_with(port, &filler),
        ..Opts::default()
    });
    let tap = RtpTap::start(Duration::from_secs(30));
    let pause = delay + Duration::from_secs(2);
    Sipp::uac("uac_silent_tapped.xml", agent.sip)
        .key("tap", tap.port.to_string())
        .pause_ms(u64::try_from(pause.as_millis()).unwrap())
        .within(pause + Duration::from_secs(20))
        .run()
        .assert_ok("a call whose slow tool has a WAV filler");
    let heard = tap.finish();
    let seen = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the tool server got a request");
    assert!(seen.signature_ok);
    // Before the answer: the file's 2 s (100 packets) at its level, in
    // one run; after it, none (it plays once).
    let before: Vec<_> = heard.iter().filter(|h| h.at <= seen.answered_at).collect();
    let at_level = before.iter().filter(|h| at_filler_level(h.rms)).count();
    let mut run = 0;
    let mut longest = 0;
    for h in &before {
        run = if at_filler_level(h.rms) { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    println!(
        "{} packets before the answer, {at_level} at the filler's level, longest run {longest}",
        before.len()
    );
    assert!(
        longest >= 80,
        "the file was not heard: longest run {longest}"
    );
    let after = heard
        .iter()
        .filter(|h| h.at > seen.answered_at && at_filler_level(h.rms))
        .count();
    assert!(
        after <= 5,
        "{after} packets at the filler's level after the answer"
    );
    let stats = model.stats();
    assert!(
        stats
            .tool_responses
            .iter()
            .any(|(n, _)| n == "lookup_order"),
        "{:?}",
        stats.tool_responses
    );
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_slow_tool_with_a_filler_prompt_has_the_model_told_before_its_answer() {
    const PROMPT: &str = "Tell the caller briefly that you are looking the order up.";
    // The tool answers well after the greeting: the prompt waits for the
    // model to finish speaking, then goes while the tool still runs.
    let greeting = callbridge_llm_mock::clips::greeting().duration();
    let delay = greeting + Duration::from_secs(3);
    let (port, seen) = tool_server(delay);
    let model = MockModel::start(GeminiScript {
        tool_call_after_turns: Some((0, "lookup_order".into(), json!({"order": "42"}))),
        ..GeminiScript::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let filler = format!("filler_prompt = {PROMPT:?}");
    let mut agent = Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        env: vec![
            ("E2E_TOOL_SECRET".into(), SECRET.into()),
            ("CALLBRIDGE_STORE_DATABASE".into(), db.display().to_string()),
            // The outbox keeps every event with its number in the call:
            // the order of what the model was told and the tool's answer.
            // Nobody listens there; delivery does not matter here.
            (
                "CALLBRIDGE_WEBHOOKS_URLS".into(),
                "http://127.0.0.1:9/hook".into(),
            ),
        ],
        extra_toml: tools_toml_with(port, &filler),
        ..Opts::default()
    });
    agent.db = db;
    Sipp::uac("uac_silent_tapped.xml", agent.sip)
        .key("tap", "9")
        .pause_ms(u64::try_from((delay + Duration::from_secs(2)).as_millis()).unwrap())
        .within(delay + Duration::from_secs(30))
        .run()
        .assert_ok("a call whose slow tool has a filler prompt");
    seen.recv_timeout(Duration::from_secs(5))
        .expect("the tool server got a request");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let rows = agent.wait_for("the call's events", Duration::from_secs(10), || {
        let rows = agent.store().outbox_for_session(sessions[0].id).ok()?;
        rows.iter().any(|r| r.event == "call.ended").then_some(rows)
    });
    // Each event once (one receiver), by its number in the call.
    let events: Vec<(u64, Value)> = rows
        .iter()
        .map(|r| {
            let doc: Value = serde_json::from_str(&r.payload).unwrap();
            (doc["seq"].as_u64().unwrap(), doc)
        })
        .collect();
    for (seq, doc) in &events {
        println!("{seq} {} {}", doc["event"], doc["data"]);
    }
    // The mock model answers text input as a caller turn with that text:
    // the prompt reached it.
    let told = events
        .iter()
        .find(|(_, d)| d["event"] == "transcript.turn" && d["data"]["text"] == PROMPT)
        .map(|(s, _)| *s)
        .unwrap_or_else(|| panic!("the model never got the filler prompt"));
    let answered = events
        .iter()
        .find(|(_, d)| {
            d["event"] == "tool.called"
                && d["data"]["tool"] == "lookup_order"
                && d["data"]["result"] == "ok"
        })
        .map(|(s, _)| *s)
        .unwrap_or_else(|| panic!("no tool answer event"));
    assert!(told < answered, "prompt #{told}, answer #{answered}");
    let stats = model.stats();
    assert!(
        stats
            .tool_responses
            .iter()
            .any(|(n, _)| n == "lookup_order"),
        "{:?}",
        stats.tool_responses
    );
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    agent.wait_idle(Duration::from_secs(10));
}
// --- end issue 23 (prof2) ---

/// RFC 4733 packets for `digits` (PT 101), each event three updates and
/// its end packet sent three times, from `sock` to `to`.
fn send_dtmf(sock: &std::net::UdpSocket, to: std::net::SocketAddr, digits: &str) {
    let mut seq: u16 = 1;
    let mut ts: u32 = 8000;
    for d in digits.chars() {
        let event = match d {
            '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => continue,
        };
        for (i, end) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            let duration = u16::try_from(160 * (i.min(3) + 1)).unwrap();
            let mut p = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            p.extend_from_slice(&duration.to_be_bytes());
            sock.send_to(&p, to).unwrap();
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
        ts = ts.wrapping_add(1600);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn collected_digits_reach_the_model_and_never_the_store_or_the_log() {
    use support_agent::raw_sip::{RawCall, header, status};
    // Eight digits: a shorter run could turn up by chance in an id, a
    // port or a timestamp in the store or the log.
    const DIGITS: &str = "73958264";
    let model = MockModel::start(GeminiScript {
        tool_call_after_turns: Some((
            0,
            "collect_digits".into(),
            json!({"max_digits": 8, "timeout_s": 20}),
        )),
        ..GeminiScript::default()
    });
    let agent = Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        // Debug logs too: not even they may carry a digit.
        log_level: "debug",
        extra_toml: "[routing]\ndefault_profile = \"pin\"\n\n[[profiles]]\nname = \"pin\"\n\
                     tools = [\"end_call\", \"collect_digits\"]\n"
            .into(),
        ..Opts::default()
    });
    // A hand-written caller: INVITE, read the answer's media address, ACK.
    let mut call = RawCall::new("127.0.0.1", agent.sip);
    let rtp = call.rtp.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        rtp.port()
    );
    let local = call.sock.local_addr().unwrap();
    let (invite, branch) = call.request_text("INVITE", local, &sdp);
    call.sock.send_to(invite.as_bytes(), agent.sip).unwrap();
    let ok = RawCall::response_on(&call.sock, &branch, Duration::from_secs(10), false)
        .expect("an answer to the INVITE");
    assert_eq!(status(&ok), Some(200), "{ok}");
    call.to_tag = header(&ok, "To")
        .and_then(|t| t.split(';').find_map(|p| p.trim().strip_prefix("tag=")))
        .map(str::to_string);
    let port: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio in the answer");
    let (ack, _) = call.request_text("ACK", local, "");
    call.sock.send_to(ack.as_bytes(), agent.sip).unwrap();
    // The model asks for digits with its greeting; the caller types them.
    std::thread::sleep(Duration::from_millis(1500));
    send_dtmf(&call.rtp, ([127, 0, 0, 1], port).into(), DIGITS);
    let answered = agent.wait_for("the digits at the model", Duration::from_secs(10), || {
        model
            .stats()
            .tool_responses
            .into_iter()
            .find(|(name, _)| name == "collect_digits")
    });
    println!("the model got {}", answered.1);
    assert!(answered.1.to_string().contains(DIGITS), "{answered:?}");
    let sock = call.sock.try_clone().unwrap();
    call.bye_from(&sock, Duration::from_secs(5));
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let record = agent.store().load_session(sessions[0].id).unwrap();
    let collected: Vec<&Value> = record
        .events
        .iter()
        .filter(|e| e.detail["tool"] == "collect_digits")
        .map(|e| &e.detail)
        .collect();
    println!("collect_digits events: {collected:?}");
    assert!(
        collected
            .iter()
            .any(|d| d["result"] == "ok" && d["digits"] == "••••"),
        "{collected:?}"
    );
    agent.wait_idle(Duration::from_secs(10));

    // Nowhere in the store's files, nor in the log.
    for ext in ["", "-wal", "-shm"] {
        let path = format!("{}{ext}", agent.db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(DIGITS.len()).any(|w| w == DIGITS.as_bytes()),
                "the digits are in {path}"
            );
        }
    }
    let log = agent.stderr();
    // The debug log did see the key presses go by (as actions, without
    // their digits).
    assert!(
        log.contains("SendDtmfToModel"),
        "no DTMF action in the debug log: the check below would mean nothing"
    );
    assert!(!log.contains(DIGITS), "the digits are in the agent's log");
}
