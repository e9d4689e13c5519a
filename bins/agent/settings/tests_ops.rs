//! Unit tests of the issue 22 keys: `[summary]`, `[retention]` and the
//! owners of inbound calls.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::load::from_text;

const BASE: &str = r#"
[sip]
bind = "127.0.0.1:0"
[model]
provider = "mock"
[store]
database = "db.sqlite"
recordings_dir = "rec"
"#;

fn load(extra: &str, env: &[(&str, &str)]) -> Result<(super::Settings, super::Secrets), String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    from_text(
        Path::new("agent.toml"),
        &format!("{BASE}{extra}"),
        &env,
        Path::new("/etc/cb"),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn summaries_default_to_on_with_the_call_models_provider() {
    let (s, secrets) = load("", &[]).unwrap();
    assert!(s.summary.enabled);
    assert_eq!(s.summary.provider, None);
    assert_eq!(secrets.summary_key, None);
}

#[test]
fn a_summary_provider_of_its_own_needs_its_own_key_and_a_known_name() {
    let extra = "[summary]\nprovider = \"openai\"\nmodel = \"gpt-4.1-mini\"\nendpoint = \"http://127.0.0.1:9\"\n";
    let e = load(extra, &[]).unwrap_err();
    assert!(e.contains("OPENAI_API_KEY"), "{e}");
    let (s, secrets) = load(extra, &[("OPENAI_API_KEY", "sk-x")]).unwrap();
    assert_eq!(
        s.summary.provider,
        Some(callbridge_llm_bridge::Provider::OpenAi)
    );
    assert_eq!(s.summary.model.as_deref(), Some("gpt-4.1-mini"));
    assert_eq!(s.summary.endpoint.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(secrets.summary_key.as_deref(), Some("sk-x"));
    assert!(!format!("{secrets:?}").contains("sk-x"), "Debug redacts it");
    // Off: no key needed.
    let (s, _) = load("[summary]\nenabled = false\nprovider = \"openai\"\n", &[]).unwrap();
    assert!(!s.summary.enabled);
    let e = load("[summary]\nprovider = \"claude\"\n", &[]).unwrap_err();
    assert!(
        e.contains("summary.provider") && e.contains("\"gemini\" or \"openai\""),
        "{e}"
    );
    let e = load("[summary]\nendpoint = \"ftp://x\"\n", &[]).unwrap_err();
    assert!(e.contains("summary.endpoint"), "{e}");
}

#[test]
fn retention_takes_durations_or_off_and_refuses_the_rest() {
    let (s, _) = load(
        "[retention]\nrecordings = \"90d\"\ntranscripts = \"1y\"\nsessions = \"off\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        s.retention.recordings,
        Some(Duration::from_secs(90 * 86_400))
    );
    assert!(s.retention.transcripts.is_some());
    assert_eq!(s.retention.sessions, None);
    let (s, _) = load("", &[("CALLBRIDGE_RETENTION_SESSIONS", "30d")]).unwrap();
    assert_eq!(s.retention.sessions, Some(Duration::from_secs(30 * 86_400)));
    let e = load("[retention]\nrecordings = \"forever\"\n", &[]).unwrap_err();
    assert!(e.contains("retention.recordings"), "{e}");
}

#[test]
fn inbound_owners_are_called_number_equals_user_name() {
    let (s, _) = load(
        "[calls]\ndefault_owner = \"support\"\ninbound_owners = [\"+4930123456=sales\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.default_owner.as_deref(), Some("support"));
    assert_eq!(
        s.inbound_owners,
        vec![("+4930123456".to_owned(), "sales".to_owned())]
    );
    let e = load("[calls]\ninbound_owners = [\"+4930123456\"]\n", &[]).unwrap_err();
    assert!(e.contains("calls.inbound_owners"), "{e}");
}
