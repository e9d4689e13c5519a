//! The provider abstraction: one trait, [`RealtimeModel`], whose only entry
//! point is `open`, returning the [`ModelSession`] handle for one call.
//!
//! The trait is object safe (`Box<dyn RealtimeModel>`), so the session layer
//! picks a provider from configuration at run time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::audio::AudioFormat;
use crate::config::{CallMetadata, SessionConfig};
use crate::error::Error;
use crate::session::ModelSession;

/// A boxed, sendable future (what `open` returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which realtime model service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// Google Gemini Live (`BidiGenerateContent`).
    Gemini,
    /// OpenAI Realtime (GA).
    OpenAi,
}

impl Provider {
    /// The environment variable conventionally holding this provider's key.
    pub fn api_key_var(self) -> &'static str {
        match self {
            Provider::Gemini => "GEMINI_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Gemini => "Gemini Live",
            Provider::OpenAi => "OpenAI Realtime",
        })
    }
}

/// A realtime voice model service.
///
/// `open` connects (retrying per [`SessionConfig::retry`]), completes the
/// provider's session setup and only then returns the handle, so a handle
/// always has a live, configured connection. Each handle owns exactly one
/// connection for its life; reconnects for session resumption happen inside
/// it and never overlap.
pub trait RealtimeModel: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;

    /// The audio format the model takes as input (what frames are converted to).
    fn input_format(&self, config: &SessionConfig) -> AudioFormat;

    /// Opens one session for one call.
    fn open<'a>(
        &'a self,
        config: SessionConfig,
        metadata: CallMetadata,
    ) -> BoxFuture<'a, Result<ModelSession, Error>>;
}
