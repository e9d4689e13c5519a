//! Round trips against the mock OpenAI Realtime server: greeting, caller
//! speech, reply, transcripts, barge-in, tool calls, end_call.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{
    ApiKey, AudioFormat, AudioFrame, CallMetadata, CloseReason, Greeting, ModelEvent,
    OpenAiRealtime, RealtimeModel, SampleRate, ToolResult, ToolSpec, TurnDetection,
};
use callbridge_llm_mock::clips;
use callbridge_llm_mock::openai::{MockOpenAi, OpenAiScript};
use callbridge_llm_mock::vad::tone;
use common::openai::*;
use common::*;
use serde_json::json;

fn is_turn_complete(e: &ModelEvent) -> bool {
    matches!(e, ModelEvent::TurnComplete)
}

#[tokio::test]
async fn pcmu_greeting_on_request_then_caller_turn_round_trips() {
    let mock = MockOpenAi::start(OpenAiScript {
        expect_api_key: Some("sk-test-key".into()),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut cfg = config(mock.url());
    cfg.api_key = Some(ApiKey::new("sk-test-key"));
    cfg.greeting = Greeting::OnRequest {
        prompt: Greeting::DEFAULT_PROMPT.into(),
    };
    cfg.transfer_targets
        .push(callbridge_llm_bridge::TransferChoice {
            name: "sales".into(),
            number_prefix: None,
        });
    let mut meta = CallMetadata::with_call_id("oa-rt-1");
    meta.context.push(("account tier".into(), "gold".into()));
    let mut s = OpenAiRealtime.open(cfg, meta).await.unwrap();
    assert_eq!(s.model_input_format(), AudioFormat::Pcmu);
    // Pre-warmed: configured, but nothing is said until the call is answered.
    assert_eq!(mock.stats().setups, 1);
    assert_eq!(mock.log().response_creates, 0);
    s.start_greeting().await.unwrap();
    let greet = events_until(&mut s, is_turn_complete).await;
    let greet_ms = audio_ms(&greet);
    let clip_ms = clips::greeting().duration().as_millis();
    assert!(
        greet_ms + 2 >= clip_ms && greet_ms <= clip_ms + 2,
        "{greet_ms} vs {clip_ms}"
    );
    assert!(greet.iter().all(|e| match e {
        ModelEvent::Audio(c) => c.format == AudioFormat::Pcmu,
        _ => true,
    }));
    assert_eq!(output_text(&greet), clips::GREETING_TEXT);
    assert!(
        greet
            .iter()
            .any(|e| matches!(e, ModelEvent::OutputTranscript { finished: true, .. }))
    );
    assert!(
        greet
            .iter()
            .any(|e| matches!(e, ModelEvent::GenerationComplete))
    );
    assert!(
        greet
            .iter()
            .any(|e| matches!(e, ModelEvent::RateLimits(v) if v.len() == 2))
    );
    assert!(
        greet
            .iter()
            .any(|e| matches!(e, ModelEvent::Usage(u) if u.total_tokens == 150))
    );
    assert!(errors(&greet).is_empty(), "{greet:?}");

    let sent = send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let reply = events_until(&mut s, is_turn_complete).await;
    assert_eq!(input_text(&reply), "caller turn 1");
    assert!(
        reply
            .iter()
            .any(|e| matches!(e, ModelEvent::InputTranscript { finished: true, .. }))
    );
    assert_eq!(output_text(&reply), clips::REPLY_TEXT);
    assert!(audio_ms(&reply) > 1000);
    assert!(errors(&reply).is_empty(), "{reply:?}");

    let outcome = s.close().await;
    assert!(outcome.clean, "{outcome:?}");
    assert_eq!(outcome.reason, CloseReason::ClientClosed);
    let (stats, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |s| s.open_connections == 0)
        .await;
    assert!(ok);
    assert_eq!(stats.setups, 1, "exactly one session.update per call");
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.clean_closes, 1);
    assert_eq!(stats.audio_bytes_in, sent as u64);
    assert_eq!(stats.caller_turns, 1);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    let log = mock.log();
    assert_eq!(
        log.response_creates, 1,
        "only the greeting is client-created"
    );
    assert_eq!(log.user_messages, [Greeting::DEFAULT_PROMPT]);
    let update = &log.session_updates[0];
    assert_eq!(update.input_format, Some(AudioFormat::Pcmu));
    assert_eq!(update.output_format, Some(AudioFormat::Pcmu));
    assert_eq!(update.turn_detection, Some(Some(true)));
    assert_eq!(update.voice.as_deref(), Some("marin"));
    let instructions = update.instructions.as_deref().unwrap_or_default();
    assert!(
        instructions.starts_with("You are a test agent."),
        "{instructions}"
    );
    assert!(
        instructions.contains("account tier: gold"),
        "{instructions}"
    );
    assert_eq!(update.transcription, Some(true));
    let tools = update.tools.clone().unwrap();
    assert!(tools.contains(&"end_call".into()) && tools.contains(&"transfer_call".into()));
    mock.shutdown().await;
}

#[tokio::test]
async fn greeting_on_open_speaks_first_without_being_asked() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.greeting = Greeting::OnOpen {
        prompt: "Say hello.".into(),
    };
    let mut s = open_with(cfg).await.unwrap();
    let greet = events_until(&mut s, is_turn_complete).await;
    assert_eq!(output_text(&greet), clips::GREETING_TEXT);
    assert!(s.close().await.clean);
    assert_eq!(mock.log().user_messages, ["Say hello."]);
    mock.shutdown().await;
}

