//! `[[profiles]]`, `[routing]` and `sip.keep_headers` (issue 23).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const GOOD: &str = r#"
[sip]
bind = "127.0.0.1:0"
keep_headers = ["X-Customer-Id"]
[model]
provider = "mock"
system_prompt = "Plain {{ text }}."
[transfer]
targets = ["sales=sip:sales@pbx.example"]
[store]
database = "db.sqlite"
[http]
bind = "127.0.0.1:0"
"#;

const PROFILES: &str = r#"
[routing]
default_profile = "desk"

[[profiles]]
name = "desk"
system_prompt = "Desk {{ called }}"

[[profiles]]
name = "sales"
system_prompt = "Customer {{ sip[\"X-Customer-Id\"] }}"
transfer_targets = ["sales"]
max_duration = "10m"
[profiles.match]
exact = ["+100"]
"#;

fn load(text: &str, base: &Path) -> Result<Settings, String> {
    Settings::from_text(Path::new("agent.toml"), text, &BTreeMap::new(), base)
        .map_err(|e| e.to_string())
}

#[test]
fn without_profiles_the_single_prompt_is_the_implicit_default_unchanged() {
    let s = load(GOOD, Path::new("/nonexistent-cb")).unwrap();
    let p = s.routing.profiles.inbound("+100", None);
    assert_eq!(p.name(), "default");
    let ctx = callbridge_session::profile::template::TemplateContext::default();
    assert_eq!(p.render(&ctx, "").0, "Plain {{ text }}.");
    assert_eq!(p.transfer_targets.names(), vec!["sales"]);
    assert_eq!(s.keep_headers, vec!["X-Customer-Id"]);
    let m = s.manager_config(s.session_config(&Secrets::default(), None));
    assert_eq!(m.keep_headers, vec!["X-Customer-Id"]);
    assert!(m.profiles.is_some());
}

#[test]
fn profile_tables_load_and_route() {
    let s = load(&format!("{GOOD}{PROFILES}"), Path::new("/nonexistent-cb")).unwrap();
    let set = &s.routing.profiles;
    assert_eq!(set.inbound("+100", None).name(), "sales");
    assert_eq!(set.inbound("+200", None).name(), "desk");
    assert_eq!(
        set.inbound("+100", None).max_duration,
        std::time::Duration::from_secs(600)
    );
    assert!(!s.routing.from_file);
}

#[test]
fn every_profile_error_is_a_configuration_error_naming_the_profile_and_field() {
    let bad = format!(
        "{GOOD}{}",
        PROFILES
            .replace("Desk {{ called }}", "Desk {{ calld }}")
            .replace("[\"sales\"]", "[\"nowhere\"]")
    );
    let e = load(&bad, Path::new("/nonexistent-cb")).unwrap_err();
    assert!(e.contains("profiles[0].system_prompt"), "{e}");
    assert!(e.contains("profiles[1].transfer_targets"), "{e}");
    // A header that is not kept is an error where it is used.
    let e = load(
        &format!("{GOOD}{PROFILES}").replace("keep_headers = [\"X-Customer-Id\"]", ""),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("profiles[1].system_prompt"), "{e}");
    // An unknown field in a table.
    let e = load(
        &format!("{GOOD}{PROFILES}name2 = 1\n"),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("profiles"), "{e}");
    assert!(e.contains("name2"), "{e}");
    // keep_headers takes X- names only.
    let e = load(
        &GOOD.replace("\"X-Customer-Id\"", "\"Contact\""),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("sip.keep_headers"), "{e}");
}

#[test]
fn the_profiles_file_is_the_set_when_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("profiles.json"),
        r#"{"profiles": [{"name": "night", "match": {"prefix": ["+1"]}}]}"#,
    )
    .unwrap();
    let s = load(&format!("{GOOD}{PROFILES}"), dir.path()).unwrap();
    assert!(s.routing.from_file);
    assert_eq!(s.routing.profiles.inbound("+100", None).name(), "night");
    assert_eq!(s.routing.profiles.specs().len(), 1);
    std::fs::write(
        dir.path().join("profiles.json"),
        r#"{"profiles": [{"name": ""}]}"#,
    )
    .unwrap();
    let e = load(GOOD, dir.path()).unwrap_err();
    assert!(e.contains("profiles[0].name"), "{e}");
    assert!(e.contains("profiles.json"), "{e}");
}

const TOOLS: &str = r#"
[[tools]]
name = "lookup"
description = "Looks an order up."
url = "http://127.0.0.1:9/lookup"
[tools.parameters]
type = "object"
[tools.parameters.properties.order]
type = "string"
"#;

#[test]
fn tools_load_and_profiles_name_them() {
    let text = format!(
        "{GOOD}\n[[profiles]]\nname = \"orders\"\ntools = [\"lookup\", \"collect_digits\"]\n{TOOLS}"
    );
    let s = load(&text, Path::new("/nonexistent-cb")).unwrap();
    let p = s.routing.profiles.outbound("orders").unwrap();
    assert_eq!(p.http_tools.len(), 1);
    assert!(p.collect_digits);
    assert!(!p.end_call);
    // Without [[profiles]], the implicit profile offers every tool.
    let s = load(&format!("{GOOD}{TOOLS}"), Path::new("/nonexistent-cb")).unwrap();
    assert_eq!(s.routing.profiles.inbound("+1", None).http_tools.len(), 1);
}

