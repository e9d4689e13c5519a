//! End-to-end: outbound calls through a trunk that challenges the INVITE
//! (RFC 3261 section 22.2). The real `agent` runs with `[sip.trunk]`
//! pointing at a sipp UAS (`tests/sipp/agent/uas_trunk_auth_401.xml`),
//! which takes the agent's REGISTER, answers the INVITE with 401 and
//! checks the retried INVITE's Authorization with sipp's `verifyauth`.
//! With the right password the call is answered and hung up; with a wrong
//! one it ends `failed` with SIP status 401 and an `auth_failed` event,
//! after exactly one retry. A second scenario (`uas_trunk_auth_407.xml`)
//! challenges with 407 and no qop; sipp cannot verify Proxy-Authorization
//! itself, so it logs the digest's inputs and this test recomputes it.

mod support_agent;

use std::time::Duration;

use callbridge_api::{CallAccepted, CallStatus};
use callbridge_crm_store::EventKind;
use callbridge_sip::digest::{Algorithm, request_digest};
use serde_json::json;
use support_agent::sipp::Sipp;
use support_agent::{Agent, Opts};

const USER: &str = "callbridge-e2e";
/// The password the scenario's `verifyauth` expects.
const PASSWORD: &str = "e2e-trunk-secret";

fn agent_for(trunk: &Sipp, password: &str) -> Agent {
    Agent::start(Opts {
        // No outbound.target: calls go to the trunk, with its credentials.
        trunk: Some((trunk.addr(), USER)),
        env: vec![(
            "CALLBRIDGE_SIP_TRUNK_PASSWORD".to_owned(),
            password.to_owned(),
        )],
        log_level: "debug",
        ..Opts::default()
    })
}

fn call_status(agent: &Agent, id: &str) -> CallStatus {
    let r = agent.request("GET", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 200, "GET /api/calls/{id}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("CallStatus: {e}: {}", r.text()))
}

fn place_call(agent: &Agent) -> String {
    let r = agent.request("POST", "/api/calls", Some(&json!({"to": "+15550100777"})));
    assert_eq!(r.status, 202, "POST /api/calls: {}", r.text());
    let accepted: CallAccepted = serde_json::from_slice(&r.body).unwrap();
    accepted.id
}

fn ended(agent: &Agent, id: &str) -> CallStatus {
    agent.wait_for("the call to end", Duration::from_secs(15), || {
        let st = call_status(agent, id);
        (!st.live && st.ended_at.is_some()).then_some(st)
    })
}

#[test]
fn a_challenged_invite_is_retried_with_credentials_sipp_verifies_and_the_call_is_answered() {
    let trunk = Sipp::uas("uas_trunk_auth_401.xml")
        .arg("-m")
        .arg("2")
        .within(Duration::from_secs(40));
    let sipp = trunk.spawn();
    let agent = agent_for(&trunk, PASSWORD);
    let id = place_call(&agent);
    agent.wait_for("the trunk to answer", Duration::from_secs(15), || {
        let st = call_status(&agent, &id);
        assert!(st.live || st.end_reason.is_none(), "ended early: {st:?}");
        matches!(st.state.as_str(), "answered" | "active").then_some(())
    });
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
    let run = sipp.finish();
    run.assert_ok("trunk: REGISTER, 401, verified INVITE, answer, BYE");
    assert_eq!(run.successful_calls(), Some(2), "the REGISTER and the call");
    let st = ended(&agent, &id);
    assert_eq!(st.state, "ended", "{st:?}");
    assert!(st.answered_at.is_some(), "{st:?}");
    let log = agent.stderr();
    assert!(
        !log.contains(PASSWORD),
        "the trunk password reached the log"
    );
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_407_from_the_trunk_proxy_is_answered_with_a_correct_proxy_authorization() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("sipp-actions.log");
    let trunk = Sipp::uas("uas_trunk_auth_407.xml")
        .arg("-m")
        .arg("2")
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(log.to_str().unwrap())
        .within(Duration::from_secs(40));
    let sipp = trunk.spawn();
    let agent = agent_for(&trunk, PASSWORD);
    let id = place_call(&agent);
    agent.wait_for("the trunk to answer", Duration::from_secs(15), || {
        let st = call_status(&agent, &id);
        assert!(st.live || st.end_reason.is_none(), "ended early: {st:?}");
        matches!(st.state.as_str(), "answered" | "active").then_some(())
    });
    let r = agent.request("DELETE", &format!("/api/calls/{id}"), None);
    assert_eq!(r.status, 202, "DELETE /api/calls/{id}: {}", r.text());
    sipp.finish()
        .assert_ok("trunk: REGISTER, 407, INVITE with Proxy-Authorization, answer, BYE");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.contains("proxy-authorization "))
        .unwrap_or_else(|| panic!("sipp logged no Proxy-Authorization: {text:?}"));
    let field = |name: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let (nonce, uri, response) = (field("nonce"), field("uri"), field("response"));
    assert!(nonce.starts_with("p-nonce-"), "{line}");
    assert_eq!(field("qop"), "", "no qop offered, none answered: {line}");
    let expect = request_digest(
        Algorithm::Md5,
        USER,
        "proxy.e2e",
        PASSWORD,
        &nonce,
        "INVITE",
        &uri,
        None,
    );
    assert_eq!(response, expect, "{line}");
    assert_eq!(ended(&agent, &id).state, "ended");
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn a_wrong_trunk_password_fails_the_call_with_401_after_one_retry() {
    let trunk = Sipp::uas("uas_trunk_auth_401.xml")
        .arg("-m")
        .arg("2")
        .within(Duration::from_secs(40));
    let sipp = trunk.spawn();
    let agent = agent_for(&trunk, "not-the-password");
    let id = place_call(&agent);
    // sipp fails its call if a third INVITE arrives within 1.5 s of the
    // second challenge's ACK.
    let run = sipp.finish();
    run.assert_ok("trunk: REGISTER, 401, refused INVITE, 401 again, no third INVITE");
    let st = ended(&agent, &id);
    println!("refused outbound call: {st:?}");
    assert_eq!(st.state, "failed", "{st:?}");
    assert_eq!(st.sip_status, Some(401), "{st:?}");
    assert_eq!(st.end_reason.as_deref(), Some("rejected"), "{st:?}");
    assert!(st.answered_at.is_none(), "{st:?}");
    let record = agent.store().load_session(id.parse().unwrap()).unwrap();
    assert!(
        record
            .events
            .iter()
            .any(|e| e.kind == EventKind::Sip && e.detail.get("auth_failed").is_some()),
        "no auth_failed event: {:?}",
        record.events
    );
    let log = agent.stderr();
    assert!(log.contains("not authorized"), "no log line says why");
    assert!(
        !log.contains("not-the-password"),
        "the password reached the log"
    );
    agent.wait_idle(Duration::from_secs(10));
}
