//! Token usage end to end (issue 22): a call against each provider's
//! mock, which reports usage as the real service does; the session row
//! carries the call's sums and the registry counts the tokens.

mod support;

use callbridge_llm_mock::gpt_live::GptLiveScript;
use callbridge_llm_mock::openai::OpenAiScript;
use callbridge_session::Manager;
use support::*;

/// One call: greeting, one caller turn and its reply, the caller's BYE.
async fn one_call<M>(r: &Rig<M>) {
    let mut caller = Caller::new().await;
    let mut leg = caller.dial_through_greeting(r.manager.sip_addr()).await;
    speak(&leg.media).await;
    assert!(
        hear(&mut leg.media, 300.0, AUDIO_WITHIN).await.is_some(),
        "reply heard after the caller spoke"
    );
    assert!(until_quiet(&mut leg.media, 10, AUDIO_WITHIN).await);
    caller.sip.hangup(leg.call).await.unwrap();
    leg.media.close().await;
    r.idle().await;
    caller.stop().await;
}

/// `callbridge_model_tokens_total` of `provider`, `direction` and
/// `purpose` on the metrics page.
fn tokens_of(m: &Manager, provider: &str, direction: &str, purpose: &str) -> Option<u64> {
    let mut registry = prometheus_client::registry::Registry::default();
    m.register_metrics(&mut registry);
    let mut page = String::new();
    prometheus_client::encoding::text::encode(&mut page, &registry).unwrap();
    let series = format!(
        "callbridge_model_tokens_total{{provider=\"{provider}\",direction=\"{direction}\",purpose=\"{purpose}\"}} "
    );
    page.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// The call's own tokens (`purpose="call"`).
fn tokens_on_page(m: &Manager, provider: &str, direction: &str) -> Option<u64> {
    tokens_of(m, provider, direction, "call")
}

/// The `model` event with the call's usage totals.
fn usage_event(rec: &callbridge_crm_store::SessionRecord) -> serde_json::Value {
    rec.events
        .iter()
        .find_map(|e| e.detail.get("usage").cloned())
        .expect("a usage event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_usage_reports_are_summed_on_the_row_and_counted() {
    let r = rig(fast_script(), |_| {}).await;
    one_call(&r).await;
    let rec = r.record(r.all_ids()[0]);
    // The mock reports 100 in / 50 out per finished reply (greeting and
    // reply): at least two reports, summed.
    let u = rec.session.usage;
    let (i, o) = (u.input_tokens.unwrap(), u.output_tokens.unwrap());
    assert!(i >= 200 && i % 100 == 0, "{u:?}");
    assert_eq!(o * 2, i, "{u:?}");
    // Gemini reports no audio time: the row has what the bridge streamed
    // (whole 20 ms frames; the call lasted a few seconds).
    let streamed = u.audio_ms.expect("the caller audio streamed to the model");
    assert!(streamed > 0 && streamed % 20 == 0, "{u:?}");
    let ev = usage_event(&rec);
    assert_eq!(ev["split"]["input_audio"], i / 100 * 70, "{ev}");
    assert_eq!(ev["split"]["output_audio"], o, "{ev}");
    assert_eq!(tokens_on_page(&r.manager, "gemini", "input"), Some(i));
    assert_eq!(tokens_on_page(&r.manager, "gemini", "output"), Some(o));
    // The row has the split of every report.
    let split = u
        .split
        .expect("every Gemini report had its modality details");
    assert_eq!(split.input_audio + split.input_text, i, "{u:?}");
    assert_eq!(split.output_audio, o, "{u:?}");
    // The post-call summary's tokens: apart from the call's, on the row
    // and under the summary API's own provider.
    assert_eq!(
        rec.session.summary.as_ref().map(|s| s.as_str()),
        Some("a fixed summary")
    );
    assert_eq!(
        (u.summary_input_tokens, u.summary_output_tokens),
        (
            Some(SUMMARY_USAGE.input_tokens),
            Some(SUMMARY_USAGE.output_tokens)
        )
    );
    assert_eq!(
        tokens_of(&r.manager, "openai", "input", "summary"),
        Some(SUMMARY_USAGE.input_tokens)
    );
    assert_eq!(
        tokens_of(&r.manager, "openai", "output", "summary"),
        Some(SUMMARY_USAGE.output_tokens)
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_response_done_usage_is_summed_on_the_row_and_counted() {
    let script = OpenAiScript {
        playback_speed: 2.0,
        ..Default::default()
    };
    let r = rig_openai(script, |_| {}).await;
    one_call(&r).await;
    let rec = r.record(r.all_ids()[0]);
    // 100 in / 50 out per completed response (greeting and reply).
    let u = rec.session.usage;
    let (i, o) = (u.input_tokens.unwrap(), u.output_tokens.unwrap());
    assert!(i >= 200, "{u:?}");
    assert_eq!(o * 2, i, "{u:?}");
    let ev = usage_event(&rec);
    assert_eq!(ev["total_tokens"], i + o, "{ev}");
    assert_eq!(ev["split"]["output_audio"], o / 50 * 40, "{ev}");
    assert_eq!(tokens_on_page(&r.manager, "openai", "input"), Some(i));
    assert_eq!(tokens_on_page(&r.manager, "openai", "output"), Some(o));
    r.mock.server().assert_no_violations();
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt_live_reports_audio_time_and_no_tokens() {
    let script = GptLiveScript {
        playback_speed: 2.0,
        ..Default::default()
    };
    let r = rig_gpt_live(script, |_| {}).await;
    one_call(&r).await;
    let rec = r.record(r.all_ids()[0]);
    let u = rec.session.usage;
    assert_eq!((u.input_tokens, u.output_tokens), (None, None), "{u:?}");
    let audio = u.audio_ms.expect("the session's audio time");
    let talk = rec
        .session
        .ended_at
        .unwrap()
        .duration_since(rec.session.answered_at.unwrap())
        .as_millis() as u64;
    // A running total, not a sum of the reports: within the call.
    assert!(
        audio > 0 && audio <= talk + 5_000,
        "{audio} ms in a {talk} ms call"
    );
    assert_eq!(usage_event(&rec)["audio_ms"], audio);
    assert_eq!(tokens_on_page(&r.manager, "gpt-live", "input"), Some(0));
    assert_eq!(
        tokens_of(&r.manager, "gpt-live", "input", "delegation"),
        None
    );
    r.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt_live_delegated_responses_tokens_are_the_calls_tokens() {
    use callbridge_llm_mock::gpt_live::{DELEGATION_INPUT_TOKENS, DELEGATION_OUTPUT_TOKENS};
    // Under Responses delegation the caller's turn is delegated: the
    // backend calls a tool (one the line does not have: answered with an
    // error), its `response.completed` reports its tokens, then the
    // live model replies.
    let script = GptLiveScript {
        playback_speed: 2.0,
        tool_call_at_turn: Some((1, "lookup_order".into(), serde_json::json!({"order": "42"}))),
        ..Default::default()
    };
    let provider = callbridge_llm_bridge::GptLive::new().with_delegation_model("gpt-5.5");
    let r = rig_gpt_live_with(script, provider, |_| {}).await;
    one_call(&r).await;
    let rec = r.record(r.all_ids()[0]);
    let u = rec.session.usage;
    assert_eq!(
        (u.input_tokens, u.output_tokens),
        (
            Some(DELEGATION_INPUT_TOKENS),
            Some(DELEGATION_OUTPUT_TOKENS)
        ),
        "{u:?}"
    );
    assert_eq!(
        u.split, None,
        "the Responses backend reports no modality split"
    );
    assert!(u.audio_ms.is_some(), "{u:?}");
    assert_eq!(
        tokens_of(&r.manager, "gpt-live", "input", "delegation"),
        Some(DELEGATION_INPUT_TOKENS)
    );
    assert_eq!(
        tokens_of(&r.manager, "gpt-live", "output", "delegation"),
        Some(DELEGATION_OUTPUT_TOKENS)
    );
    assert_eq!(tokens_on_page(&r.manager, "gpt-live", "input"), Some(0));
    assert_eq!(r.mock.log().function_outputs.len(), 1);
    r.mock.server().assert_no_violations();
    r.manager.shutdown().await;
}
