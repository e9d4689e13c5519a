//! End-to-end: GPT-Live client delegations answered by the operator's
//! HTTP tools (issues 18 and 23) in the real `agent` binary. The strict
//! GPT-Live mock delegates work to the client after the caller's words
//! that name a configured tool; the agent maps the delegation to it, the
//! tool server here verifies the request's signature and answers, and
//! the answer (slow: the filler starts first) reaches the model as
//! `session.commentary.append` with the delegation's id. A delegation naming no tool is declined with its
//! reason.

mod support_agent;

use std::sync::mpsc;
use std::time::Duration;

use callbridge_crm_store::EventKind;
use callbridge_llm_mock::gpt_live::GptLiveScript;
use serde_json::Value;
use support_agent::media::MockLive;
use support_agent::sipp::Sipp;
use support_agent::tools::{self, ToolRequest};
use support_agent::{Agent, Model, Opts};

const SECRET: &str = "e2e-delegation-secret-0123456789";

/// How long the tool takes: past `filler_after_ms` (300), so the caller
/// hears the filler while a delegation runs, as for any tool call.
const TOOL_DELAY: Duration = Duration::from_millis(1500);

/// A one-request tool server (signature checked) answering after
/// [`TOOL_DELAY`].
fn tool_server() -> (u16, mpsc::Receiver<ToolRequest>) {
    tools::tool_server(SECRET, TOOL_DELAY)
}

/// A tool meant for delegations: its `task` argument gets the task text.
fn tools_toml(port: u16) -> String {
    format!(
        r#"
[[tools]]
name = "lookup_order"
description = "Looks up the state of an order."
url = "http://127.0.0.1:{port}/tool"
timeout = "10s"
secret_env = "E2E_TOOL_SECRET"
filler_after_ms = 300
[tools.parameters]
type = "object"
required = ["task"]
[tools.parameters.properties.task]
type = "string"
description = "The caller's request."
"#
    )
}

fn call_with(task: &str, port: u16) -> (MockLive, Agent) {
    let mock = MockLive::start(GptLiveScript {
        client_delegation_at_turn: Some(1),
        delegation_task: Some(task.into()),
        ..GptLiveScript::default()
    });
    let agent = Agent::start(Opts {
        model: Model::GptLive {
            endpoint: mock.url(),
            delegation_model: None,
        },
        env: vec![("E2E_TOOL_SECRET".into(), SECRET.into())],
        extra_toml: tools_toml(port),
        ..Opts::default()
    });
    Sipp::uac("uac_speak.xml", agent.sip)
        .pause_ms(6000)
        .within(Duration::from_secs(30))
        .run()
        .assert_ok("a GPT-Live call with a client delegation");
    (mock, agent)
}

#[test]
fn a_client_delegation_naming_a_configured_tool_gets_its_signed_answer() {
    let (port, seen) = tool_server();
    let task = "Where is my order 42? Please lookup order.";
    let (mock, agent) = call_with(task, port);
    let ToolRequest {
        signature_ok, body, ..
    } = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the tool server got a request");
    assert!(signature_ok, "bad signature; body {body}");
    assert_eq!(body["tool"], "lookup_order", "{body}");
    // The task text: the words since the call began (the greeting, then
    // the caller's).
    let sent = body["arguments"]["task"].as_str().unwrap_or_default();
    assert!(sent.ends_with(task), "{body}");
    assert_eq!(body["call"]["direction"], "inbound");

    let log = mock.log();
    // The tools were named in the instructions: no declarations exist
    // under client delegation.
    assert!(log.starts[0].delegation.is_none(), "{log:?}");
    let instructions = log.starts[0].instructions.clone().unwrap_or_default();
    assert!(instructions.contains("- lookup order: "), "{instructions}");
    // The answer went back as commentary for the delegation.
    assert_eq!(log.commentary.len(), 1, "{log:?}");
    let (content, id) = &log.commentary[0];
    assert!(content.contains("shipped"), "{content}");
    assert!(
        id.as_deref().is_some_and(|i| i.starts_with("del_")),
        "{id:?}"
    );
    assert!(log.function_outputs.is_empty() && log.response_creates == 0);
    let stats = mock.stats();
    assert!(stats.violations.is_empty(), "{:#?}", stats.violations);

    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(10));
    let record = agent.store().load_session(sessions[0].id).unwrap();
    let tool_events: Vec<&Value> = record
        .events
        .iter()
        .filter(|e| e.kind == EventKind::ToolCall)
        .map(|e| &e.detail)
        .collect();
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
    // The slow tool's filler started, as for a Gemini/OpenAI call.
    assert!(
        record
            .events
            .iter()
            .any(|e| e.detail.get("tool_filler") == Some(&Value::from("lookup_order"))),
        "no filler event"
    );
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_client_delegation_naming_no_tool_is_declined_with_the_reason() {
    let (port, seen) = tool_server();
    let (mock, agent) = call_with("What will the weather be tomorrow?", port);
    assert!(
        seen.recv_timeout(Duration::from_millis(500)).is_err(),
        "no tool is called"
    );
    let log = mock.log();
    let declined: Vec<&(String, Option<String>)> = log
        .instructions
        .iter()
        .filter(|(_, d)| d.is_some())
        .collect();
    assert_eq!(declined.len(), 1, "{log:?}");
    assert!(
        declined[0].0.contains("cannot carry out that task")
            && declined[0].0.contains("names none of this line's tools"),
        "{declined:?}"
    );
    assert!(log.commentary.is_empty(), "{log:?}");
    let stats = mock.stats();
    assert!(stats.violations.is_empty(), "{:#?}", stats.violations);
    agent.wait_sessions_terminal(1, Duration::from_secs(10));
    agent.wait_idle(Duration::from_secs(10));
}
