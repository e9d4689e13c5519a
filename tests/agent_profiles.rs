//! End-to-end: routing profiles (issue 23) in the real `agent` binary.
//! Two called numbers reach two profiles; the profile's prompt template
//! fills from the call and from a kept `X-` header; the session row and
//! the API show the profile and the kept headers (and not the others);
//! `PUT /api/profiles` refuses a bad set whole with every error named,
//! applies a good one to the next call, and keeps it in the profiles file
//! that a restarted agent reads.

mod support_agent;

use std::time::Duration;

use callbridge_llm_mock::gemini::GeminiScript;
use serde_json::{Value, json};
use support_agent::media::MockModel;
use support_agent::sipp::Sipp;
use support_agent::{Agent, Model, Opts};

const PROFILES: &str = r#"
[routing]
default_profile = "front-desk"

[[profiles]]
name = "front-desk"
system_prompt = "Front desk for {{ called }}."

[[profiles]]
name = "sales"
system_prompt = "Sales line. Customer {{ sip[\"X-Customer-Id\"] | default(\"unknown\") }} calls {{ called }} from {{ caller }}."
[profiles.match]
exact = ["+15550100123"]

[[profiles]]
name = "support"
system_prompt = "Support line for {{ called }}."
record = false
[profiles.match]
prefix = ["+1555020"]
"#;

fn call(agent: &Agent, called: &str, customer: &str) {
    Sipp::uac("uac_profile.xml", agent.sip)
        .key("called", called)
        .key("customer", customer)
        .pause_ms(1500)
        .within(Duration::from_secs(20))
        .run()
        .assert_ok("a call to a routed number");
}

fn opts(model: &MockModel, extra: &str) -> Opts {
    Opts {
        model: Model::Gemini {
            endpoint: model.url(),
        },
        sip_extra: "keep_headers = [\"X-Customer-Id\"]\n".into(),
        extra_toml: extra.into(),
        ..Opts::default()
    }
}

fn session_of(agent: &Agent, to: &str) -> Value {
    let s = agent
        .sessions()
        .into_iter()
        .find(|s| s.to.as_ref().is_some_and(|p| p.as_str() == to))
        .unwrap_or_else(|| panic!("no session to {to}"));
    agent.get_json(&format!("/api/sessions/{}", s.id))["session"].clone()
}

