//! End-to-end: the real `agent` binary's logs as an operator's collector
//! sees them. stderr here is a pipe, not a terminal: no ANSI escape codes
//! in either format; JSON lines carry typed fields (numbers as numbers,
//! enum values by their API names, absent options absent, never a Rust
//! Debug string) and a call has a start line and an end line.

mod support_agent;

use std::time::Duration;

use serde_json::Value;
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

/// Every stderr line parsed as JSON (a line that is not JSON fails).
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The first line whose message is `msg`.
fn line<'a>(lines: &'a [Value], msg: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["fields"]["message"] == msg)
        .unwrap_or_else(|| panic!("no {msg:?} line in {lines:#?}"))
}

/// Fails on a string value anywhere in `v` that is a Rust Debug rendering.
fn assert_no_debug_strings(v: &Value, line: &str) {
    match v {
        Value::String(s) => {
            for tell in ["Some(", "None", "Stats {", "Inbound", "Outbound", " { "] {
                assert!(
                    !s.contains(tell),
                    "Debug string {s:?} ({tell}) in log line {line}"
                );
            }
        }
        Value::Object(m) => m.values().for_each(|v| assert_no_debug_strings(v, line)),
        Value::Array(a) => a.iter().for_each(|v| assert_no_debug_strings(v, line)),
        _ => {}
    }
}

#[test]
fn json_logs_have_typed_fields_and_a_start_and_end_line_per_call() {
    let mut agent = Agent::start(Opts {
        env: vec![("CALLBRIDGE_LOG_FORMAT".into(), "json".into())],
        // The call path's debug lines too (the machine's inputs and
        // actions by name, never their data).
        log_level: "info,callbridge_session=debug",
        ..Opts::default()
    });
    Sipp::uac("uac_short.xml", agent.sip)
        .within(Duration::from_secs(30))
        .run()
        .assert_ok("a short inbound call");
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let session = sessions[0].id.to_string();
    // The end line follows the store's end within the call task.
    agent.wait_for("the call ended line", Duration::from_secs(10), || {
        agent.stderr().contains("\"call ended\"").then_some(())
    });
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(20));
    let stderr = agent.stderr();
    assert!(!stderr.contains('\x1b'), "escape codes in JSON logs");
    let lines = json_lines(&stderr);
    for l in &lines {
        assert_no_debug_strings(l, &l.to_string());
    }

    let start = line(&lines, "call started");
    let f = &start["fields"];
    assert_eq!(f["direction"], "inbound", "{start}");
    assert_eq!(f["transport"], "sip", "{start}");
    assert_eq!(f["session"], session.as_str(), "{start}");
    assert!(
        f["call_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{start}"
    );
    // Numbers masked: the last two digits only.
    assert_eq!(f["from"], "**********99", "{start}");
    assert_eq!(f["to"], "**********23", "{start}");
    assert!(
        !stderr.contains("5550100999"),
        "a caller number in the logs"
    );

    let end = line(&lines, "call ended");
    let f = &end["fields"];
    assert_eq!(f["reason"], "caller-hangup", "{end}");
    let duration = f["duration_ms"].as_u64().expect("duration_ms a number");
    let talk = f["talk_ms"].as_u64().expect("talk_ms a number");
    assert!(talk <= duration, "{end}");
    assert!(duration < 30_000, "{end}");
    // The call's span names the call on the end line too.
    assert_eq!(end["span"]["session"], session.as_str(), "{end}");
    assert_eq!(end["span"]["direction"], "inbound", "{end}");
    match &f["sip_status"] {
        Value::Null => {}
        Value::Number(n) => assert!(n.as_u64().is_some_and(|s| (100..700).contains(&s))),
        other => panic!("sip_status {other} is neither absent nor a number"),
    }

    // The machine's actions are logged by name.
    let actions: Vec<&str> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "action")
        .filter_map(|l| l["fields"]["action"].as_str())
        .collect();
    assert!(actions.contains(&"Answer"), "{actions:?}");
    assert!(actions.contains(&"WriteStoreEnd"), "{actions:?}");

    let stopped = line(&lines, "SIP driver stopped");
    assert!(
        stopped["fields"]["datagrams"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{stopped}"
    );
}

#[test]
fn text_logs_to_a_pipe_carry_no_escape_codes() {
    let mut agent = Agent::start(Opts::default());
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(20));
    let stderr = agent.stderr();
    assert!(stderr.contains("agent up"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in text logs:\n{stderr}"
    );
}
