//! Realtime voice model clients for callbridge (Gemini Live, OpenAI
//! Realtime) behind one trait, and mock servers that speak both protocols.
//!
//! The entry point is [`RealtimeModel::open`], which returns a
//! [`ModelSession`]: the one handle, and the one connection, of one call.
//! Audio goes in as [`AudioFrame`]s (converted to the model's input format),
//! everything the model says comes out as [`ModelEvent`]s, and
//! [`ModelSession::close`] ends it cleanly (WebSocket close 1000, RFC 6455
//! §7). [`stats`] counts live tasks and connections so tests and metrics can
//! prove nothing outlives its session.
//!
//! ```no_run
//! use callbridge_llm_bridge::{
//!     ApiKey, AudioFrame, CallMetadata, GeminiLive, ModelEvent, RealtimeModel, SampleRate,
//!     SessionConfig,
//! };
//! # async fn run() -> Result<(), callbridge_llm_bridge::Error> {
//! let mut config = SessionConfig::default();
//! config.model = "gemini-3.1-flash-live-preview".into();
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
pub mod config;
pub mod error;
pub mod event;
pub mod gemini;
#[cfg(feature = "mock")]
pub mod mock;
pub mod openai;
pub mod provider;
pub mod session;
pub mod stats;
pub mod tools;
mod transport;

pub use audio::{AudioChunk, AudioFormat, AudioFrame, SampleRate};
pub use config::{
    ApiKey, BuiltinTools, CallMetadata, Greeting, Redacted, RetryPolicy, Sensitivity,
    SessionConfig, ToolSpec, Transcription, TransferChoice, TurnDetection,
};
pub use error::{ConnectFailure, Error};
pub use event::{CloseReason, ErrorKind, ModelEvent, RateLimit, ToolCall, ToolCallId, Usage};
pub use gemini::GeminiLive;
pub use openai::OpenAiRealtime;
pub use provider::{BoxFuture, Provider, RealtimeModel};
pub use session::{CloseOutcome, ModelSession, ToolResult};