#[test]
fn two_called_numbers_take_two_profiles_and_a_template_fills_from_an_x_header() {
    let model = MockModel::start(GeminiScript::default());
    let agent = Agent::start(opts(&model, PROFILES));
    call(&agent, "+15550100123", "C-4242");
    call(&agent, "+15550200777", "C-1");
    call(&agent, "+15550300000", "C-2");
    agent.wait_sessions_terminal(3, Duration::from_secs(15));

    let sales = session_of(&agent, "+15550100123");
    assert_eq!(sales["profile"], "sales", "{sales}");
    assert_eq!(
        sales["sip_headers"],
        json!({"X-Customer-Id": "C-4242"}),
        "only the kept header is stored: {sales}"
    );
    assert!(sales["recording_bytes"].is_u64(), "{sales}");
    let support = session_of(&agent, "+15550200777");
    assert_eq!(support["profile"], "support", "{support}");
    assert!(
        support["recording_bytes"].is_null(),
        "record = false: {support}"
    );
    let desk = session_of(&agent, "+15550300000");
    assert_eq!(desk["profile"], "front-desk", "{desk}");

    // What each model session was told.
    let told = model.stats().instructions;
    println!("instructions: {told:#?}");
    assert!(
        told.iter()
            .any(|i| i
                .starts_with("Sales line. Customer C-4242 calls +15550100123 from +15550100999.")),
        "{told:#?}"
    );
    assert!(
        told.iter()
            .any(|i| i.starts_with("Support line for +15550200777.")),
        "{told:#?}"
    );
    assert!(
        told.iter()
            .any(|i| i.starts_with("Front desk for +15550300000.")),
        "{told:#?}"
    );
    assert!(
        !told.iter().any(|i| i.contains("{{")),
        "a template's source reached the model: {told:#?}"
    );
    // The header that is not kept is nowhere in the store.
    let db = std::fs::read(&agent.db).unwrap();
    assert!(
        !db.windows(12).any(|w| w == b"secret-value"),
        "an unkept header's value is in the store"
    );
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn put_profiles_is_refused_whole_or_applied_to_the_next_call_and_kept_across_a_restart() {
    let model = MockModel::start(GeminiScript::default());
    let agent = Agent::start(opts(&model, PROFILES));

    let got = agent.get_json("/api/profiles");
    assert_eq!(got["default_profile"], "front-desk", "{got}");
    assert_eq!(got["profiles"].as_array().map(Vec::len), Some(3), "{got}");

    // Two bad profiles: every error named, nothing changed.
    let bad = json!({
        "default_profile": "nobody",
        "profiles": [
            {"name": "a", "system_prompt": "Hi {{ calller }}"},
            {"name": "b", "tools": ["launch"], "match": {"pattern": ["("]}},
        ]
    });
    let r = agent.request("PUT", "/api/profiles", Some(&bad));
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    let fields: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["profile"].as_str().unwrap().to_owned(),
                e["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("a", "system_prompt"),
        ("b", "tools"),
        ("b", "match.pattern[0]"),
        ("nobody", "default_profile"),
    ] {
        assert!(
            fields.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not named in {body}"
        );
    }
    assert_eq!(
        agent.get_json("/api/profiles"),
        got,
        "a refused PUT changed the set"
    );

    // A good set: the next call takes it.
    let good = json!({
        "profiles": [
            {"name": "night", "system_prompt": "Night line for {{ called }}.",
             "match": {"prefix": ["+1555"]}},
        ]
    });
    let r = agent.request("PUT", "/api/profiles", Some(&good));
    assert_eq!(r.status, 200, "{}", r.text());
    call(&agent, "+15550100123", "C-9");
    agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = session_of(&agent, "+15550100123");
    assert_eq!(s["profile"], "night", "{s}");
    assert!(
        model
            .stats()
            .instructions
            .iter()
            .any(|i| i.starts_with("Night line for +15550100123.")),
        "{:#?}",
        model.stats().instructions
    );

    // Kept in the profiles file beside agent.toml: an agent started on it
    // has the PUT set, not its own [[profiles]].
    let file = agent.config.with_file_name("profiles.json");
    assert!(file.exists(), "no {}", file.display());
    let again = Agent::start(opts(
        &model,
        &PROFILES.replace(
            "[routing]\n",
            &format!(
                "[routing]\nprofiles_file = {:?}\n",
                file.display().to_string()
            ),
        ),
    ));
    let kept = again.get_json("/api/profiles");
    assert_eq!(kept["profiles"][0]["name"], "night", "{kept}");
    assert_eq!(kept["profiles"].as_array().map(Vec::len), Some(1), "{kept}");
    agent.wait_idle(Duration::from_secs(10));
}

// --- issue 23 (prof2): named source trunks ---
#[test]
fn a_profile_takes_the_calls_of_its_named_source_trunk_only() {
    // sipp calls from 127.0.0.1: trunk "local"; "remote" is elsewhere.
    let extra = r#"
[[trunks]]
name = "remote"
sources = ["192.0.2.0/24"]

[[trunks]]
name = "local"
sources = ["127.0.0.1"]

[[profiles]]
name = "from-remote"
system_prompt = "Remote trunk."
[profiles.match]
exact = ["+15550100123"]
source_trunk = "remote"

[[profiles]]
name = "from-local"
system_prompt = "Local trunk."
[profiles.match]
source_trunk = "local"
"#;
    let model = MockModel::start(GeminiScript::default());
    let agent = Agent::start(opts(&model, extra));
    call(&agent, "+15550100123", "C-1");
    agent.wait_sessions_terminal(1, Duration::from_secs(15));
    let s = session_of(&agent, "+15550100123");
    assert_eq!(
        s["profile"], "from-local",
        "the exact number is the remote trunk's only: {s}"
    );
    let told = model.stats().instructions;
    assert!(
        told.iter().any(|i| i.starts_with("Local trunk.")),
        "{told:#?}"
    );
    agent.wait_idle(Duration::from_secs(10));
}
// --- end issue 23 (prof2) ---
