//! OpenAI Realtime's input tuning: what a phone bridge sets in
//! `session.audio.input` besides the format (the `turn_detection`
//! object, `noise_reduction`), checked against the API's documented
//! ranges before anything is sent.
//!
//! Owns: [`OpenAiInput`] (in [`crate::SessionConfig::openai`]), its
//! parts [`OpenAiVad`], [`ServerVad`], [`Eagerness`], [`NoiseReduction`],
//! and [`OpenAiInput::validate`]. The defaults are the API's own
//! (server VAD, threshold 0.5, 300 ms prefix padding, 500 ms silence, no
//! idle timeout, no noise reduction), so a session that sets nothing gets
//! what the API would choose. The wire shape is written by
//! `openai::wire::session_update_message`. Reference: the Realtime client
//! event `session.update` (developers.openai.com/api/reference/resources/
//! realtime/client-events) and the VAD guide (docs/guides/realtime-vad).
//!
//! ```
//! use std::time::Duration;
//! use callbridge_llm_bridge::tuning::{NoiseReduction, OpenAiInput, OpenAiVad, ServerVad};
//! let mut input = OpenAiInput::default();
//! input.noise_reduction = NoiseReduction::NearField;
//! input.vad = OpenAiVad::Server(ServerVad {
//!     idle_timeout: Some(Duration::from_secs(8)),
//!     ..ServerVad::default()
//! });
//! assert!(input.validate().is_ok());
//! ```

use std::time::Duration;

use crate::error::Error;

/// The shortest `idle_timeout_ms` the API takes.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(5_000);
/// The longest `idle_timeout_ms` the API takes.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_millis(30_000);
/// The longest prefix padding or silence this crate sends: the API names
/// no bound, and a turn that needs more than 10 s of either is a
/// misconfiguration on a phone call.
pub const MAX_VAD_WINDOW: Duration = Duration::from_secs(10);

/// OpenAI Realtime's `session.audio.input` tuning.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct OpenAiInput {
    /// The server's turn detection, when [`crate::TurnDetection::Server`]
    /// is configured (with [`crate::TurnDetection::Manual`] it is `null`).
    pub vad: OpenAiVad,
    /// Noise reduction of the caller's audio before VAD and the model.
    pub noise_reduction: NoiseReduction,
}

/// Which of the server's turn detectors runs.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenAiVad {
    /// `server_vad`: speech by volume, turn end after a silence.
    Server(ServerVad),
    /// `semantic_vad`: a model judges when the caller has finished.
    Semantic {
        /// How soon it answers.
        eagerness: Eagerness,
    },
}

impl Default for OpenAiVad {
    fn default() -> Self {
        OpenAiVad::Server(ServerVad::default())
    }
}

/// `server_vad`'s settings (the API's defaults by `Default`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerVad {
    /// Activation threshold, 0.0 to 1.0 (higher: louder speech needed).
    /// Default 0.5.
    pub threshold: f64,
    /// Audio kept from before detected speech. Default 300 ms: shorter
    /// risks clipping the first syllable.
    pub prefix_padding: Duration,
    /// Silence that ends the caller's turn. Default 500 ms.
    pub silence_duration: Duration,
    /// After the model's reply has played, prompt the model again when the
    /// caller says nothing for this long (5 to 30 s); `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Default for ServerVad {
    fn default() -> Self {
        ServerVad {
            threshold: 0.5,
            prefix_padding: Duration::from_millis(300),
            silence_duration: Duration::from_millis(500),
            idle_timeout: None,
        }
    }
}

/// `semantic_vad`'s eagerness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eagerness {
    /// Waits longer for the caller to go on.
    Low,
    /// Between.
    Medium,
    /// Answers as soon as it can.
    High,
    /// The API's choice (medium).
    #[default]
    Auto,
}

impl Eagerness {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Eagerness::Low => "low",
            Eagerness::Medium => "medium",
            Eagerness::High => "high",
            Eagerness::Auto => "auto",
        }
    }
}

/// Noise reduction of the caller's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseReduction {
    /// None (`null`, the API's default).
    #[default]
    Off,
    /// For close-talking microphones: a handset, a headset.
    NearField,
    /// For far-field microphones: a speakerphone, a conference room.
    FarField,
}

impl NoiseReduction {
    /// The wire value of `noise_reduction.type`; `None` for off.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            NoiseReduction::Off => None,
            NoiseReduction::NearField => Some("near_field"),
            NoiseReduction::FarField => Some("far_field"),
        }
    }
}

/// Whether `name` can be a model id: 1 to 64 characters of
/// `[a-zA-Z0-9._-]` (the transcription model is a free string in the API;
/// this keeps typos with spaces or quotes from reaching it).
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl OpenAiInput {
    /// Checks the values against the API's ranges (and this crate's bound
    /// on the VAD windows); the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let OpenAiVad::Server(v) = &self.vad else {
            return Ok(());
        };
        if !(0.0..=1.0).contains(&v.threshold) {
            return Err(Error::Config(
                "openai turn_detection threshold must be from 0.0 to 1.0",
            ));
        }
        if v.prefix_padding > MAX_VAD_WINDOW {
            return Err(Error::Config(
                "openai turn_detection prefix_padding_ms must be at most 10000",
            ));
        }
        if v.silence_duration.is_zero() || v.silence_duration > MAX_VAD_WINDOW {
            return Err(Error::Config(
                "openai turn_detection silence_duration_ms must be from 1 to 10000",
            ));
        }
        if let Some(t) = v.idle_timeout
            && !(MIN_IDLE_TIMEOUT..=MAX_IDLE_TIMEOUT).contains(&t)
        {
            return Err(Error::Config(
                "openai turn_detection idle_timeout_ms must be from 5000 to 30000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_apis_and_validate() {
        let i = OpenAiInput::default();
        assert_eq!(i.noise_reduction, NoiseReduction::Off);
        let OpenAiVad::Server(v) = &i.vad else {
            panic!("server_vad by default")
        };
        assert_eq!(v.prefix_padding, Duration::from_millis(300));
        assert_eq!(v.silence_duration, Duration::from_millis(500));
        assert_eq!(v.threshold, 0.5);
        assert!(i.validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_named_errors() {
        let bad = |f: fn(&mut ServerVad)| {
            let mut v = ServerVad::default();
            f(&mut v);
            let i = OpenAiInput {
                vad: OpenAiVad::Server(v),
                ..OpenAiInput::default()
            };
            match i.validate() {
                Err(Error::Config(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        assert!(bad(|v| v.threshold = 1.5).contains("threshold"));
        assert!(bad(|v| v.threshold = f64::NAN).contains("threshold"));
        assert!(bad(|v| v.idle_timeout = Some(Duration::from_secs(2))).contains("idle_timeout_ms"));
        assert!(
            bad(|v| v.idle_timeout = Some(Duration::from_secs(31))).contains("idle_timeout_ms")
        );
        assert!(bad(|v| v.silence_duration = Duration::ZERO).contains("silence_duration_ms"));
        assert!(bad(|v| v.prefix_padding = Duration::from_secs(11)).contains("prefix_padding_ms"));
        let semantic = OpenAiInput {
            vad: OpenAiVad::Semantic {
                eagerness: Eagerness::High,
            },
            ..OpenAiInput::default()
        };
        assert!(semantic.validate().is_ok());
    }
}
