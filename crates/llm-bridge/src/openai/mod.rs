//! OpenAI Realtime, GA interface (WebSocket), protocols.md §2.
//!
//! Owns: the [`OpenAiRealtime`] provider, the choice of audio formats on
//! the model leg, and the endpoint URL (`?model=` added). [`wire`] is the
//! sans-IO event codec; `core` is the sans-IO session logic (barge-in,
//! responses, tool calls); `driver` is the tokio task that owns the
//! connection. The API key goes in the `Authorization: Bearer` header only
//! (never in the URL, never logged); no `OpenAI-Beta` header is sent (that
//! selects the retired beta shape). Caution for log filters: tungstenite
//! itself logs the raw upgrade request, headers included, at `trace` level
//! (through the `log` crate), so keep `tungstenite` at `debug` or above in
//! production.
//!
//! Audio formats: G.711 µ-law (`audio/pcmu`) or A-law (`audio/pcma`) frames
//! go to the model untouched, so the telephone path needs no resampling;
//! PCM goes as `audio/pcm` at 24 kHz (8 kHz PCM is upsampled ×3; 16 kHz PCM
//! is refused at open: resample it to 24 kHz first). The output format is
//! [`SessionConfig::output_format`]: µ-law, A-law or PCM 24 kHz.

use std::sync::Arc;

use crate::audio::{AudioFormat, SampleRate};
use crate::config::{CallMetadata, SessionConfig};
use crate::error::Error;
use crate::model::RealtimeModel;
use crate::provider::{BoxFuture, Provider};
use crate::session::ModelSession;

mod core;
mod driver;
pub mod wire;

/// The public GA endpoint (the model goes in the `model` query parameter).
pub const DEFAULT_ENDPOINT: &str = "wss://api.openai.com/v1/realtime";

/// The current GA realtime model at the time of writing:
/// `gpt-realtime-2.1` (developers.openai.com/api/docs/models/gpt-realtime-2.1).
/// Keep it in configuration: model names change often.
pub const DEFAULT_MODEL: &str = "gpt-realtime-2.1";

/// The OpenAI Realtime provider (GA protocol).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiRealtime;

impl OpenAiRealtime {
    /// The provider.
    pub fn new() -> Self {
        OpenAiRealtime
    }
}

/// The model-side input format for frames in `caller` format: G.711 passes
/// through; PCM becomes PCM 24 kHz. `None` when the client cannot convert
/// (PCM at a rate that does not divide 24 kHz, such as 16 kHz).
pub fn model_input_format(caller: AudioFormat) -> Option<AudioFormat> {
    match caller {
        AudioFormat::Pcmu | AudioFormat::Pcma => Some(caller),
        AudioFormat::Pcm16 { rate } if rate.hz() != 0 && 24000 % rate.hz() == 0 => {
            Some(AudioFormat::PCM_24K)
        }
        AudioFormat::Pcm16 { .. } => None,
    }
}

/// The model-side output format: G.711 as asked, PCM only at 24 kHz.
pub fn model_output_format(requested: AudioFormat) -> Option<AudioFormat> {
    match requested {
        AudioFormat::Pcmu | AudioFormat::Pcma => Some(requested),
        AudioFormat::Pcm16 { rate } if rate == SampleRate::HZ_24000 => Some(requested),
        AudioFormat::Pcm16 { .. } => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The connection URL: `endpoint` plus `model=<model>` (percent-encoded)
/// unless the endpoint already names a model or a `call_id`.
///
/// ```
/// use callbridge_llm_bridge::openai::connect_url;
/// assert_eq!(
///     connect_url("wss://api.openai.com/v1/realtime", "gpt-realtime"),
///     "wss://api.openai.com/v1/realtime?model=gpt-realtime"
/// );
/// assert_eq!(connect_url("ws://127.0.0.1:9/x?a=1", "m 1"), "ws://127.0.0.1:9/x?a=1&model=m%201");
/// ```
pub fn connect_url(endpoint: &str, model: &str) -> String {
    if endpoint.contains("model=") || endpoint.contains("call_id=") {
        return endpoint.to_owned();
    }
    let mut url = String::with_capacity(endpoint.len() + model.len() + 8);
    url.push_str(endpoint);
    url.push(if endpoint.contains('?') { '&' } else { '?' });
    url.push_str("model=");
    for b in model.bytes() {
        if is_unreserved(b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

impl RealtimeModel for OpenAiRealtime {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }

    fn input_format(&self, config: &SessionConfig) -> AudioFormat {
        model_input_format(config.input_format).unwrap_or(AudioFormat::PCM_24K)
    }

    fn open<'a>(
        &'a self,
        config: SessionConfig,
        metadata: CallMetadata,
    ) -> BoxFuture<'a, Result<ModelSession, Error>> {
        Box::pin(open(config, metadata))
    }
}

async fn open(config: SessionConfig, metadata: CallMetadata) -> Result<ModelSession, Error> {
    config.validate()?;
    let input = model_input_format(config.input_format).ok_or(Error::Config(
        "OpenAI Realtime takes G.711 or PCM at 24 kHz (or 8 kHz, upsampled): resample the input",
    ))?;
    let output = model_output_format(config.output_format).ok_or(Error::Config(
        "OpenAI Realtime outputs G.711 or PCM at 24 kHz only",
    ))?;
    let endpoint = config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
    let url = connect_url(endpoint, &config.model);
    let mut headers = Vec::new();
    if let Some(key) = &config.api_key {
        headers.push(("authorization", format!("Bearer {}", key.expose())));
    }
    let span = tracing::info_span!("openai_session", call_id = %metadata.call_id);
    let params = Arc::new(driver::Params {
        url,
        headers,
        config,
        metadata,
        input,
        output,
    });
    let conn =
        tracing::Instrument::instrument(driver::open_connection(&params), span.clone()).await?;
    let p = Arc::clone(&params);
    ModelSession::start(Provider::OpenAi, input, &params.config, span, move |ctx| {
        driver::Driver::new(p, conn, ctx).run()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_pass_g711_through_and_refuse_16k_pcm() {
        assert_eq!(
            model_input_format(AudioFormat::Pcmu),
            Some(AudioFormat::Pcmu)
        );
        assert_eq!(
            model_input_format(AudioFormat::PCM_8K),
            Some(AudioFormat::PCM_24K)
        );
        assert_eq!(model_input_format(AudioFormat::PCM_16K), None);
        assert_eq!(model_output_format(AudioFormat::PCM_16K), None);
        assert_eq!(
            model_output_format(AudioFormat::Pcmu),
            Some(AudioFormat::Pcmu)
        );
    }

    #[test]
    fn url_keeps_an_explicit_model_or_call_id() {
        let u = "wss://api.openai.com/v1/realtime?call_id=rtc_1";
        assert_eq!(connect_url(u, "gpt-realtime"), u);
        let u = "ws://h/v1/realtime?model=x";
        assert_eq!(connect_url(u, "gpt-realtime"), u);
    }
}