#[test]
fn a_bad_tool_is_named_and_a_profile_naming_an_unknown_tool_too() {
    let e = load(
        &format!(
            "{GOOD}{}",
            TOOLS.replace("http://127.0.0.1:9/lookup", "ftp://x")
        ),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("tools[0].url"), "{e}");
    let e = load(
        &format!("{GOOD}\n[[profiles]]\nname = \"p\"\ntools = [\"nope\"]\n{TOOLS}"),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("profiles[0].tools"), "{e}");
}

// --- deleg (issue 23): a provider per profile ---

const OTHER_PROVIDER: &str = r#"
[[profiles]]
name = "live"
provider = "gpt-live"
[profiles.match]
exact = ["+200"]
"#;

fn with_providers(providers: &str) -> String {
    GOOD.replace(
        "[model]\nprovider = \"mock\"\n",
        &format!("[model]\nprovider = \"mock\"\nproviders = {providers}\n"),
    ) + OTHER_PROVIDER
}

#[test]
fn a_profile_may_choose_another_configured_provider_with_its_key() {
    let text = with_providers(r#"["gpt-live=ws://127.0.0.1:9/v1/live/sessions"]"#);
    let base = Path::new("/nonexistent-cb");
    let env: BTreeMap<String, String> =
        [("OPENAI_API_KEY".to_owned(), "sk-test".to_owned())].into();
    let (s, _) = super::load::from_text(Path::new("agent.toml"), &text, &env, base).unwrap();
    let p = s.routing.profiles.inbound("+200", None);
    assert_eq!(p.name(), "live");
    let c = p.client.as_ref().expect("the GPT-Live client");
    assert_eq!(c.name, "gpt-live");
    assert_eq!(
        c.endpoint.as_deref(),
        Some("ws://127.0.0.1:9/v1/live/sessions")
    );
    assert!(c.api_key.is_some());
    assert_eq!(p.model, callbridge_llm_bridge::gpt_live::DEFAULT_MODEL);
    // The default profile keeps the agent's own provider.
    assert!(s.routing.profiles.inbound("+999", None).client.is_none());
    assert_eq!(s.other_providers.len(), 1);
}

#[test]
fn a_profile_naming_a_provider_without_its_key_is_refused_with_the_others_errors() {
    let text = with_providers(r#"["gpt-live"]"#);
    let base = Path::new("/nonexistent-cb");
    let e = super::load::from_text(Path::new("agent.toml"), &text, &BTreeMap::new(), base)
        .unwrap_err()
        .to_string();
    assert!(e.contains("profiles[0].provider"), "{e}");
    assert!(e.contains("OPENAI_API_KEY is not set"), "{e}");
    // Not configured at all: refused at the settings pass, with the name
    // of what is.
    let e = load(&(GOOD.to_owned() + OTHER_PROVIDER), base).unwrap_err();
    assert!(e.contains("not a provider of this agent (mock)"), "{e}");
}

#[test]
fn model_providers_takes_known_providers_once_with_ws_endpoints() {
    let base = Path::new("/nonexistent-cb");
    for bad in [
        r#"["mock"]"#,
        r#"["nope"]"#,
        r#"["gpt-live=http://127.0.0.1:9/"]"#,
        r#"["gpt-live", "gpt-live"]"#,
    ] {
        let e = load(&with_providers(bad), base).unwrap_err();
        assert!(e.contains("model.providers"), "{bad}: {e}");
    }
}
// --- issue 23 (prof2): [[trunks]] and source_trunk ---
#[test]
fn named_trunks_route_by_source_trunk_and_bad_tables_are_named() {
    let text = format!(
        "{GOOD}{PROFILES}source_trunk = \"carrier-a\"\n\n\
         [[trunks]]\nname = \"carrier-a\"\nsources = [\"192.0.2.0/24\"]\n\n\
         [[trunks]]\nname = \"carrier-b\"\nsources = [\"198.51.100.7\"]\n"
    );
    let s = load(&text, Path::new("/nonexistent-cb")).unwrap();
    let set = &s.routing.profiles;
    let ip = |a: &str| Some(a.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(set.inbound("+100", ip("192.0.2.1")).name(), "sales");
    assert_eq!(set.inbound("+100", ip("198.51.100.7")).name(), "desk");
    assert_eq!(set.inbound("+100", None).name(), "desk");
    // A trunk that is not there, a bad trunk table, an unknown field.
    let e = load(
        &text.replace(
            "source_trunk = \"carrier-a\"",
            "source_trunk = \"carrier-z\"",
        ),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("profiles[1].match.source_trunk"), "{e}");
    let e = load(
        &text.replace("\"198.51.100.7\"", "\"nowhere\""),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("trunks[1].sources[0]"), "{e}");
    let e = load(
        &format!("{text}port = 5060\n"),
        Path::new("/nonexistent-cb"),
    )
    .unwrap_err();
    assert!(e.contains("trunks") && e.contains("port"), "{e}");
}
// --- end issue 23 (prof2) ---