#[tokio::test]
async fn pcm_8k_input_is_sent_as_pcm_24k_and_pcm_24k_comes_back() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.input_format = AudioFormat::PCM_8K;
    cfg.output_format = AudioFormat::PCM_24K;
    let mut s = OpenAiRealtime
        .open(cfg, CallMetadata::with_call_id("oa-pcm"))
        .await
        .unwrap();
    assert_eq!(s.model_input_format(), AudioFormat::PCM_24K);
    let mut samples = tone(8000, 500);
    samples.extend(std::iter::repeat_n(0i16, 8 * 600));
    for f in samples.chunks(160) {
        s.send_audio(AudioFrame::Pcm16 {
            rate: SampleRate::HZ_8000,
            samples: f,
        })
        .unwrap();
    }
    let reply = events_until(&mut s, is_turn_complete).await;
    assert!(audio_ms(&reply) > 1000, "{reply:?}");
    assert!(reply.iter().all(|e| match e {
        ModelEvent::Audio(c) => c.format == AudioFormat::PCM_24K,
        _ => true,
    }));
    assert!(s.close().await.clean);
    let stats = mock.stats();
    // 1.1 s at 24 kHz s16le.
    assert_eq!(stats.audio_bytes_in, 1100 * 48);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    assert_eq!(
        mock.log().session_updates[0].input_format,
        Some(AudioFormat::PCM_24K)
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn sixteen_khz_pcm_input_is_refused_at_open_without_connecting() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.input_format = AudioFormat::PCM_16K;
    let err = open_with(cfg).await.unwrap_err();
    assert!(err.to_string().contains("24 kHz"), "{err}");
    assert_eq!(mock.stats().connections, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn barge_in_cancels_the_response_and_truncates_to_the_played_ms() {
    // Real-time playback so the reply is still in progress when the caller talks.
    let mock = MockOpenAi::start(OpenAiScript::default()).await.unwrap();
    let mut s = OpenAiRealtime
        .open(config(mock.url()), CallMetadata::with_call_id("oa-barge"))
        .await
        .unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let reply = events_until(&mut s, |e| {
        matches!(e, ModelEvent::OutputTranscript { finished: true, .. })
    })
    .await;
    assert!(audio_ms(&reply) > 1000);
    assert!(
        !reply.iter().any(is_turn_complete),
        "reply must still be in progress"
    );
    s.playback_progress(Duration::from_millis(320));
    send_ulaw(&mut s, &caller_turn_ulaw(200, 0));
    let after = events_until(&mut s, is_turn_complete).await;
    assert!(
        after.iter().any(|e| matches!(e, ModelEvent::Interrupted)),
        "{after:?}"
    );
    assert!(
        errors(&after).is_empty(),
        "cancel race must not surface: {after:?}"
    );
    let (_, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |_| {
            !mock.log().truncations.is_empty()
        })
        .await;
    assert!(ok, "no truncate arrived");
    let log = mock.log();
    assert_eq!(log.cancels.len(), 1);
    assert!(
        log.cancels[0]
            .as_deref()
            .is_some_and(|id| id.starts_with("resp_"))
    );
    assert_eq!(log.truncations.len(), 1);
    assert_eq!(log.truncations[0].audio_end_ms, 320);
    assert!(log.truncations[0].item_audio_ms > 1000);
    assert!(s.close().await.clean);
    let stats = mock.stats();
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    mock.shutdown().await;
}

#[tokio::test]
async fn barge_in_without_playback_progress_cancels_but_does_not_truncate() {
    let mock = MockOpenAi::start(OpenAiScript::default()).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    events_until(&mut s, |e| {
        matches!(e, ModelEvent::OutputTranscript { finished: true, .. })
    })
    .await;
    send_ulaw(&mut s, &caller_turn_ulaw(200, 0));
    let after = events_until(&mut s, is_turn_complete).await;
    assert!(after.iter().any(|e| matches!(e, ModelEvent::Interrupted)));
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(log.cancels.len(), 1);
    assert!(log.truncations.is_empty());
    mock.shutdown().await;
}

#[tokio::test]
async fn tool_call_round_trips_output_then_one_new_response() {
    let mock = MockOpenAi::start(OpenAiScript {
        tool_call_at_turn: Some((1, "lookup_order".into(), json!({"order": "42"}))),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut cfg = config(mock.url());
    cfg.tools.push(ToolSpec {
        name: "lookup_order".into(),
        description: "Look up an order".into(),
        parameters: json!({"type": "object", "properties": {"order": {"type": "string"}}}),
    });
    let mut s = open_with(cfg).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::ToolCall(_))).await;
    let Some(ModelEvent::ToolCall(call)) = evs.last() else {
        panic!("no tool call: {evs:?}");
    };
    assert_eq!(call.name, "lookup_order");
    assert_eq!(call.args, json!({"order": "42"}));
    s.send_tool_result(
        call.id.clone(),
        ToolResult::Ok(json!({"status": "shipped"})),
    )
    .await
    .unwrap();
    // The first response completes, then the client asks for the next one.
    let first = events_until(&mut s, is_turn_complete).await;
    assert!(errors(&first).is_empty(), "{first:?}");
    let second = events_until(&mut s, is_turn_complete).await;
    assert!(audio_ms(&second) > 1000, "{second:?}");
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(log.function_outputs.len(), 1);
    assert_eq!(log.function_outputs[0].0, call.id.as_str());
    assert_eq!(log.function_outputs[0].1, r#"{"status":"shipped"}"#);
    assert_eq!(log.response_creates, 1);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn end_call_surfaces_as_a_typed_event_and_its_answer_starts_no_response() {
    let mock = MockOpenAi::start(OpenAiScript {
        end_call_after_turns: Some(1),
        ..fast_script()
    })
    .await
    .unwrap();
    let mut s = open(mock.url()).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::EndCall { .. })).await;
    let Some(ModelEvent::EndCall { id, reason }) = evs.last() else {
        panic!("no end_call: {evs:?}");
    };
    assert_eq!(reason.as_deref(), Some("the caller's request is handled"));
    s.send_tool_result(id.clone(), ToolResult::Ok(json!("ok")))
        .await
        .unwrap();
    events_until(&mut s, is_turn_complete).await;
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(log.function_outputs.len(), 1);
    assert_eq!(log.response_creates, 0);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn dtmf_goes_to_the_model_as_a_user_message_and_gets_a_reply() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    s.send_dtmf("12#").await.unwrap();
    let evs = events_until(&mut s, is_turn_complete).await;
    assert!(audio_ms(&evs) > 1000);
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(
        log.user_messages,
        ["[The caller pressed the phone keys: 1 2 #]"]
    );
    assert_eq!(log.response_creates, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn manual_turns_commit_and_create_a_response() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.turn_detection = TurnDetection::Manual;
    let mut s = open_with(cfg).await.unwrap();
    s.activity_start().await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(300, 0));
    s.activity_end().await.unwrap();
    let evs = events_until(&mut s, is_turn_complete).await;
    assert!(audio_ms(&evs) > 1000, "{evs:?}");
    assert!(s.close().await.clean);
    assert_eq!(mock.log().session_updates[0].turn_detection, Some(None));
    assert_eq!(mock.stats().caller_turns, 1);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

/// The input tuning reaches the server as the API documents it, and the
/// strict mock (which refuses what the API would) accepts it.
#[tokio::test]
async fn input_tuning_reaches_the_server_in_session_update() {
    use callbridge_llm_bridge::tuning::{Eagerness, NoiseReduction, OpenAiVad};
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.openai.vad = OpenAiVad::Semantic {
        eagerness: Eagerness::Medium,
    };
    cfg.openai.noise_reduction = NoiseReduction::NearField;
    cfg.transcription.model = Some("gpt-4o-transcribe".into());
    let s = open_with(cfg).await.unwrap();
    assert!(s.close().await.clean);
    let log = mock.log();
    let info = &log.session_updates[0];
    assert_eq!(
        info.turn_detection_json,
        Some(json!({"type": "semantic_vad", "eagerness": "medium",
                    "create_response": true, "interrupt_response": true}))
    );
    assert_eq!(info.noise_reduction, Some(Some("near_field".into())));
    assert_eq!(
        info.transcription_model.as_deref(),
        Some("gpt-4o-transcribe")
    );
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

/// `update_instructions` reaches the server as a `session.update` of the
/// instructions (with the call's context, as at open) and the session
/// goes on.
#[tokio::test]
async fn instructions_are_updated_mid_session_with_the_calls_context() {
    let mock = MockOpenAi::start(fast_script()).await.unwrap();
    let mut meta = CallMetadata::with_call_id("c1");
    meta.context.push(("account".into(), "gold".into()));
    let mut s = OpenAiRealtime.open(config(mock.url()), meta).await.unwrap();
    s.update_instructions("Speak French.").await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(500, 600));
    events_until(&mut s, is_turn_complete).await;
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(log.session_updates.len(), 2, "{:?}", log.session_updates);
    let update = &log.session_updates[1];
    assert_eq!(
        update.instructions.as_deref(),
        Some("Speak French.\n\nCall context:\naccount: gold\n")
    );
    assert_eq!(update.input_format, None, "only the instructions change");
    mock.server().assert_no_violations();
    mock.shutdown().await;
}
