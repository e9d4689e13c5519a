//! GPT-Live test helpers: µ-law config, a fast script, opening a session.

use callbridge_llm_bridge::{
    AudioFormat, CallMetadata, Error, GptLive, ModelSession, RealtimeModel, SessionConfig,
};
use callbridge_llm_mock::gpt_live::GptLiveScript;

/// A config for the mock at `url`: µ-law both ways, short timeouts.
pub fn config(url: String) -> SessionConfig {
    let mut c = super::base_config(url, "gpt-live-1");
    c.voice = Some("marin".into());
    c.input_format = AudioFormat::Pcmu;
    c.output_format = AudioFormat::Pcmu;
    c
}

/// Opens a GPT-Live session with `config`, delegating tools to
/// `delegation_model` when given.
pub async fn open_with(
    config: SessionConfig,
    delegation_model: Option<&str>,
) -> Result<ModelSession, Error> {
    let model = match delegation_model {
        Some(m) => GptLive::new().with_delegation_model(m),
        None => GptLive::new(),
    };
    model.open(config, CallMetadata::default()).await
}

/// A script whose replies are sent 20 times faster than real time.
pub fn fast_script() -> GptLiveScript {
    GptLiveScript {
        playback_speed: 20.0,
        ..Default::default()
    }
}
