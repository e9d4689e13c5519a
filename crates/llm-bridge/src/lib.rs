//! Realtime voice model clients for callbridge (Gemini Live, OpenAI
//! Realtime, OpenAI GPT-Live) behind one trait, and the post-call summarizer for the same
//! providers' text APIs.
//!
//! The entry point is [`RealtimeModel::open`], which returns a
//! [`ModelSession`]: the one handle, and the one connection, of one call.
//! Audio goes in as [`AudioFrame`]s (converted to the model's input format
//! and sent in chunks of [`SessionConfig::uplink`], see [`uplink`]),
//! everything the model says comes out as [`ModelEvent`]s, and
//! [`ModelSession::close`] ends it cleanly (WebSocket close 1000, RFC 6455
//! §7). [`stats`] counts live tasks and connections so tests and metrics can
//! prove nothing outlives its session.
//!
//! Outbound TLS (`wss://` model endpoints, `https://` summaries) trusts the
//! system trust store by default, or the bundled webpki roots:
//! [`TlsRoots`], set per session in [`SessionConfig::tls_roots`].
//!
//! Features: `tls` (default; rustls on aws-lc-rs for `wss://`, configured
//! by `callbridge-tls`) and `summary`
//! (the `summary` module: one provider-generic HTTP summarizer, reqwest).
//! The strict mock servers of both protocols, for tests and demos, are the
//! crate `callbridge-llm-mock`, which depends on this one.
//!
//! Module layering (no module imports one that imports it back): the leaves
//! [`format`](mod@format), [`provider`], [`tls`], [`stats`] and the private `b64`; then [`error`],
//! [`audio`], [`event`], [`tools`], [`tuning`], [`uplink`], [`config`]; then [`session`], [`model`]
//! and the private transport; then the providers [`gemini`], [`openai`] and [`gpt_live`].
//!
//! ```no_run
//! use callbridge_llm_bridge::{
//!     ApiKey, AudioFrame, CallMetadata, GeminiLive, ModelEvent, RealtimeModel, SampleRate,
//!     SessionConfig,
//! };
//! # async fn run() -> Result<(), callbridge_llm_bridge::Error> {
//! let mut config = SessionConfig::default();
//! config.model = "gemini-3.8-live".into();
//! config.api_key = Some(ApiKey::require_env("GEMINI_API_KEY")?);
//! let mut session = GeminiLive.open(config, CallMetadata::with_call_id("call-1")).await?;
//! session.send_audio(AudioFrame::Pcm16 { rate: SampleRate::HZ_16000, samples: &[0; 320] })?;
//! while let Some(event) = session.next_event().await {
//!     if let ModelEvent::TurnComplete = event { break; }
//! }
//! let outcome = session.close().await;
//! assert!(outcome.clean);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

/// The README (its example is compiled and run as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod audio;
mod b64;
pub mod config;
pub mod error;
pub mod event;
pub mod format;
pub mod gemini;
pub mod gpt_live;
pub mod model;
pub mod openai;
pub mod provider;
pub mod session;
pub mod stats;
#[cfg(feature = "summary")]
pub mod summary;
/// Which roots outbound TLS trusts: the crate `callbridge-tls`, shared with
/// the carrier REST hang-ups and the dialer's client.
pub use callbridge_tls as tls;
pub mod tools;
mod transport;
pub mod tuning;
pub mod uplink;

pub use audio::{AudioChunk, AudioFrame};
pub use config::{
    ApiKey, BuiltinTools, CallMetadata, Greeting, Redacted, RetryPolicy, Sensitivity,
    SessionConfig, ToolSpec, Transcription, TransferChoice, TurnDetection,
};
pub use error::{ConnectFailure, Error};
pub use event::{
    CloseReason, ErrorKind, ModelEvent, RateLimit, TokenSplit, ToolCall, ToolCallId, Usage,
};
pub use format::{AudioFormat, SampleRate};
pub use gemini::GeminiLive;
pub use gpt_live::GptLive;
pub use model::RealtimeModel;
pub use openai::OpenAiRealtime;
pub use provider::{BoxFuture, Provider};
pub use session::{CloseOutcome, ModelSession, ToolResult};
pub use tls::{TlsError, TlsRoots};
pub use transport::MAX_MESSAGE_BYTES;
pub use uplink::{Uplink, UplinkChunk};
