//! Round trips against the mock Gemini Live server.

mod common;

use callbridge_llm_bridge::{
    AudioFormat, CallMetadata, CloseReason, GeminiLive, Greeting, ModelEvent, RealtimeModel,
};
use callbridge_llm_mock::clips;
use callbridge_llm_mock::gemini::MockGemini;
use common::gemini::*;
use common::openai::{caller_turn_ulaw, send_ulaw};
use common::*;

#[tokio::test]
async fn greeting_on_request_then_one_caller_turn_round_trips() {
    let mock = MockGemini::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.greeting = Greeting::OnRequest {
        prompt: Greeting::DEFAULT_PROMPT.into(),
    };
    let mut s = GeminiLive
        .open(cfg, CallMetadata::with_call_id("rt-1"))
        .await
        .unwrap();
    // Pre-warmed: nothing is said until the call is answered.
    assert_eq!(mock.stats().setups, 1);
    s.start_greeting().await.unwrap();
    let greet = events_until(&mut s, |e| matches!(e, ModelEvent::ResumptionHandle(_))).await;
    assert!(greet.iter().any(|e| matches!(e, ModelEvent::TurnComplete)));
    let greet_ms = audio_ms(&greet);
    let clip_ms = clips::greeting().duration().as_millis();
    assert!(
        greet_ms + 2 >= clip_ms && greet_ms <= clip_ms + 2,
        "{greet_ms} vs {clip_ms}"
    );
    assert!(greet.iter().any(|e| matches!(e,
        ModelEvent::OutputTranscript { text, .. } if text == clips::GREETING_TEXT)));
    assert!(greet.iter().all(|e| match e {
        ModelEvent::Audio(c) => c.format == AudioFormat::PCM_24K,
        _ => true,
    }));
    assert!(
        greet
            .iter()
            .any(|e| matches!(e, ModelEvent::GenerationComplete))
    );

    let sent = send_frames(&mut s, &caller_turn(500, 600));
    let reply = events_until(&mut s, |e| matches!(e, ModelEvent::ResumptionHandle(_))).await;
    assert!(
        reply
            .iter()
            .any(|e| matches!(e, ModelEvent::InputTranscript { finished: true, .. }))
    );
    assert!(reply.iter().any(|e| matches!(e,
        ModelEvent::OutputTranscript { text, .. } if text == clips::REPLY_TEXT)));
    assert!(audio_ms(&reply) > 1000);
    assert!(reply.iter().any(|e| matches!(e, ModelEvent::TurnComplete)));
    assert!(
        reply
            .iter()
            .any(|e| matches!(e, ModelEvent::Usage(u) if u.total_tokens == 150))
    );

    let outcome = s.close().await;
    assert!(outcome.clean, "{outcome:?}");
    assert_eq!(outcome.reason, CloseReason::ClientClosed);
    let (stats, ok) = mock
        .server()
        .wait_for(std::time::Duration::from_secs(2), |s| {
            s.open_connections == 0
        })
        .await;
    assert!(ok);
    assert_eq!(stats.setups, 1, "exactly one setup per call");
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.clean_closes, 1);
    assert_eq!(stats.audio_bytes_in, sent as u64);
    assert_eq!(stats.caller_turns, 1);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    mock.shutdown().await;
}

#[tokio::test]
async fn telephone_mu_law_input_is_upsampled_to_16k_for_the_model() {
    let mock = MockGemini::start(fast_script()).await.unwrap();
    let mut cfg = config(mock.url());
    cfg.input_format = AudioFormat::Pcmu;
    let mut s = GeminiLive
        .open(cfg, CallMetadata::with_call_id("pcmu"))
        .await
        .unwrap();
    assert_eq!(s.model_input_format(), AudioFormat::PCM_16K);
    let sent = send_ulaw(&mut s, &caller_turn_ulaw(400, 500));
    let evs = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&evs) > 1000, "the mock heard a caller turn");
    assert!(s.close().await.clean);
    let (st, _) = mock
        .server()
        .wait_for(std::time::Duration::from_secs(1), |s| {
            s.open_connections == 0
        })
        .await;
    assert_eq!(
        st.audio_bytes_in,
        sent as u64 * 4,
        "8 kHz bytes -> 16 kHz s16le"
    );
    assert!(st.violations.is_empty(), "{:?}", st.violations);
}

/// Gemini Live sets the system instruction in `setup` only: an update is
/// a typed refusal, nothing reaches the server, and the call goes on.
#[tokio::test]
async fn an_instruction_update_is_refused_and_the_session_goes_on() {
    use callbridge_llm_bridge::{Error, Provider};
    let mock = MockGemini::start(fast_script()).await.unwrap();
    let mut s = open(mock.url()).await.unwrap();
    let err = s.update_instructions("Speak French.").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InstructionsUpdateUnsupported {
                provider: Provider::Gemini
            }
        ),
        "{err:?}"
    );
    send_ulaw(&mut s, &caller_turn_ulaw(600, 600));
    s.flush_audio().unwrap();
    let ev = events_until(&mut s, |e| matches!(e, ModelEvent::TurnComplete)).await;
    assert!(audio_ms(&ev) > 0, "{:?}", summary(&ev));
    assert!(s.close().await.clean);
    mock.server().assert_no_violations();
    mock.shutdown().await;
}
