//! End-to-end (issue 22): `agent session delete`, `agent export --phone`,
//! `agent config show` and `check-config --user` against the real binary,
//! beside a running agent; `/openapi.json` from the running agent.

mod support_agent;

use std::time::Duration;

use callbridge_crm_store::jiff::Timestamp;
use callbridge_crm_store::{
    EndReason, Finish, NewSession, NewTurn, Party, Sensitive, SessionId, SessionUpdate, Speaker,
    Store,
};
use serde_json::Value;
use support_agent::http::request;
use support_agent::{Agent, Opts, run_agent_cmd};

/// Runs `agent ARGS --config <the agent's>`; (status, stdout, stderr).
fn agent_cmd(agent: &Agent, args: &[&str]) -> (Option<i32>, String, String) {
    let cfg = agent.config.to_str().unwrap();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", cfg]);
    let out = run_agent_cmd(&all, &Opts::default(), Duration::from_secs(20));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An ended call from `from` with one turn and a recording file.
fn ended_call(agent: &Agent, from: &str) -> (SessionId, std::path::PathBuf) {
    let mut s = Store::open(&agent.db).unwrap();
    let id = SessionId::new_v4();
    let mut n = NewSession::inbound(id, Timestamp::now());
    n.from = Some(Party::new(from).unwrap());
    n.to = Some(Party::new("+4930123456").unwrap());
    s.create_session(&n).unwrap();
    s.append_turns(
        id,
        &[NewTurn {
            seq: 0,
            speaker: Speaker::Caller,
            text: Sensitive::new("I would like my data"),
            start_ms: 0,
            end_ms: Some(1200),
        }],
    )
    .unwrap();
    let wav = agent.recordings.join(format!("{id}.wav"));
    std::fs::write(&wav, b"RIFF").unwrap();
    s.update_session(
        id,
        &SessionUpdate {
            recording: Some((wav.clone(), 4)),
            ..SessionUpdate::default()
        },
    )
    .unwrap();
    s.finish_session(
        id,
        &Finish::ended(EndReason::CallerHangup, Timestamp::now()),
    )
    .unwrap();
    (id, wav)
}

#[test]
fn a_callers_data_is_exported_then_each_call_erased_with_its_recording() {
    let agent = Agent::start(Opts::default());
    let (id, wav) = ended_call(&agent, "+14155550100");
    let (other, _) = ended_call(&agent, "+14155550199");

    let (code, out, err) = agent_cmd(&agent, &["export", "--phone", "+14155550100"]);
    assert_eq!(code, Some(0), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["phone"], "+14155550100");
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "only this caller's calls: {out}");
    assert_eq!(sessions[0]["session"]["id"], id.to_string());
    assert_eq!(sessions[0]["transcript"][0]["text"], "I would like my data");
    let (code, _, err) = agent_cmd(&agent, &["export", "--phone", "12345"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("E.164"), "{err}");

    let (code, out, err) = agent_cmd(&agent, &["session", "delete", &id.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("deleted"), "{out}");
    assert!(!wav.exists(), "the recording file is gone");
    let a = request(
        agent.http,
        "GET",
        &format!("/api/sessions/{id}"),
        Some(&agent.token),
        None,
    )
    .unwrap();
    assert_eq!(a.status, 404, "the running agent no longer shows it");
    let (code, _, err) = agent_cmd(&agent, &["session", "delete", &id.to_string()]);
    assert_eq!(code, Some(1), "a second delete finds nothing: {err}");
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = agent_cmd(&agent, &["session", "delete", "nope"]);
    assert_eq!(code, Some(2), "{err}");
    // The other caller's call is untouched.
    let a = request(
        agent.http,
        "GET",
        &format!("/api/sessions/{other}"),
        Some(&agent.token),
        None,
    )
    .unwrap();
    assert_eq!(a.status, 200);
}

#[test]
fn config_show_names_each_values_origin_and_never_a_secret() {
    let agent = Agent::start(Opts::default());
    let cfg = agent.config.to_str().unwrap();
    let out = run_agent_cmd(
        &["config", "show", "--config", cfg],
        &Opts {
            env: vec![
                ("CALLBRIDGE_LOG_LEVEL".into(), "debug".into()),
                ("GEMINI_API_KEY".into(), "AIza-e2e-secret".into()),
            ],
            ..Opts::default()
        },
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("level = \"debug\"    # env CALLBRIDGE_LOG_LEVEL"),
        "{text}"
    );
    assert!(text.contains(&format!("# file {cfg}")), "{text}");
    assert!(text.contains("# default"), "{text}");
    assert!(!text.contains("AIza-e2e-secret"), "{text}");
}

#[test]
fn check_config_refuses_directories_the_service_user_cannot_write() {
    let agent = Agent::start(Opts::default());
    // `nobody` may not write the test's directories (owned by us, 0700
    // or 0755).
    let (code, out, err) = agent_cmd(&agent, &["check-config", "--user", "nobody"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("user nobody"), "{err}");
    let (code, _, err) = agent_cmd(&agent, &["check-config", "--user", "no-such-user-here"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such user"), "{err}");
    let (code, _, err) = agent_cmd(&agent, &["check-config"]);
    assert_eq!(code, Some(0), "as ourselves all is writable: {err}");
}

#[test]
fn the_running_agent_describes_its_api() {
    let agent = Agent::start(Opts::default());
    let a = request(agent.http, "GET", "/openapi.json", None, None).unwrap();
    assert_eq!(a.status, 200);
    let doc: Value = serde_json::from_slice(&a.body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/sessions/{id}"]["delete"].is_object());
}
