//! OpenAI Realtime test helpers: µ-law config, fast scripts and µ-law
//! caller turns.

use callbridge_llm_bridge::audio::linear_to_ulaw;
use callbridge_llm_bridge::{
    AudioFormat, AudioFrame, CallMetadata, Error, ModelSession, OpenAiRealtime, RealtimeModel,
    SessionConfig,
};
use callbridge_llm_mock::openai::OpenAiScript;
use callbridge_llm_mock::vad::tone;

/// A config for the mock at `url`: µ-law both ways, short timeouts.
pub fn config(url: String) -> SessionConfig {
    let mut c = super::base_config(url, "gpt-realtime");
    c.voice = Some("marin".into());
    c.input_format = AudioFormat::Pcmu;
    c.output_format = AudioFormat::Pcmu;
    c
}

/// Opens an OpenAI Realtime session with `config` and default metadata.
pub async fn open_with(config: SessionConfig) -> Result<ModelSession, Error> {
    OpenAiRealtime.open(config, CallMetadata::default()).await
}

/// Opens an OpenAI Realtime session on the mock at `url` with [`config`].
pub async fn open(url: String) -> Result<ModelSession, Error> {
    open_with(config(url)).await
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
