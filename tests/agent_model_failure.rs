//! End-to-end: the model refuses setup (a mock Gemini Live server in the
//! test process closes every setup with 1008). With
//! `calls.on_model_failure = "answer-then-hangup"` the caller is answered
//! and then hung up on politely; with `"reject"` the INVITE gets 503.
//! Either way the session is `failed` with reason `model-failure`, and the
//! fake API key never reaches the logs, even at trace level.

mod support_agent;

use std::time::Duration;

use callbridge_crm_store::{EndReason, SessionState};
use callbridge_llm_mock::gemini::{GeminiScript, SetupReply};
use support_agent::media::MockModel;
use support_agent::sipp::Sipp;
use support_agent::{Agent, FAKE_GEMINI_KEY, Model, Opts};

fn refusing_model() -> MockModel {
    MockModel::start(GeminiScript {
        setup: SetupReply::Close {
            code: 1008,
            reason: "API key not valid. Please pass a valid API key.".into(),
        },
        ..GeminiScript::default()
    })
}

fn agent_for(model: &MockModel, policy: &'static str) -> Agent {
    Agent::start(Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        on_model_failure: policy,
        log_level: "trace",
        ..Opts::default()
    })
}

fn assert_failed_for_the_model(agent: &Agent) {
    let sessions = agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = &sessions[0];
    println!(
        "model refused: state={} reason={:?} sip_status={:?}",
        s.state.as_str(),
        s.end_reason,
        s.sip_status
    );
    assert_eq!(s.state, SessionState::Failed, "{s:?}");
    assert_eq!(s.end_reason, Some(EndReason::ModelFailure), "{s:?}");
    agent.wait_idle(Duration::from_secs(10));
    let logs = agent.stderr();
    assert!(
        !logs.contains(FAKE_GEMINI_KEY),
        "the API key appeared in the agent's logs"
    );
}

#[test]
fn model_refusing_setup_answers_then_hangs_up_politely() {
    let model = refusing_model();
    let agent = agent_for(&model, "answer-then-hangup");
    Sipp::uac("uac_wait_bye.xml", agent.sip)
        .within(Duration::from_secs(30))
        .run()
        .assert_ok("answered, then the agent's BYE");
    assert!(
        model.stats().connections >= 1,
        "the agent never tried the model"
    );
    assert_failed_for_the_model(&agent);
}

#[test]
fn model_refusing_setup_rejects_with_503_when_configured() {
    let model = refusing_model();
    let agent = agent_for(&model, "reject");
    Sipp::uac("uac_rejected_503.xml", agent.sip)
        .within(Duration::from_secs(30))
        .run()
        .assert_ok("INVITE rejected 503");
    assert_failed_for_the_model(&agent);
    let s = &agent.sessions()[0];
    assert!(s.answered_at.is_none(), "{s:?}");
}
