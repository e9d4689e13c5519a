//! OpenAI GPT-Live (WebSocket), `docs/providers/gpt-live.md`.
//!
//! Owns: the [`GptLive`] provider, the choice of the session's one audio
//! format, the `session.start` event of a call, and the endpoint. [`wire`]
//! is the sans-IO event codec (strict client types, shared with the mock);
//! `core` is the sans-IO session logic (reply ends inferred from output
//! pauses, tool calls, delegations); `driver` is the tokio task that owns
//! the connection. The API key goes in the `Authorization: Bearer` header
//! only (never in the URL, never logged); the URL carries no query.
//!
//! Audio: GPT-Live takes one format both ways. G.711 µ-law (`audio/pcmu`)
//! and A-law (`audio/pcma`) at 8000 Hz pass through untouched, so the
//! telephone path needs no resampling; PCM goes as `audio/pcm` at 16 or
//! 24 kHz (8 kHz PCM is upsampled to 24 kHz). Input and output must map
//! to the same format, or `open` refuses the configuration.
//!
//! Tools: under Responses delegation, which needs a backend model
//! ([`GptLive::with_delegation_model`]), `end_call`, `transfer_call` and
//! the configured tools are declared to it. Without one the session runs
//! under client delegation, which takes no declarations: the tools are
//! named in the instructions and each `session.delegation.created` is
//! mapped to one by the transcript (`delegate`), its result returned as
//! `session.commentary.append`.

use std::sync::Arc;

use crate::audio::AudioFormat;
use crate::config::{CallMetadata, SessionConfig};
use crate::error::Error;
use crate::model::RealtimeModel;
use crate::provider::{BoxFuture, Provider};
use crate::session::ModelSession;

mod core;
mod delegate;
mod driver;
pub mod wire;

use wire::{AudioConfig, AudioOutput, ClientEvent, Delegation, ResponsesConfig, SessionObject};

/// The public endpoint (no query parameters: the model goes in `session.start`).
pub const DEFAULT_ENDPOINT: &str = "wss://api.openai.com/v1/live/sessions";

/// The GPT-Live model at the time of writing (keep it in configuration).
pub const DEFAULT_MODEL: &str = "gpt-live-1";

/// The OpenAI GPT-Live provider.
///
/// ```
/// use callbridge_llm_bridge::{GptLive, Provider, RealtimeModel};
/// let model = GptLive::new().with_delegation_model("gpt-5.5");
/// assert_eq!(model.provider(), Provider::GptLive);
/// assert_eq!(model.delegation_model(), Some("gpt-5.5"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct GptLive {
    delegation_model: Option<String>,
}

impl GptLive {
    /// The provider, under client delegation (no tools).
    pub fn new() -> Self {
        GptLive::default()
    }

    /// Delegates to a Responses backend running `model`, where the
    /// telephony and configured tools are declared. An empty name means
    /// none.
    pub fn with_delegation_model(mut self, model: impl Into<String>) -> Self {
        let model = model.into();
        self.delegation_model = (!model.trim().is_empty()).then_some(model);
        self
    }

    /// The Responses backend model, if the session delegates to one.
    pub fn delegation_model(&self) -> Option<&str> {
        self.delegation_model.as_deref()
    }
}

/// The session format for caller frames in `caller` format: G.711 passes
/// through; PCM 16 and 24 kHz as they are; 8 kHz PCM becomes 24 kHz.
/// `None` for other PCM rates.
pub fn model_input_format(caller: AudioFormat) -> Option<AudioFormat> {
    match caller {
        AudioFormat::Pcmu | AudioFormat::Pcma => Some(caller),
        AudioFormat::Pcm16 { rate } => match rate.hz() {
            16000 | 24000 => Some(caller),
            8000 => Some(AudioFormat::PCM_24K),
            _ => None,
        },
    }
}

