//! The GPT-Live client against the strict mock: setup, G.711 both ways
//! with no resampling, transcripts, reply ends, tools under Responses
//! delegation, client delegations, the close handshake.

mod common;

use std::time::Duration;

use callbridge_llm_bridge::{AudioFormat, ModelEvent, ToolResult};
use callbridge_llm_mock::clips;
use callbridge_llm_mock::gpt_live::{GptLiveScript, MockGptLive};
use common::gpt_live::{config, fast_script, open_with};
use common::openai::{caller_turn_ulaw, send_ulaw};
use common::{audio_ms, events_until, input_text, output_text, summary};

#[tokio::test]
async fn a_g711_call_greets_hears_a_turn_and_closes_cleanly() {
    let mock = MockGptLive::start(fast_script()).await.unwrap();
    let mut s = open_with(config(mock.url()), None).await.unwrap();
    assert_eq!(s.model_input_format(), AudioFormat::Pcmu);
    s.start_greeting().await.unwrap();
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    // The greeting clip, µ-law at 8 kHz, byte for byte: no resampling.
    let audio: Vec<u8> = ev
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Audio(c) => {
                assert_eq!(c.format, AudioFormat::Pcmu);
                Some(c.data.to_vec())
            }
            _ => None,
        })
        .flatten()
        .collect();
    let want = callbridge_llm_mock::openai::clip_in_format(clips::greeting(), AudioFormat::Pcmu);
    assert_eq!(audio, want.to_vec(), "{:?}", summary(&ev));
    assert_eq!(output_text(&ev), clips::GREETING_TEXT);
    assert!(ev.contains(&ModelEvent::GenerationComplete));

    let sent = send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    s.flush_audio().unwrap();
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert_eq!(input_text(&ev), "caller turn 1", "{:?}", summary(&ev));
    assert_eq!(output_text(&ev), clips::REPLY_TEXT);
    assert!(audio_ms(&ev) > 500);
    let outcome = s.close().await;
    assert!(outcome.clean, "{outcome:?}");
    let stats = mock.stats();
    assert_eq!(stats.audio_bytes_in as usize, sent);
    assert_eq!(stats.caller_turns, 1);
    let log = mock.log();
    assert_eq!(log.closes, 1);
    assert_eq!(log.instructions.len(), 1, "the greeting prompt");
    assert_eq!(log.starts[0].model, "gpt-live-1");
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn transfer_and_end_call_go_through_responses_delegation() {
    let script = GptLiveScript {
        transfer_at_turn: Some((1, "sales".into())),
        end_call_after_turns: Some(2),
        ..fast_script()
    };
    let mock = MockGptLive::start(script).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.transfer_targets
        .push(callbridge_llm_bridge::TransferChoice {
            name: "sales".into(),
            number_prefix: None,
        });
    let mut s = open_with(cfg, Some("gpt-5.5")).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TransferCall { .. })).await;
    let Some(ModelEvent::TransferCall { id, target, .. }) = ev.last().cloned() else {
        panic!("no transfer: {:?}", summary(&ev));
    };
    assert_eq!(target, "sales");
    s.send_tool_result(
        id,
        ToolResult::Ok(serde_json::json!({"transferred": false})),
    )
    .await
    .unwrap();
    // The reply follows the output and the response.create.
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&ev) > 500, "{:?}", summary(&ev));
    // The delegated response's usage (its `response.completed`, after
    // the function call) is reported once, as the backend's tokens.
    let delegated: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ModelEvent::DelegationUsage(u) => Some((u.input_tokens, u.output_tokens, u.split)),
            _ => None,
        })
        .collect();
    assert_eq!(
        delegated,
        vec![(
            callbridge_llm_mock::gpt_live::DELEGATION_INPUT_TOKENS,
            callbridge_llm_mock::gpt_live::DELEGATION_OUTPUT_TOKENS,
            None
        )],
        "{:?}",
        summary(&ev)
    );

    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::EndCall { .. })).await;
    assert!(
        audio_ms(&ev) > 500,
        "the farewell comes first: {:?}",
        summary(&ev)
    );
    let Some(ModelEvent::EndCall { id, .. }) = ev.last().cloned() else {
        panic!("no end_call: {:?}", summary(&ev));
    };
    s.send_tool_result(id, ToolResult::Ok(serde_json::json!("ok")))
        .await
        .unwrap();
    assert!(s.close().await.clean);
    let log = mock.log();
    assert_eq!(log.function_outputs.len(), 2, "{log:?}");
    assert_eq!(log.response_creates, 1, "none after end_call");
    let start = &log.starts[0];
    let Some(callbridge_llm_bridge::gpt_live::wire::Delegation::Responses { responses }) =
        &start.delegation
    else {
        panic!("no Responses delegation: {start:?}");
    };
    assert_eq!(responses.model, "gpt-5.5");
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn a_client_delegation_naming_a_tool_is_a_tool_call_answered_by_commentary() {
    let script = GptLiveScript {
        client_delegation_at_turn: Some(1),
        delegation_task: Some("Could you lookup order 42 for me?".into()),
        ..fast_script()
    };
    let mock = MockGptLive::start(script).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.tools.push(callbridge_llm_bridge::ToolSpec {
        name: "lookup_order".into(),
        description: "Looks up an order.".into(),
        parameters: serde_json::json!({"type": "object",
            "properties": {"task": {"type": "string"}}, "required": ["task"]}),
    });
    let mut s = open_with(cfg, None).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::ToolCall(_))).await;
    let Some(ModelEvent::ToolCall(call)) = ev.last() else {
        panic!("{:?}", summary(&ev));
    };
    assert_eq!(call.name, "lookup_order");
    assert_eq!(call.args["task"], "Could you lookup order 42 for me?");
    let id = call.id.clone();
    s.send_tool_result(
        id.clone(),
        ToolResult::Ok(serde_json::json!({"status": "shipped"})),
    )
    .await
    .unwrap();
    let (_, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |_| {
            !mock.log().commentary.is_empty()
        })
        .await;
    assert!(ok, "{:?}", mock.log());
    let log = mock.log();
    assert_eq!(
        log.commentary,
        [(
            r#"{"status":"shipped"}"#.to_owned(),
            Some(id.as_str().to_owned())
        )]
    );
    assert!(log.function_outputs.is_empty() && log.response_creates == 0);
    // The tools were named in the instructions (no declarations exist
    // under client delegation).
    let instructions = log.starts[0].instructions.clone().unwrap_or_default();
    assert!(
        instructions.contains("- lookup order: Looks up an order."),
        "{instructions}"
    );
    assert!(s.close().await.clean);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn a_client_delegation_is_refused_with_its_id() {
    let script = GptLiveScript {
        client_delegation_at_turn: Some(1),
        ..fast_script()
    };
    let mock = MockGptLive::start(script).await.unwrap();
    let mut s = open_with(config(mock.url()), None).await.unwrap();
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    let (_, ok) = mock
        .server()
        .wait_for(Duration::from_secs(2), |_| {
            mock.log().instructions.iter().any(|(_, d)| d.is_some())
        })
        .await;
    assert!(ok, "{:?}", mock.log());
    assert!(s.close().await.clean);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn caller_speech_over_a_reply_stops_its_audio() {
    let script = GptLiveScript {
        playback_speed: 1.0,
        ..Default::default()
    };
    let mock = MockGptLive::start(script).await.unwrap();
    let mut s = open_with(config(mock.url()), None).await.unwrap();
    s.start_greeting().await.unwrap();
    // Some greeting audio, then the caller talks over it.
    events_until(&mut s, |e| matches!(e, ModelEvent::Audio(_))).await;
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    let (_, ok) = mock
        .server()
        .wait_for(Duration::from_secs(3), |_| mock.log().barge_ins == 1)
        .await;
    assert!(ok, "{:?}", mock.log());
    assert!(s.close().await.clean);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn setup_failures_are_typed_connect_errors() {
    use callbridge_llm_bridge::ConnectFailure;
    use callbridge_llm_mock::gpt_live::StartReply;
    let mock = MockGptLive::start(GptLiveScript {
        start: StartReply::Reject,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = open_with(config(mock.url()), None).await.unwrap_err();
    assert!(
        matches!(
            common::connect_failure(&err, 1),
            ConnectFailure::Protocol(_)
        ),
        "{err:?}"
    );
    mock.shutdown().await;

    let mock = MockGptLive::start(GptLiveScript {
        start: StartReply::Never,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = open_with(common::impatient(config(mock.url())), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            common::connect_failure(&err, 3),
            ConnectFailure::SetupTimeout(_)
        ),
        "{err:?}"
    );
    mock.server().assert_no_violations();
    // Each timed-out attempt ended with the client's close frame (1000),
    // not a dropped connection (1006).
    let (stats, ended) = mock
        .server()
        .wait_for(Duration::from_secs(5), |s| s.client_close_codes.len() == 3)
        .await;
    assert!(ended, "{stats:?}");
    assert_eq!(stats.client_close_codes, [1000, 1000, 1000]);
    mock.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_at_setup() {
    let mock = MockGptLive::start(GptLiveScript {
        expect_api_key: Some("sk-right".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cfg = config(mock.url());
    cfg.api_key = Some(callbridge_llm_bridge::ApiKey::new("sk-wrong"));
    assert!(open_with(cfg, None).await.is_err());
    let mut cfg = config(mock.url());
    cfg.api_key = Some(callbridge_llm_bridge::ApiKey::new("sk-right"));
    let s = open_with(cfg, None).await.unwrap();
    assert!(s.close().await.clean);
    mock.shutdown().await;
}

#[tokio::test]
async fn a_pcm_16k_session_gets_pcm_16k_audio() {
    let mock = MockGptLive::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.input_format = AudioFormat::PCM_16K;
    cfg.output_format = AudioFormat::PCM_16K;
    let mut s = open_with(cfg, None).await.unwrap();
    assert_eq!(s.model_input_format(), AudioFormat::PCM_16K);
    s.start_greeting().await.unwrap();
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&ev) > 500, "{:?}", summary(&ev));
    assert!(ev.iter().all(|e| match e {
        ModelEvent::Audio(c) => c.format == AudioFormat::PCM_16K,
        _ => true,
    }));
    assert!(s.close().await.clean);
    let format = mock.log().starts[0].audio.as_ref().and_then(|a| a.format);
    assert_eq!(
        format,
        Some(callbridge_llm_bridge::gpt_live::wire::FormatWire::Pcm { rate: 16000 })
    );
    mock.server().assert_no_violations();
    mock.shutdown().await;
}

#[tokio::test]
async fn different_formats_each_way_are_refused_at_open() {
    let mut cfg = config("ws://127.0.0.1:9/".into());
    cfg.output_format = AudioFormat::PCM_24K;
    let err = open_with(cfg, None).await.unwrap_err();
    assert!(
        matches!(err, callbridge_llm_bridge::Error::Config(_)),
        "{err:?}"
    );
}

/// GPT-Live's instructions are immutable after `session.start`: an update
/// is a typed refusal, nothing reaches the server, and the call goes on.
#[tokio::test]
async fn an_instruction_update_is_refused_and_the_session_goes_on() {
    use callbridge_llm_bridge::{Error, Provider};
    let mock = MockGptLive::start(fast_script()).await.unwrap();
    let mut s = open_with(config(mock.url()), None).await.unwrap();
    let err = s.update_instructions("Speak French.").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InstructionsUpdateUnsupported {
                provider: Provider::GptLive
            }
        ),
        "{err:?}"
    );
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    s.flush_audio().unwrap();
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert_eq!(output_text(&ev), clips::REPLY_TEXT);
    assert!(s.close().await.clean);
    assert!(mock.log().instructions.is_empty(), "nothing was appended");
    mock.server().assert_no_violations();
    mock.shutdown().await;
}
