//! `[model.openai]`: OpenAI Realtime's input tuning (issue 18 section 3),
//! sent in its `session.update` as `session.audio.input`. The defaults
//! are the API's own; `provider = "openai"` reads them, the other
//! providers ignore the section (it is still checked).
//!
//! | key | default | wire field | accepted |
//! |---|---|---|---|
//! | `turn_detection` | `server_vad` | `turn_detection.type` | `server_vad`, `semantic_vad` |
//! | `threshold` | 0.5 | `threshold` (server_vad) | 0.0 to 1.0 |
//! | `prefix_padding_ms` | 300 | `prefix_padding_ms` (server_vad) | 0 to 10000 |
//! | `silence_duration_ms` | 500 | `silence_duration_ms` (server_vad) | 1 to 10000 |
//! | `idle_timeout_ms` | 0 (off) | `idle_timeout_ms` (server_vad) | 0, or 5000 to 30000 (this agent's bound, below) |
//! | `eagerness` | `auto` | `eagerness` (semantic_vad) | `low`, `medium`, `high`, `auto` |
//! | `noise_reduction` | `off` | `noise_reduction.type` | `off`, `near_field`, `far_field` |
//! | `transcription_model` | `gpt-4o-mini-transcribe` | `transcription.model` | a model id |
//!
//! The threshold's range is the API's. The idle timeout's 5,000 to
//! 30,000 ms is *not* in the published types: openai-python
//! `types/realtime/realtime_audio_input_turn_detection.py`
//! (`ServerVad.idle_timeout_ms: Optional[int]`) gives no bound, nor did the
//! Realtime VAD guide we could read (checked December 2026); it stays as
//! this agent's bound (shorter nags a caller who is thinking, longer is
//! dead air) until the live API is seen to refuse other values. The VAD
//! windows' ranges are this agent's (more than 10 s is a mistake on a
//! phone call).

use std::time::Duration;

use callbridge_llm_bridge::tuning::{
    Eagerness, NoiseReduction, OpenAiInput, OpenAiVad, ServerVad, is_model_name,
};

use super::check::Check;

/// The validated `[model.openai]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSettings {
    /// `session.audio.input`'s turn detection and noise reduction.
    pub input: OpenAiInput,
    /// `session.audio.input.transcription.model`.
    pub transcription_model: String,
}

/// A millisecond key from `min` to `max`.
fn millis(c: &Check<'_>, key: &str, min: i64, max: i64) -> Option<Duration> {
    let v = c.int(key)?;
    if (min..=max).contains(&v) {
        u64::try_from(v).ok().map(Duration::from_millis)
    } else {
        c.invalid(key, v, &format!("milliseconds from {min} to {max}"))
    }
}

/// The validated `[model.openai]` section (`None`: a key is bad, recorded
/// in `c`). Every key is read, whichever turn detection is chosen.
pub fn read(c: &Check<'_>) -> Option<OpenAiSettings> {
    #[derive(Clone, Copy)]
    enum Mode {
        Server,
        Semantic,
    }
    let mode = c.choice(
        "model.openai.turn_detection",
        &[
            ("server_vad", Mode::Server),
            ("semantic_vad", Mode::Semantic),
        ],
    );
    let threshold = c.float("model.openai.threshold").and_then(|t| {
        if (0.0..=1.0).contains(&t) {
            Some(t)
        } else {
            c.invalid("model.openai.threshold", t, "a number from 0.0 to 1.0")
        }
    });
    let prefix_padding = millis(c, "model.openai.prefix_padding_ms", 0, 10_000);
    let silence_duration = millis(c, "model.openai.silence_duration_ms", 1, 10_000);
    let idle_timeout = c.int("model.openai.idle_timeout_ms").and_then(|v| match v {
        0 => Some(None),
        5_000..=30_000 => u64::try_from(v)
            .ok()
            .map(|ms| Some(Duration::from_millis(ms))),
        _ => c.invalid(
            "model.openai.idle_timeout_ms",
            v,
            "0 (off) or milliseconds from 5000 to 30000",
        ),
    });
    let eagerness = c.choice(
        "model.openai.eagerness",
        &[
            ("low", Eagerness::Low),
            ("medium", Eagerness::Medium),
            ("high", Eagerness::High),
            ("auto", Eagerness::Auto),
        ],
    );
    let noise_reduction = c.choice(
        "model.openai.noise_reduction",
        &[
            ("off", NoiseReduction::Off),
            ("near_field", NoiseReduction::NearField),
            ("far_field", NoiseReduction::FarField),
        ],
    );
    let transcription_model = c.text("model.openai.transcription_model").and_then(|m| {
        let m = m.trim().to_owned();
        if is_model_name(&m) {
            Some(m)
        } else {
            c.invalid(
                "model.openai.transcription_model",
                format!("{m:?}"),
                "a model id like \"gpt-4o-mini-transcribe\" (1-64 of [a-zA-Z0-9._-])",
            )
        }
    });
    let (threshold, prefix_padding, silence_duration, idle_timeout) = (
        threshold?,
        prefix_padding?,
        silence_duration?,
        idle_timeout?,
    );
    let eagerness = eagerness?;
    let vad = match mode? {
        Mode::Server => OpenAiVad::Server(ServerVad {
            threshold,
            prefix_padding,
            silence_duration,
            idle_timeout,
        }),
        Mode::Semantic => OpenAiVad::Semantic { eagerness },
    };
    let mut input = OpenAiInput::default();
    input.vad = vad;
    input.noise_reduction = noise_reduction?;
    Some(OpenAiSettings {
        input,
        transcription_model: transcription_model?,
    })
}