/// The one session format of a configuration: the input's, when the
/// requested output is the same format.
pub fn session_format(config: &SessionConfig) -> Option<AudioFormat> {
    let format = model_input_format(config.input_format)?;
    (wire::FormatWire::of(config.output_format)?.format()? == format).then_some(format)
}

/// The `session.start` event of one call.
pub fn session_start_message(
    config: &SessionConfig,
    metadata: &CallMetadata,
    format: AudioFormat,
    delegation_model: Option<&str>,
) -> String {
    let delegation = delegation_model.map(|model| {
        let tools: Vec<wire::Tool> = crate::tools::all_specs(
            &config.tools,
            config.builtin_tools,
            &config.transfer_targets,
        )
        .into_iter()
        .map(|t| wire::Tool::Function {
            name: t.name,
            description: Some(t.description),
            parameters: Some(t.parameters),
            strict: None,
        })
        .collect();
        Delegation::Responses {
            responses: Box::new(ResponsesConfig {
                model: model.to_owned(),
                instructions: None,
                tool_choice: (!tools.is_empty()).then(|| serde_json::json!("auto")),
                tools: (!tools.is_empty()).then_some(tools),
                max_output_tokens: None,
                parallel_tool_calls: None,
                reasoning: None,
                service_tier: None,
                text: None,
            }),
        }
    });
    let mut instructions = metadata.instructions_with_context(&config.instructions);
    if delegation_model.is_none() {
        // Client delegation takes no tool declarations (the session
        // object's `delegation` is `{type: "client"}` only): the tools are
        // named in the instructions, and delegations mapped to them by
        // name (`delegate`).
        let specs = crate::tools::all_specs(
            &config.tools,
            config.builtin_tools,
            &config.transfer_targets,
        );
        if let Some(tasks) = delegate::tasks_instructions(&specs) {
            if !instructions.trim().is_empty() {
                instructions.push_str("\n\n");
            }
            instructions.push_str(&tasks);
        }
    }
    ClientEvent::SessionStart {
        event_id: None,
        session: SessionObject {
            model: config.model.clone(),
            instructions: (!instructions.trim().is_empty()).then_some(instructions),
            audio: Some(AudioConfig {
                format: wire::FormatWire::of(format),
                output: config.voice.as_ref().map(|v| AudioOutput {
                    voice: Some(wire::Voice::Name(v.clone())),
                }),
            }),
            delegation,
            input: None,
            store: None,
            client: None,
        },
    }
    .to_json()
}

impl RealtimeModel for GptLive {
    fn provider(&self) -> Provider {
        Provider::GptLive
    }

    fn input_format(&self, config: &SessionConfig) -> AudioFormat {
        model_input_format(config.input_format).unwrap_or(AudioFormat::PCM_24K)
    }

    fn open<'a>(
        &'a self,
        config: SessionConfig,
        metadata: CallMetadata,
    ) -> BoxFuture<'a, Result<ModelSession, Error>> {
        Box::pin(open(config, metadata, self.delegation_model.clone()))
    }
}

