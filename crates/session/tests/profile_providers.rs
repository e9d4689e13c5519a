//! A provider per routing profile (issue 23): one manager whose default
//! runs Gemini and whose `live` profile runs GPT-Live, each against its
//! own strict mock; one call to each number, and each mock sees exactly
//! its call; the session rows name their providers and models. A change
//! of profiles wakes the webhook worker (it does not poll).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callbridge_llm_bridge::{AudioFormat, GptLive};
use callbridge_llm_mock::gpt_live::{GptLiveScript, MockGptLive};
use callbridge_session::profile::provider::ModelClient;
use callbridge_session::profile::{MatchSpec, ProfileDefaults, ProfileSpec, Profiles};
use support::*;

const LIVE_NUMBER: &str = "+15550100200";

fn defaults(live: &MockGptLive) -> ProfileDefaults {
    let client = ModelClient {
        name: "gpt-live".into(),
        client: Arc::new(GptLive::new()),
        endpoint: Some(live.url()),
        api_key: None,
        model: "gpt-live-1".into(),
        formats: Some((AudioFormat::Pcmu, AudioFormat::Pcmu)),
    };
    let mut providers = BTreeMap::new();
    providers.insert("gpt-live".to_owned(), Ok(Arc::new(client)));
    providers.insert(
        "openai".to_owned(),
        Err("OPENAI_API_KEY is not set".to_owned()),
    );
    ProfileDefaults {
        provider: "gemini".into(),
        model: "mock-model".into(),
        voice: None,
        system_prompt: "Be brief.".into(),
        greeting: "Greet the caller.".into(),
        tools: true,
        transfer_targets: vec![],
        max_duration: Duration::from_secs(600),
        keep_headers: vec![],
        http_tools: Default::default(),
        providers,
        webhooks: Default::default(),
        env: Default::default(),
        trunks: Default::default(),
    }
}

fn live_profile(provider: &str) -> ProfileSpec {
    ProfileSpec {
        name: "live".into(),
        provider: Some(provider.into()),
        matches: Some(MatchSpec {
            exact: vec![LIVE_NUMBER.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn one_call(caller: &mut Caller, r: &Rig, user: &str) {
    let mut leg = caller.dial_user(r.manager.sip_addr(), user).await;
    assert!(caller.answered(&leg).await, "call to {user} answered");
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "greeting heard on the call to {user}"
    );
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_profiles_wakes_the_webhook_worker() {
    let live = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    let r = rig(fast_script(), |_| {}).await;
    let wake = r.manager.webhook_wake();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), wake.notified())
            .await
            .is_err(),
        "no wake-up before anything changed"
    );
    // PUT /api/profiles ends here: a profile may have gained receivers.
    let set = Profiles::load(&[live_profile("gpt-live")], None, &defaults(&live)).unwrap();
    r.manager.set_profiles(set);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), wake.notified())
            .await
            .is_ok(),
        "the worker is woken"
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_on_two_providers_each_mock_sees_exactly_its_call() {
    let live = MockGptLive::start(GptLiveScript::default()).await.unwrap();
    // Rows name the agent's own provider as configured (as the agent does).
    let r = rig(fast_script(), |c| c.provider_label = Some("gemini".into())).await;
    let d = defaults(&live);
    let set = Profiles::load(&[live_profile("gpt-live")], None, &d).unwrap();
    r.manager.set_profiles(set);

    let mut caller = Caller::new().await;
    one_call(&mut caller, &r, LIVE_NUMBER).await;
    assert_eq!(live.stats().setups, 1, "the GPT-Live call");
    assert_eq!(r.mock.stats().setups, 0, "no Gemini session for it");
    one_call(&mut caller, &r, "+15550100999").await;
    assert_eq!(live.stats().setups, 1, "GPT-Live saw only its call");
    assert_eq!(r.mock.stats().setups, 1, "the Gemini call");

    // G.711 both ways on the GPT-Live leg (the client's formats), the
    // profile's provider's own model.
    let log = live.log();
    let start = &log.starts[0];
    assert_eq!(start.model, "gpt-live-1");
    assert!(
        live.stats().violations.is_empty(),
        "{:?}",
        live.stats().violations
    );
    assert!(r.mock.stats().violations.is_empty());

    let mut rows: Vec<(String, String, String)> = r
        .all_ids()
        .into_iter()
        .map(|id| {
            let s = r.record(id).session;
            (
                s.profile.unwrap_or_default(),
                s.model_provider.unwrap_or_default(),
                s.model.unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("default".into(), "gemini".into(), "mock-model".into()),
            ("live".into(), "gpt-live".into(), "gpt-live-1".into()),
        ]
    );
    caller.stop().await;
    live.shutdown().await;
}

#[test]
fn a_profile_naming_a_provider_without_its_key_or_an_unknown_one_is_refused_whole() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = rt
        .block_on(MockGptLive::start(GptLiveScript::default()))
        .unwrap();
    let d = defaults(&live);
    let mut other = live_profile("nope");
    other.name = "other".into();
    other.matches = None;
    let errors = Profiles::load(&[live_profile("openai"), other], None, &d).unwrap_err();
    let messages: Vec<(String, String)> = errors
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].1.contains("OPENAI_API_KEY is not set"),
        "{messages:?}"
    );
    assert!(
        messages[1]
            .1
            .contains("not a provider of this agent (gemini, gpt-live, openai)"),
        "{messages:?}"
    );
    assert!(messages.iter().all(|(f, _)| f == "provider"));
    // The agent's own provider, named or not, needs no client.
    let own = ProfileSpec {
        provider: Some("gemini".into()),
        ..live_profile("gemini")
    };
    let set = Profiles::load(&[own], None, &d).unwrap();
    assert!(set.inbound(LIVE_NUMBER, None).client.is_none());
    rt.block_on(live.shutdown());
}
