//! Shared helpers for the OpenAI Realtime integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]

use std::time::Duration;

use callbridge_llm_bridge::audio::linear_to_ulaw;
use callbridge_llm_bridge::mock::openai::OpenAiScript;
use callbridge_llm_bridge::mock::vad::tone;
use callbridge_llm_bridge::{
    AudioFormat, AudioFrame, ModelEvent, ModelSession, RetryPolicy, SessionConfig,
};

/// A config for the mock at `url`: µ-law both ways, short timeouts.
pub fn config(url: String) -> SessionConfig {
    let mut c = SessionConfig::default();
    c.endpoint = Some(url);
    c.model = "gpt-realtime".into();
    c.instructions = "You are a test agent.".into();
    c.voice = Some("marin".into());
    c.input_format = AudioFormat::Pcmu;
    c.output_format = AudioFormat::Pcmu;
    c.connect_timeout = Duration::from_millis(500);
    c.setup_timeout = Duration::from_millis(300);
    c.close_timeout = Duration::from_millis(500);
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    c
}

/// A script whose replies "play" 50 times faster than real time.
pub fn fast_script() -> OpenAiScript {
    OpenAiScript {
        playback_speed: 50.0,
        ..Default::default()
    }
}

/// 20 ms µ-law frames of a caller turn: `speech_ms` of tone then `silence_ms`.
pub fn caller_turn_ulaw(speech_ms: u32, silence_ms: u32) -> Vec<Vec<u8>> {
    let mut all: Vec<u8> = tone(8000, speech_ms)
        .into_iter()
        .map(linear_to_ulaw)
        .collect();
    all.extend(std::iter::repeat_n(0xFFu8, 8 * silence_ms as usize));
    all.chunks(160).map(<[u8]>::to_vec).collect()
}

/// Sends µ-law frames, returning the bytes sent.
pub fn send_ulaw(session: &mut ModelSession, frames: &[Vec<u8>]) -> usize {
    let mut bytes = 0;
    for f in frames {
        session
            .send_audio(AudioFrame::Pcmu(f))
            .expect("queue has room");
        bytes += f.len();
    }
    bytes
}

/// Collects events until `stop` matches one (inclusive) or 5 s pass.
pub async fn events_until(
    session: &mut ModelSession,
    stop: impl Fn(&ModelEvent) -> bool,
) -> Vec<ModelEvent> {
    let mut out = Vec::new();
    let collect = async {
        while let Some(ev) = session.next_event().await {
            let done = stop(&ev);
            out.push(ev);
            if done {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), collect).await;
    out
}

/// Milliseconds of model audio in `events`.
pub fn audio_ms(events: &[ModelEvent]) -> u128 {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Audio(c) => Some(c.duration().as_millis()),
            _ => None,
        })
        .sum()
}

/// The output transcript text in `events` (deltas and the final rest joined).
pub fn output_text(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::OutputTranscript { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The input transcript text in `events`.
pub fn input_text(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::InputTranscript { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Error events in `events`.
pub fn errors(events: &[ModelEvent]) -> Vec<&ModelEvent> {
    events
        .iter()
        .filter(|e| matches!(e, ModelEvent::Error { .. }))
        .collect()
}
