//! End-to-end: outbound calls placed with `POST /api/calls` toward a sipp
//! UAS (the agent's `outbound.target`): one that answers (the call runs
//! and is hung up with `DELETE /api/calls/{id}`) and one that is busy (486).

mod support_agent;

use std::time::Duration;

use callbridge_api::{CallAccepted, CallStatus};
use serde_json::json;
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

fn call_status(agent: &Agent, id: &str) -> CallStatus {
    let r = agent.request("GET", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 200, "GET /api/calls/{id}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("CallStatus: {e}: {}", r.text()))
}

fn place_call(agent: &Agent) -> String {
    let r = agent.request("POST", "/api/calls", Some(&json!({"to": "+15550100777"})));
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    let accepted: CallAccepted = serde_json::from_slice(&r.body).unwrap();
    // The row is in the store before the answer.
    let id = accepted.id.parse().expect("a session id");
    agent
        .store()
        .get_session(id)
        .expect("the row exists at 202");
    accepted.id
}

#[test]
fn outbound_call_to_an_answering_uas_runs_ends_and_is_stored() {
    let uas = Sipp::uas("uas_answer.xml").within(Duration::from_secs(30));
    let sipp = uas.spawn();
    let agent = Agent::start(Opts {
        outbound_target: Some(uas.addr()),
        ..Opts::default()
    });
    let id = place_call(&agent);
    agent.wait_for("the callee to answer", Duration::from_secs(10), || {
        let st = call_status(&agent, &id);
        assert!(st.live || st.end_reason.is_none(), "ended early: {st:?}");
        matches!(st.state.as_str(), "answered" | "active").then_some(())
    });
    std::thread::sleep(Duration::from_millis(800));
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
    sipp.finish().assert_ok("UAS answers, gets our BYE");
    let st = agent.wait_for("the call to end", Duration::from_secs(10), || {
        let st = call_status(&agent, &id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    });
    println!("answered outbound call: {st:?}");
    assert_eq!(st.direction, "outbound");
    assert_eq!(st.transport.as_deref(), Some("sip"), "{st:?}");
    assert_eq!(st.state, "ended", "{st:?}");
    assert!(st.answered_at.is_some(), "{st:?}");
    assert!(st.duration_ms.unwrap_or(0) >= 500, "{st:?}");
    assert_eq!(st.outcome.as_deref(), Some("completed"), "{st:?}");
    let s = agent.store().get_session(id.parse().unwrap()).unwrap();
    assert!(s.recording_path.is_some(), "{s:?}");
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn outbound_call_to_a_busy_uas_fails_with_486() {
    let uas = Sipp::uas("uas_busy.xml").within(Duration::from_secs(30));
    let sipp = uas.spawn();
    let agent = Agent::start(Opts {
        outbound_target: Some(uas.addr()),
        ..Opts::default()
    });
    let id = place_call(&agent);
    sipp.finish().assert_ok("UAS answers 486");
    let st = agent.wait_for("the call to fail", Duration::from_secs(10), || {
        let st = call_status(&agent, &id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    });
    println!("busy outbound call: {st:?}");
    assert_eq!(st.state, "failed", "{st:?}");
    assert_eq!(st.sip_status, Some(486), "{st:?}");
    assert_eq!(st.outcome.as_deref(), Some("busy"), "{st:?}");
    assert!(st.answered_at.is_none(), "{st:?}");
    agent.wait_idle(Duration::from_secs(10));
}
