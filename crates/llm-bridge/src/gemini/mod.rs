//! Google Gemini Live (`BidiGenerateContent` over WebSocket), protocols.md §1.
//!
//! Owns: the [`GeminiLive`] provider. [`wire`] is the sans-IO message codec;
//! `resume` is the sans-IO resumption state machine; `driver` is the tokio
//! task that owns the connection. The API key goes in the `x-goog-api-key`
//! request header (never in the URL, so it cannot leak through a logged or
//! formatted URL).
//!
//! Covered: `setup` (model, AUDIO modality, voice, language, system
//! instruction + call context, function declarations incl. the built-in
//! `end_call` / `transfer_call`, automatic activity detection with
//! sensitivities / padding / silence and barge-in, or manual activity,
//! input and output transcription, session resumption, sliding-window
//! context compression); `setupComplete` awaited before anything else;
//! `realtimeInput` audio (16 kHz), text (also DTMF), `audioStreamEnd`,
//! `activityStart` / `activityEnd`; `clientContent` for the greeting turn;
//! `toolResponse` (function `behavior`: BLOCKING for `end_call` and
//! `transfer_call`, NON_BLOCKING with responses `scheduling: WHEN_IDLE`
//! for the others: [`wire::blocking`]); server messages in text or binary frames, several keys
//! per message: `serverContent` (every `modelTurn` audio part,
//! `interrupted`, `generationComplete`, `turnComplete`, both
//! transcriptions), `toolCall`, `toolCallCancellation`, `goAway`,
//! `sessionResumptionUpdate`, `usageMetadata`; close codes reported;
//! resumption with the last handle after `goAway` and after an unexpected
//! drop mid-call (bounded; `driver`).
//!
//! Not covered: ephemeral tokens (`access_token`, v1alpha constrained
//! endpoint) and Vertex AI auth; `transparent` resumption with replay from
//! `lastConsumedClientMessageIndex`; text or thought parts in `modelTurn` (skipped);
//! `voiceActivity`, `turnCompleteReason`, `waitingForInput`,
//! `groundingMetadata` (accepted, not reported); `generationConfig`
//! sampling knobs, `proactivity`, `historyConfig`, `turnCoverage`,
//! `safetySettings`; video input; custom `triggerTokens` for compression.

use std::sync::Arc;

use crate::audio::AudioFormat;
use crate::config::{CallMetadata, SessionConfig};
use crate::error::Error;
use crate::model::RealtimeModel;
use crate::provider::{BoxFuture, Provider};
use crate::session::ModelSession;

mod driver;
mod resume;
mod unconsumed;
pub mod wire;

/// The public Gemini API endpoint (v1beta).
pub const DEFAULT_ENDPOINT: &str = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

/// The current stable Live API model (native audio in and out) at the
/// time of writing: `gemini-3.8-live`, the Live API's default
/// (ai.google.dev/gemini-api/docs/models/gemini-3.8-live). Keep it in
/// configuration: model names change often.
pub const DEFAULT_MODEL: &str = "gemini-3.8-live";

/// The Gemini Live provider.
///
/// Input is PCM 16 kHz (frames in other formats are converted: G.711 and
/// 8 kHz PCM are upsampled); output is PCM 24 kHz.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiLive;

impl GeminiLive {
    /// The provider.
    pub fn new() -> Self {
        GeminiLive
    }
}

impl RealtimeModel for GeminiLive {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }

    fn input_format(&self, _config: &SessionConfig) -> AudioFormat {
        AudioFormat::PCM_16K
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
    let url = config
        .endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let mut headers = Vec::new();
    if let Some(key) = &config.api_key {
        headers.push(("x-goog-api-key", key.expose().to_owned()));
    }
    let span = tracing::info_span!("gemini_session", call_id = %metadata.call_id);
    let params = Arc::new(driver::Params {
        url,
        headers,
        config,
        metadata,
    });
    let conn =
        tracing::Instrument::instrument(driver::open_connection(&params, None), span.clone())
            .await?;
    let p = Arc::clone(&params);
    ModelSession::start(
        Provider::Gemini,
        AudioFormat::PCM_16K,
        &params.config,
        span,
        move |ctx| driver::Driver::new(p, conn, ctx, false).run(),
    )
    .await
}
