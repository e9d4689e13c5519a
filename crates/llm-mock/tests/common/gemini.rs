//! Gemini Live test helpers: config and 16 kHz PCM caller turns.

use callbridge_llm_bridge::{
    AudioFrame, CallMetadata, Error, GeminiLive, ModelSession, RealtimeModel, SampleRate,
    SessionConfig,
};
use callbridge_llm_mock::gemini::GeminiScript;
use callbridge_llm_mock::vad::tone;

/// A config for the mock at `url` with short timeouts.
pub fn config(url: String) -> SessionConfig {
    super::base_config(url, "gemini-mock")
}

/// A script whose replies "play" 50 times faster than real time.
pub fn fast_script() -> GeminiScript {
    GeminiScript {
        playback_speed: 50.0,
        ..Default::default()
    }
}

/// Opens a Gemini Live session with `config` (call id `test`).
pub async fn open_with(config: SessionConfig) -> Result<ModelSession, Error> {
    GeminiLive
        .open(config, CallMetadata::with_call_id("test"))
        .await
}

/// Opens a Gemini Live session on the mock at `url` with [`config`].
pub async fn open(url: String) -> Result<ModelSession, Error> {
    open_with(config(url)).await
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
