//! End-to-end: a model provider per routing profile (issue 23) in the
//! real `agent` binary. `model.provider` is Gemini (a mock), the `live`
//! profile runs GPT-Live (another mock) through `model.providers`; one
//! call to each number, and each mock sees exactly its call; the session
//! rows name their providers. Without the other provider's key, a
//! `PUT /api/profiles` naming it is refused with the other errors.

mod support_agent;

use std::time::Duration;

use callbridge_llm_mock::gemini::GeminiScript;
use callbridge_llm_mock::gpt_live::GptLiveScript;
use serde_json::json;
use support_agent::media::{MockLive, MockModel};
use support_agent::sipp::Sipp;
use support_agent::{Agent, FAKE_OPENAI_KEY, Model, Opts};

const LIVE: &str = "+15550100200";
const DESK: &str = "+15550100300";

const PROFILES: &str = r#"
[[profiles]]
name = "live"
provider = "gpt-live"
[profiles.match]
exact = ["+15550100200"]
"#;

fn opts(gemini: &MockModel, providers: String, key: bool, extra: &str) -> Opts {
    let mut env = vec![("CALLBRIDGE_MODEL_PROVIDERS".to_owned(), providers)];
    if key {
        env.push(("OPENAI_API_KEY".to_owned(), FAKE_OPENAI_KEY.to_owned()));
    }
    Opts {
        model: Model::Gemini {
            endpoint: gemini.url(),
        },
        env,
        extra_toml: extra.into(),
        ..Opts::default()
    }
}

fn call(agent: &Agent, called: &str) {
    Sipp::uac("uac_profile.xml", agent.sip)
        .key("called", called)
        .key("customer", "C-1")
        .pause_ms(1500)
        .within(Duration::from_secs(20))
        .run()
        .assert_ok("a call to a routed number");
}

#[test]
fn two_profiles_on_two_providers_each_mock_sees_exactly_its_call() {
    let gemini = MockModel::start(GeminiScript::default());
    let live = MockLive::start(GptLiveScript {
        expect_api_key: Some(FAKE_OPENAI_KEY.into()),
        ..GptLiveScript::default()
    });
    let agent = Agent::start(opts(
        &gemini,
        format!("gpt-live={}", live.url()),
        true,
        PROFILES,
    ));
    call(&agent, LIVE);
    agent.wait_sessions_terminal(1, Duration::from_secs(10));
    assert_eq!(live.stats().setups, 1, "{:?}", live.stats());
    assert_eq!(gemini.stats().setups, 0, "{:?}", gemini.stats());
    call(&agent, DESK);
    let sessions = agent.wait_sessions_terminal(2, Duration::from_secs(10));
    assert_eq!(live.stats().setups, 1, "GPT-Live saw only its call");
    assert_eq!(gemini.stats().setups, 1, "Gemini saw only its call");
    assert!(
        live.stats().violations.is_empty(),
        "{:?}",
        live.stats().violations
    );
    assert!(gemini.stats().violations.is_empty());
    // The GPT-Live leg: its default model, G.711 both ways.
    let log = live.log();
    assert_eq!(log.starts[0].model, "gpt-live-1");

    let mut rows: Vec<(String, String)> = sessions
        .iter()
        .map(|s| {
            let to =
                s.to.as_ref()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
            (to, s.model_provider.clone().unwrap_or_default())
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            (LIVE.to_owned(), "gpt-live".to_owned()),
            (DESK.to_owned(), "gemini".to_owned()),
        ]
    );
    assert!(
        !agent.stderr().contains(FAKE_OPENAI_KEY),
        "the key reached the log"
    );
    agent.wait_idle(Duration::from_secs(10));
}

#[test]
fn without_its_key_a_profile_naming_another_provider_is_refused_with_the_others() {
    let gemini = MockModel::start(GeminiScript::default());
    let agent = Agent::start(opts(&gemini, "gpt-live".into(), false, ""));
    let body = json!({"profiles": [
        {"name": "live", "provider": "gpt-live"},
        {"name": "bad", "provider": "nope"},
    ]});
    let r = agent.request("PUT", "/api/profiles", Some(&body));
    assert_eq!(r.status, 400, "{}", r.text());
    let text = r.text();
    assert!(text.contains("OPENAI_API_KEY is not set"), "{text}");
    assert!(text.contains("not a provider of this agent"), "{text}");
    // Nothing changed; a set naming only the agent's own provider is taken.
    let ok = json!({"profiles": [{"name": "desk", "provider": "gemini"}]});
    let r = agent.request("PUT", "/api/profiles", Some(&ok));
    assert!(r.status < 300, "{} {}", r.status, r.text());
}