async fn open(
    config: SessionConfig,
    metadata: CallMetadata,
    delegation_model: Option<String>,
) -> Result<ModelSession, Error> {
    config.validate()?;
    let format = session_format(&config).ok_or(Error::Config(
        "GPT-Live uses one audio format both ways: G.711 at 8 kHz or PCM at 16/24 kHz",
    ))?;
    let endpoint = config
        .endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let mut headers = Vec::new();
    if let Some(key) = &config.api_key {
        headers.push(("authorization", format!("Bearer {}", key.expose())));
    }
    let start = session_start_message(&config, &metadata, format, delegation_model.as_deref());
    let span = tracing::info_span!("gpt_live_session", call_id = %metadata.call_id);
    let params = Arc::new(driver::Params {
        url: endpoint,
        headers,
        config,
        start,
        format,
    });
    let conn =
        tracing::Instrument::instrument(driver::open_connection(&params), span.clone()).await?;
    let p = Arc::clone(&params);
    ModelSession::start(
        Provider::GptLive,
        format,
        &params.config,
        span,
        move |ctx| driver::Driver::new(p, conn, ctx).run(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_passes_through_and_pcm_keeps_16_or_24_khz() {
        assert_eq!(
            model_input_format(AudioFormat::Pcmu),
            Some(AudioFormat::Pcmu)
        );
        assert_eq!(
            model_input_format(AudioFormat::Pcma),
            Some(AudioFormat::Pcma)
        );
        assert_eq!(
            model_input_format(AudioFormat::PCM_16K),
            Some(AudioFormat::PCM_16K)
        );
        assert_eq!(
            model_input_format(AudioFormat::PCM_8K),
            Some(AudioFormat::PCM_24K)
        );
        let cfg = SessionConfig {
            input_format: AudioFormat::Pcmu,
            output_format: AudioFormat::Pcmu,
            ..Default::default()
        };
        assert_eq!(session_format(&cfg), Some(AudioFormat::Pcmu));
    }

    #[test]
    fn differing_formats_both_ways_are_refused() {
        let cfg = SessionConfig {
            input_format: AudioFormat::Pcmu,
            output_format: AudioFormat::PCM_24K,
            ..Default::default()
        };
        assert_eq!(session_format(&cfg), None);
        let cfg = SessionConfig {
            input_format: AudioFormat::PCM_16K,
            output_format: AudioFormat::PCM_16K,
            ..Default::default()
        };
        assert_eq!(session_format(&cfg), Some(AudioFormat::PCM_16K));
    }

    fn start_json(cfg: &SessionConfig, delegation: Option<&str>) -> serde_json::Value {
        let s = session_start_message(cfg, &CallMetadata::default(), AudioFormat::Pcmu, delegation);
        // What is sent parses as the strict client type.
        serde_json::from_str::<ClientEvent>(&s).unwrap();
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn session_start_carries_the_g711_format_voice_and_tools_under_responses_delegation() {
        let mut cfg = SessionConfig {
            model: DEFAULT_MODEL.into(),
            instructions: "Be brief.".into(),
            voice: Some("marin".into()),
            ..Default::default()
        };
        cfg.transfer_targets.push(crate::config::TransferChoice {
            name: "sales".into(),
            number_prefix: None,
        });
        let v = start_json(&cfg, Some("gpt-5.5"));
        assert_eq!(v["type"], "session.start");
        let s = &v["session"];
        assert_eq!(s["model"], "gpt-live-1");
        assert_eq!(
            s["audio"]["format"],
            serde_json::json!({"type": "audio/pcmu", "rate": 8000})
        );
        assert_eq!(s["audio"]["output"]["voice"], "marin");
        assert_eq!(s["delegation"]["type"], "responses");
        assert_eq!(s["delegation"]["responses"]["model"], "gpt-5.5");
        let names: Vec<&str> = s["delegation"]["responses"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["end_call", "transfer_call"]);
        // Without a backend model: client delegation (the default), no tools.
        let v = start_json(&cfg, None);
        assert!(v["session"].get("delegation").is_none());
        // There the tools are named in the instructions instead.
        let instructions = v["session"]["instructions"].as_str().unwrap();
        assert!(
            instructions.starts_with("Be brief.\n\nTasks"),
            "{instructions}"
        );
        assert!(instructions.contains("\n- end call: "), "{instructions}");
        assert!(
            instructions.contains("\n- transfer call: "),
            "{instructions}"
        );
        // Under Responses delegation they are not repeated there.
        let v = start_json(&cfg, Some("gpt-5.5"));
        assert_eq!(v["session"]["instructions"], "Be brief.");
    }

    #[test]
    fn empty_delegation_model_means_client_delegation() {
        assert_eq!(
            GptLive::new().with_delegation_model(" ").delegation_model(),
            None
        );
    }
}
