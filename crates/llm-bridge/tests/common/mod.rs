//! Shared helpers for the integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]

use std::time::Duration;

use callbridge_llm_bridge::mock::vad::tone;
use callbridge_llm_bridge::{
    AudioFrame, ModelEvent, ModelSession, RetryPolicy, SampleRate, SessionConfig,
};

/// A config for the mock at `url` with short timeouts.
pub fn config(url: String) -> SessionConfig {
    let mut c = SessionConfig::default();
    c.endpoint = Some(url);
    c.model = "gemini-mock".into();
    c.instructions = "You are a test agent.".into();
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

/// 20 ms frames of a caller turn at 16 kHz: `speech_ms` of tone then `silence_ms`.
pub fn caller_turn(speech_ms: u32, silence_ms: u32) -> Vec<Vec<i16>> {
    let mut all = tone(16000, speech_ms);
    all.extend(std::iter::repeat_n(0i16, 16 * silence_ms as usize));
    all.chunks(320).map(<[i16]>::to_vec).collect()
}

/// Sends frames, returning the bytes sent.
pub fn send_frames(session: &mut ModelSession, frames: &[Vec<i16>]) -> usize {
    let mut bytes = 0;
    for f in frames {
        session
            .send_audio(AudioFrame::Pcm16 {
                rate: SampleRate::HZ_16000,
                samples: f,
            })
            .expect("queue has room");
        bytes += f.len() * 2;
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

pub fn audio_ms(events: &[ModelEvent]) -> u128 {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Audio(c) => Some(c.duration().as_millis()),
            _ => None,
        })
        .sum()
}

/// Events with audio payloads summarised, for assertion messages.
pub fn summary(events: &[ModelEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            ModelEvent::Audio(c) => format!("Audio({} ms)", c.duration().as_millis()),
            other => format!("{other:?}"),
        })
        .collect()
}
